"""ingest: landing/ds=D -> raw/ds=D, an immutable snapshot of what arrived, with its digest."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil

from mlcycle.steps.base import StepContext, StepResult
from mlcycle.storage.partitions import sha256_file

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"


def ingest_partition(ctx: StepContext, day: dt.date) -> dict[str, str]:
    """Snapshot one landing partition into raw; unchanged landing data is not rewritten."""
    landing, raw = ctx.uri("landing", day), ctx.uri("raw", day)
    with ctx.storage.local_copy(landing) as folder:
        source = folder / DATA_FILE
        if not source.is_file():
            raise FileNotFoundError(f"{landing} has no {DATA_FILE}")
        digest = sha256_file(source)
        previous = ctx.storage.manifest(raw)
        if previous and previous.get("digest") == digest:
            return {"uri": raw, "digest": digest, "status": "unchanged"}
        manifest = {
            "step": "ingest",
            "source": landing,
            "digest": digest,
            "replaces": previous.get("digest") if previous else None,
        }
        with ctx.storage.writer(raw, manifest) as staging:
            shutil.copy2(source, staging / DATA_FILE)
    log.info("ingested %s -> %s (sha256 %s)", landing, raw, digest[:12])
    return {"uri": raw, "digest": digest, "status": "written"}


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    result = StepResult("ingest", ctx.usecase.name, ctx.partition.isoformat())
    # Older partitions of the look-back window are caught up if their landing data exists;
    # the run's own partition must exist (a missing one is an error, retried: data may be late).
    for day in ctx.window(args.lookback):
        if day != ctx.partition and not ctx.storage.exists(ctx.uri("landing", day)):
            result.metrics.setdefault("missing", []).append(day.isoformat())
            continue
        if not ctx.storage.exists(ctx.uri("landing", day)):
            raise FileNotFoundError(f"no landing partition at {ctx.uri('landing', day)}")
        done = ingest_partition(ctx, day)
        result.metrics.setdefault(done["status"], []).append(day.isoformat())
        if day == ctx.partition:
            result.outputs["raw"] = done["uri"]
            result.metrics["digest"] = done["digest"]
    return result
