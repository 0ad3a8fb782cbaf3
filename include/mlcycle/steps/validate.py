"""validate: raw/ds=D -> validated/ds=D if the data contract holds, else quarantine/ds=D + reason.json.

Two profiles of the same contract (training/serving skew is caught by checking both with one file):

- ``training`` (default; the training DAG): the whole contract, label rules included.
- ``serving`` (``--serving``; the scoring DAG): no rules on the target, which may be absent.

The validated partition's manifest records the profile it passed. A training validation covers
serving, not the other way round: the training DAG re-validates a day that passed only as serving,
and `features` uses only days validated as training. A day that passes serving but fails training
(a label outage) keeps its serving-validated partition, so scoring and monitoring of that day stay
valid, and is quarantined for training with its reason.

Every validation stores, with the partition it commits (validated/ or quarantine/): the full GX
result (`validation.json`) and a readable report (`report.html`); a rejected one also `reason.json`
(failed expectations, observed values, sample rows) and the refused bytes as they arrived. The same
files are logged to the MLflow parent run of the DAG run under `validation/<partition>/`, as copies that
quote no values or rows of the data unless the use case sets `tracking.log_data_samples`. raw/ is
never changed: it stays the immutable record of what arrived.

A day that fails withdraws its validated partition (a re-delivery that breaks the contract must not leave the
earlier delivery's data in use), except in the label-outage case above. The validated manifest records the raw
digest it was validated from, and `features` refuses a validated day whose raw partition has changed since.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mlcycle.contracts.profiles import SERVING, TRAINING, covers, profile_of
from mlcycle.contracts.reading import UnreadableData, read_partition, unreadable_result
from mlcycle.contracts.report import render_html
from mlcycle.contracts.results import ContractResult
from mlcycle.contracts.samples import copy_without_data
from mlcycle.schema import DataContract, load_contract
from mlcycle.specs.catalog import ValidateOptions
from mlcycle.specs.names import Step
from mlcycle.specs.results import ValidateResult
from mlcycle.steps.base import Rejected, StepContext
from mlcycle.storage.layout import (
    DATA_FILE,
    REASON_FILE,
    REPORT_FILE,
    VALIDATION_FILE,
    Dataset,
    partition_files,
    raw_file,
)
from mlcycle.storage.partitions import merge_parquet, sha256_file

log = logging.getLogger(__name__)

#: Failed expectations quoted in a summary (XCom, manifest) and in the REJECTED reason.
SUMMARY_LIMIT = 20
REASON_LIMIT = 3
RUNBOOK = "docs/runbooks/data-rejected.md"


def trailing_row_counts(ctx: StepContext, day: dt.date, contract: DataContract) -> list[int]:
    """Row counts of the newest validated partitions before ``day`` (oldest first), from their manifests.

    At most ``table.volume.history`` of them, searched among the ``4 x history`` days before ``day``
    (at least 28): a volume that old says little about today's, and the search stays a few reads.
    """
    volume = contract.table.volume
    if volume is None:
        return []
    counts: list[int] = []
    for back in range(1, max(4 * volume.history, 28) + 1):
        manifest = ctx.storage.manifest(ctx.uri(Dataset.VALIDATED, day - dt.timedelta(days=back)))
        rows = (manifest or {}).get("rows")
        if isinstance(rows, int):
            counts.append(rows)
            if len(counts) == volume.history:
                break
    return counts[::-1]


def _quarantined_file(name: str, dropped: list[str] | None) -> dict[str, Any]:
    """What reason.json says of the refused file kept in quarantine."""
    if dropped is None:
        kept = f"{name} as it arrived (unreadable: its columns, forbidden ones included, could not be read)"
    elif dropped:
        kept = f"{name} without the forbidden column(s) {dropped}; raw/ keeps the delivery as it arrived"
    else:
        kept = f"{name} as it arrived (it has no forbidden column)"
    return {"dropped_columns": dropped, "quarantined_file": kept}


def _reason(
    ctx: StepContext, day: dt.date, profile: str, outcome: ContractResult, facts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "usecase": ctx.usecase.name,
        "partition": day.isoformat(),
        "profile": profile,
        **facts,
        "failed": [f.message() for f in outcome.hard_failures],
        "warnings": [f.message() for f in outcome.soft_failures],
        "failures": [f.to_dict(rows=True) for f in outcome.failures],
        "summary": outcome.summary(),
        "runbook": RUNBOOK,
        "rerun": f"mlcycle ingest/validate --usecase {ctx.usecase.name} --partition {day.isoformat()}"
        + (" --serving" if profile == SERVING else ""),
    }


def without_forbidden(source: Path, fmt: str, target: Path, dropped: list[str]) -> None:
    """The refused file at `target`: as it arrived, or without the forbidden (PII) columns `dropped`, in its format.

    Quarantine is where people open refused data to see what went wrong; a person's email has no business there.
    raw/ keeps the delivery as it arrived (its digest is the lineage's record).
    """
    if not dropped:
        shutil.copy2(source, target)
    elif fmt == "parquet":  # a part of a multi-file delivery may lack a column another part has
        table = pq.read_table(source)
        pq.write_table(table.drop_columns([c for c in dropped if c in table.column_names]), target)
    else:  # CSV: every field as the text that arrived (no type conversion, empty stays empty)
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        frame.drop(columns=dropped).to_csv(target, index=False)


def drop_from_samples(outcome: ContractResult, dropped: list[str]) -> None:
    """The sample rows of the failures, without the forbidden columns (a sample row quotes every column)."""
    for failure in outcome.failures:
        failure.rows = [{k: v for k, v in row.items() if k not in dropped} for row in failure.rows]


def log_to_mlflow(ctx: StepContext, validations: list[tuple[dt.date, str]]) -> str:
    """Log committed validations (day, uri) to the DAG run's MLflow parent run, under
    ``validation/<day>/``; returns the run id.

    Every MLflow user can read these runs, so unless the use case opts in (``tracking.log_data_samples``) the
    files are logged as copies that quote no values and no rows of the data; the stored partition keeps them.
    """
    import mlflow

    from mlcycle.registry import tracking

    with_data = ctx.usecase.tracking.log_data_samples
    parent = tracking.parent_run(ctx.usecase, ctx.airflow, ctx.partition.isoformat())
    with mlflow.start_run(run_id=parent):
        for day, uri in validations:
            with ctx.storage.local_copy(uri) as folder, tempfile.TemporaryDirectory() as scratch:
                for name in (VALIDATION_FILE, REPORT_FILE, REASON_FILE):
                    if (folder / name).is_file():
                        logged = folder / name if with_data else copy_without_data(folder / name, Path(scratch))
                        mlflow.log_artifact(str(logged), artifact_path=f"validation/{day.isoformat()}")
    return parent


def validate_partition(ctx: StepContext, day: dt.date, profile: str = TRAINING) -> dict[str, Any]:
    """Validate one raw partition with a profile.

    Returns {"status": passed | failed | unchanged, "uri", "profile", "summary", "outcome"?}.
    """
    raw, validated, quarantine = (ctx.uri(d, day) for d in (Dataset.RAW, Dataset.VALIDATED, Dataset.QUARANTINE))
    raw_manifest = ctx.storage.manifest(raw)
    if raw_manifest is None:
        raise FileNotFoundError(f"no raw partition at {raw}: run ingest first")
    contract_path = Path(ctx.usecase.contract_path)
    contract_digest = sha256_file(contract_path)
    done = ctx.storage.manifest(validated)
    if (
        done
        and done.get("raw_digest") == raw_manifest["digest"]
        and done.get("contract_digest") == contract_digest
        and covers(profile_of(done), profile)
    ):
        return {
            "status": "unchanged",
            "uri": validated,
            "profile": profile_of(done),
            "summary": done.get("summary", {}),
        }

    contract = load_contract(contract_path)
    history = trailing_row_counts(ctx, day, contract)
    with ctx.storage.local_copy(raw) as folder:
        source, fmt = raw_file(folder, raw_manifest)
        frame = None
        if ctx.usecase.engine == "spark":  # the same contract, run by GX on Spark (mlcycle.spark.validate)
            from mlcycle.spark.validate import check_partition

            # On S3 the executors read the partition's objects themselves (s3a://: mlcycle.spark.s3).
            remote = (
                None
                if ctx.storage.is_local
                else {n: ctx.storage.file_uri(raw, n) for n in raw_manifest.get("files", {})}
            )
            outcome, rows, frame = check_partition(
                ctx.usecase.spark,
                source,
                fmt,
                contract,
                partition=day,
                serving=profile == SERVING,
                history=history,
                remote=remote,
            )
        else:
            try:
                if not partition_files(source):
                    raise UnreadableData(f"raw partition {raw} has no {source.name}")
                frame = read_partition(source, fmt, contract)
            except UnreadableData as exc:
                outcome = unreadable_result(str(exc), fmt)
            else:
                # Imported here, not at module level: GX (with scipy and SQLAlchemy) takes ~8-25 s to import on
                # this machine, and the scoring DAG's validate usually finds its day validated by training.
                from mlcycle.contracts.gx_runner import validate_frame

                outcome = validate_frame(frame, contract, partition=day, serving=profile == SERVING, history=history)
            rows = None if frame is None else len(frame)
        facts = {
            "source": raw,
            "raw_digest": raw_manifest["digest"],
            "format": fmt,
            "rows": rows,
        }
        manifest = {
            "step": "validate",
            "engine": ctx.usecase.engine,
            "profile": profile,
            **facts,
            "contract_digest": contract_digest,
            "history": history,
            "summary": outcome.summary(limit=SUMMARY_LIMIT),
            "airflow": ctx.produced_by(),
        }
        target = validated if outcome.success else quarantine
        title = f"{ctx.usecase.name} {day.isoformat()} ({profile} profile)"
        with ctx.storage.writer(target, manifest) as staging:
            if not outcome.success:
                # None: the file could not be read, so neither could its columns (it is kept as it arrived).
                dropped = None if frame is None else contract.forbidden_in(frame.columns)
                if dropped:
                    drop_from_samples(outcome, dropped)
                files = partition_files(source)  # the file, or every part of a multi-file delivery
                for file in files:
                    without_forbidden(file, fmt, staging / file.name, dropped or [])
                kept = ", ".join(f.name for f in files) or source.name
                reason = _reason(ctx, day, profile, outcome, {**facts, **_quarantined_file(kept, dropped)})
                (staging / REASON_FILE).write_text(json.dumps(reason, indent=2, default=str), encoding="utf-8")
            elif fmt == "parquet":
                merge_parquet(partition_files(source), staging / DATA_FILE)  # one file: copied as it arrived
            else:
                assert frame is not None
                frame.to_parquet(staging / DATA_FILE, index=False)
            (staging / VALIDATION_FILE).write_text(json.dumps(outcome.raw, default=str), encoding="utf-8")
            page = render_html(outcome, title=title, facts={**facts, "profile": profile})
            (staging / REPORT_FILE).write_text(page, encoding="utf-8")
    for failure in outcome.hard_failures:
        log.error("%s: %s", day, failure.message())
    for failure in outcome.soft_failures:
        log.warning("%s: %s", day, failure.message())
    withdrawn = None
    if outcome.success:
        _leave_quarantine(ctx, quarantine, profile, str(raw_manifest["digest"]))
    elif _withdraw_validated(ctx, validated, profile, str(raw_manifest["digest"])):
        withdrawn = validated
    status = "passed" if outcome.success else "failed"
    return {
        "status": status,
        "uri": target,
        "profile": profile,
        "summary": manifest["summary"],
        "outcome": outcome,
        "withdrawn": withdrawn,
    }


def _leave_quarantine(ctx: StepContext, quarantine: str, profile: str, raw_digest: str) -> None:
    """A partition that passes leaves quarantine, unless it passed only as serving the very data that
    failed training (that record still says why the day cannot be trained on)."""
    record = ctx.storage.manifest(quarantine)
    if record is None:
        return
    if profile == SERVING and profile_of(record) == TRAINING and record.get("raw_digest") == raw_digest:
        return
    ctx.storage.delete(quarantine)


def _withdraw_validated(ctx: StepContext, validated: str, profile: str, raw_digest: str) -> bool:
    """A delivery that fails withdraws the day's validated partition: it no longer holds what arrived (a
    re-delivery), or no longer passes the contract. Kept: the very data that failed training but passed as
    serving (a label outage), which stays valid for scoring and is never trained on."""
    record = ctx.storage.manifest(validated)
    if record is None:
        return False
    if profile == TRAINING and profile_of(record) == SERVING and record.get("raw_digest") == raw_digest:
        return False
    ctx.storage.delete(validated)
    log.warning(
        "withdrew %s: it was validated from raw sha256 %s, and the delivery now in raw (sha256 %s) failed",
        validated,
        str(record.get("raw_digest"))[:12],
        raw_digest[:12],
    )
    return True


def rejection_reason(ctx: StepContext, day: dt.date, profile: str, outcome: ContractResult, uri: str) -> str:
    """The one-line reason of a REJECTED validation: what the task log and the alert show."""
    hard = outcome.hard_failures
    shown = "; ".join(f.message() for f in hard[:REASON_LIMIT])
    more = f"; (+{len(hard) - REASON_LIMIT} more)" if len(hard) > REASON_LIMIT else ""
    return (
        f"{ctx.usecase.name} {day.isoformat()}: data contract failed ({profile} profile, {len(hard)} hard and "
        f"{len(outcome.soft_failures)} soft failures of {outcome.evaluated} expectations): {shown}{more}. "
        f"Quarantined at {uri} ({REASON_FILE}, {REPORT_FILE}); runbook: {RUNBOOK}"
    )


def main(ctx: StepContext, options: ValidateOptions) -> ValidateResult:
    profile = SERVING if options.serving else TRAINING
    metrics: dict[str, Any] = {"profile": profile, "engine": ctx.usecase.engine}
    validations: list[tuple[dt.date, str]] = []
    current: dict[str, Any] = {}
    for day in ctx.window(options.lookback):
        if not ctx.storage.exists(ctx.uri(Dataset.RAW, day)) and day != ctx.partition:
            continue  # nothing landed that day; the features step reports the gap
        done = validate_partition(ctx, day, profile)
        metrics.setdefault(done["status"], []).append(day.isoformat())
        if done["status"] != "unchanged":
            validations.append((day, done["uri"]))
        if day == ctx.partition:
            current = done
    if validations:
        try:
            metrics["mlflow_run_id"] = log_to_mlflow(ctx, validations)
        except Exception as exc:  # the data verdict stands even when tracking is down
            log.warning("could not log the validation results to MLflow: %s", exc)
            metrics["mlflow_error"] = f"{type(exc).__name__}: {exc}"
    metrics["summary"] = current["summary"]
    if current["status"] == "failed":
        withdrawn = current.get("withdrawn")
        raise Rejected(
            rejection_reason(ctx, ctx.partition, profile, current["outcome"], current["uri"])
            + (f" The validated data of the earlier delivery was withdrawn ({withdrawn})." if withdrawn else ""),
            quarantine=current["uri"],
            **({"withdrawn": withdrawn} if withdrawn else {}),
            profile=profile,
            summary=current["summary"],
            **({"mlflow_run_id": metrics["mlflow_run_id"]} if "mlflow_run_id" in metrics else {}),
        )
    return ValidateResult.of(
        Step.VALIDATE,
        ctx.usecase.name,
        ctx.partition.isoformat(),
        outputs={"validated": current["uri"]},
        metrics=metrics,
        inputs={"raw": ctx.uri(Dataset.RAW)},
    )
