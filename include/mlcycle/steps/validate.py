"""validate: raw/ds=D -> validated/ds=D if the data contract holds, else quarantine/ds=D + reason.json."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
from typing import Any

import pandas as pd

from mlcycle.contracts.gx_suite import validate_frame
from mlcycle.contracts.model import load_contract
from mlcycle.steps.base import Rejected, StepContext, StepResult
from mlcycle.steps.ingest import DATA_FILE

log = logging.getLogger(__name__)


def validate_partition(ctx: StepContext, day: dt.date) -> dict[str, Any]:
    """Validate one raw partition; returns {"status": passed|failed|unchanged, "summary": ...}."""
    raw, validated, quarantine = (ctx.uri(d, day) for d in ("raw", "validated", "quarantine"))
    raw_manifest = ctx.storage.manifest(raw)
    if raw_manifest is None:
        raise FileNotFoundError(f"no raw partition at {raw}: run ingest first")
    done = ctx.storage.manifest(validated)
    if done and done.get("raw_digest") == raw_manifest["digest"]:
        return {"status": "unchanged", "uri": validated, "summary": done.get("summary", {})}

    contract = load_contract(ctx.usecase.contract_path)
    with ctx.storage.local_copy(raw) as folder:
        frame = pd.read_parquet(folder / DATA_FILE)
        outcome = validate_frame(frame, contract, partition=day)
        summary = outcome.summary()
        manifest = {"step": "validate", "raw_digest": raw_manifest["digest"], "summary": summary}
        target = validated if outcome.success else quarantine
        with ctx.storage.writer(target, manifest) as staging:
            shutil.copy2(folder / DATA_FILE, staging / DATA_FILE)
            (staging / "validation.json").write_text(json.dumps(outcome.raw, default=str))
            if not outcome.success:
                reason = {
                    "partition": day.isoformat(),
                    "source": raw,
                    "failed": [f.message() for f in outcome.hard_failures],
                    "warnings": [f.message() for f in outcome.soft_failures],
                    "summary": summary,
                }
                (staging / "reason.json").write_text(json.dumps(reason, indent=2, default=str))
    for failure in outcome.hard_failures:
        log.error("%s: %s", day, failure.message())
    for failure in outcome.soft_failures:
        log.warning("%s: %s", day, failure.message())
    if outcome.success:
        ctx.storage.delete(quarantine)  # a fixed partition leaves quarantine
    status = "passed" if outcome.success else "failed"
    return {"status": status, "uri": target, "summary": summary}


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    result = StepResult("validate", ctx.usecase.name, ctx.partition.isoformat())
    for day in ctx.window(args.lookback):
        if not ctx.storage.exists(ctx.uri("raw", day)) and day != ctx.partition:
            continue  # nothing landed that day; the features step reports the gap
        done = validate_partition(ctx, day)
        result.metrics.setdefault(done["status"], []).append(day.isoformat())
        if day == ctx.partition:
            result.metrics["summary"] = done["summary"]
            if done["status"] == "failed":
                raise Rejected(
                    f"{ctx.usecase.name} {day}: data contract failed; quarantined at {done['uri']}",
                    quarantine=done["uri"],
                    summary=done["summary"],
                )
            result.outputs["validated"] = done["uri"]
    return result
