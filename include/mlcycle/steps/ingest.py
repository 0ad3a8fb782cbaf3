"""ingest: landing/ds=D -> raw/ds=D, an immutable snapshot of what arrived, with its digest.

A landing partition holds `data.parquet`, `data.csv` (UTF-8, comma-delimited, with a header) or several
`part-*.parquet` files (as Spark and most exporters write a table). Raw keeps the original bytes under the
original names and records the format (and the file, or the parts' pattern) in its manifest; the validate step
reads any of them, on either engine (see `mlcycle.contracts.reading`), and always commits one Parquet file to
validated/.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from typing import Any

from mlcycle.specs.catalog import IngestOptions
from mlcycle.specs.names import Step
from mlcycle.specs.results import IngestResult
from mlcycle.steps.base import Rejected, StepContext
from mlcycle.storage.layout import DATA_FILE, LANDING_FILES, PARTS_GLOB, Dataset, landed_file, partition_files
from mlcycle.storage.partitions import ManifestError, sha256_files

log = logging.getLogger(__name__)


def landed(ctx: StepContext, day: dt.date) -> bool:
    """Whether a day's landing partition is complete (its completion marker is there).

    A marker that is not a JSON object is bad input from the data source, which a retry cannot fix: REJECTED.
    """
    uri = ctx.uri(Dataset.LANDING, day)
    try:
        return ctx.storage.exists(uri)
    except ManifestError as exc:
        raise Rejected(
            f"landing partition refused: {exc}. The data source must rewrite the marker; then rerun "
            f"mlcycle ingest --usecase {ctx.usecase.name} --partition {day.isoformat()}",
            landing=uri,
        ) from None


def ingest_partition(ctx: StepContext, day: dt.date) -> dict[str, str]:
    """Snapshot one landing partition into raw; unchanged landing data is not rewritten."""
    landing, raw = ctx.uri(Dataset.LANDING, day), ctx.uri(Dataset.RAW, day)
    with ctx.storage.local_copy(landing) as folder:
        found = landed_file(folder)
        if found is None:
            raise FileNotFoundError(f"{landing} has none of {', '.join([*LANDING_FILES, PARTS_GLOB])}")
        source, fmt = found
        files = partition_files(source)  # one file, or the part-*.parquet files Spark and exporters write
        digest = sha256_files(files)
        previous = ctx.storage.manifest(raw)
        if previous and previous.get("digest") == digest and previous.get("file", DATA_FILE) == source.name:
            return {"uri": raw, "digest": digest, "status": "unchanged", "format": fmt}
        manifest = {
            "step": "ingest",
            "source": landing,
            "digest": digest,
            "format": fmt,
            "file": source.name,
            "replaces": previous.get("digest") if previous else None,
            "airflow": ctx.produced_by(),
        }
        with ctx.storage.writer(raw, manifest) as staging:
            for file in files:
                shutil.copy2(file, staging / file.name)
    log.info("ingested %s -> %s (%s, sha256 %s)", landing, raw, fmt, digest[:12])
    return {"uri": raw, "digest": digest, "status": "written", "format": fmt}


def main(ctx: StepContext, options: IngestOptions) -> IngestResult:
    outputs: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    # Older partitions of the look-back window are caught up if their landing data exists;
    # the run's own partition must exist (a missing one is an error, retried: data may be late).
    for day in ctx.window(options.lookback):
        if not landed(ctx, day):
            if day == ctx.partition:
                raise FileNotFoundError(f"no landing partition at {ctx.uri(Dataset.LANDING, day)}")
            metrics.setdefault("missing", []).append(day.isoformat())
            continue
        done = ingest_partition(ctx, day)
        metrics.setdefault(done["status"], []).append(day.isoformat())
        if day == ctx.partition:
            outputs["raw"] = done["uri"]
            metrics["digest"] = done["digest"]
            metrics["format"] = done["format"]
    inputs = {"landing": ctx.uri(Dataset.LANDING)}
    return IngestResult.of(
        Step.INGEST, ctx.usecase.name, ctx.partition.isoformat(), outputs=outputs, metrics=metrics, inputs=inputs
    )
