"""Where everything lives under a storage root: dataset names, partition folders, file names, URIs.

Layout: `<root>/<usecase>/<dataset>/ds=<YYYY-MM-DD>/[<sub>/]<files> + _SUCCESS`, plus the registry lock
at `<root>/<usecase>/registry/champion.lock`. On a local root each partition path is a relative symlink to the
version committed last, `<parent>/.versions/<partition>/<version>/` (see `storage/partitions.py`); reading
`ds=D/<file>` through the link is what a person or a tool does. Steps, the registry, backfill and tests name datasets and
files through this module only (standard library and the model roles of `mlcycle.specs.names`), so a name is
spelled once.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path

from mlcycle.specs.names import ModelRole


class Dataset(StrEnum):
    """The partitioned datasets of a use case, in the order data flows through them."""

    LANDING = "landing"  # written by the data source (or `mlcycle generate`)
    RAW = "raw"  # ingest: the landed bytes, snapshotted with their digest
    VALIDATED = "validated"  # validate: data that passed the contract
    QUARANTINE = "quarantine"  # validate: data that failed it, with the reason
    FEATURES = "features"  # features: the train/valid/test splits of a window
    TUNING = "tuning"  # tune: the best parameters of the search train uses
    EVALUATION = "evaluation"  # evaluate: the gate's decision per candidate version
    PREDICTIONS = "predictions"  # score: one sub-partition per model role
    MONITORING = "monitoring"  # monitor: drift and performance reports
    STALENESS = "staleness"  # staleness: the weekly metric-vs-model-age curve, read by freshness


class Split(StrEnum):
    TRAIN = "train"
    VALID = "valid"
    TEST = "test"


#: The splits of a features partition, in the order they are written.
SPLITS: tuple[str, ...] = tuple(Split)

#: Written last into a committed partition; holds its manifest (files, digests, rows, inputs).
SUCCESS = "_SUCCESS"
#: The data file of validated/ (and of Parquet landing and raw partitions).
DATA_FILE = "data.parquet"
#: The data file of a landing (and raw) partition that arrived as CSV.
CSV_FILE = "data.csv"
#: Landing file name -> format, in order of preference when both are present.
LANDING_FILES: dict[str, str] = {DATA_FILE: "parquet", CSV_FILE: "csv"}
#: tuning/ds=D: the parameters `train` fits with, and the search they came from.
BEST_PARAMS_FILE = "best_params.json"
#: evaluation/ds=D/v<N>/: the gate's decision, read by promote.
DECISION_FILE = "decision.json"
#: quarantine/ds=D: why the partition was refused.
REASON_FILE = "reason.json"
#: validated/ and quarantine/: the raw Great Expectations result and its rendering.
VALIDATION_FILE = "validation.json"
#: validated/, quarantine/ and monitoring/: the readable report (GX's rendering; Evidently's drift report).
REPORT_FILE = "report.html"
#: monitoring/ds=D: Evidently's drift report as JSON, and our summary of it (the per-column verdicts).
REPORT_JSON_FILE = "report.json"
SUMMARY_FILE = "summary.json"
#: monitoring/ds=D (engine: spark): the day's per-column statistics, Spark aggregates on the reference's bins.
STATISTICS_FILE = "statistics.json"
#: monitoring/ds=D/prediction/: the same three files for the drift of the champion's served scores.
PREDICTION_DRIFT_SUB = "prediction"
#: monitoring/ds=D: the performance verdict (always), its report and the report's JSON (only once labels arrived).
PERFORMANCE_FILE = "performance.json"
PERFORMANCE_REPORT_FILE = "performance.html"
PERFORMANCE_REPORT_JSON_FILE = "performance_report.json"
#: monitoring/ds=D: the shadow @challenger vs the @champion on the labelled day's served rows.
SHADOW_FILE = "shadow.json"
#: monitoring/ds=D: per version, its offline test metric vs its online (labelled live) metric.
OFFLINE_ONLINE_FILE = "offline_online.json"
#: staleness/ds=D: the metric of every champion vs its age, and the age budget measured from it.
STALENESS_FILE = "curve.json"

#: S3 only: each commit's files live under `<partition>/_v/<version>/`, named by the manifest's DATA_PREFIX key.
VERSIONS = "_v"
DATA_PREFIX = "data_prefix"
#: Local roots only: each commit's files live in `<parent>/.versions/<partition name>/<version>/`, and the
#: partition path `<parent>/<partition name>` is a relative symlink to the live one.
VERSIONS_FOLDER = ".versions"

_PARTITION_PREFIX = "ds="


#: A landing (and raw) partition written by Spark or an exporter: several Parquet files, read in name order.
PARTS_GLOB = "part-*.parquet"


def landed_file(folder: Path) -> tuple[Path, str] | None:
    """The data file of a landing or raw folder and its format (Parquet preferred), or None.

    A partition of ``part-*.parquet`` files is named by that pattern (:func:`partition_files` lists them)."""
    for name, fmt in LANDING_FILES.items():
        if (folder / name).is_file():
            return folder / name, fmt
    if partition_files(folder / PARTS_GLOB):
        return folder / PARTS_GLOB, "parquet"
    return None


def partition_files(source: Path) -> list[Path]:
    """The files a partition's data path stands for: the file itself, or the part files a pattern names (in
    name order); empty when there are none."""
    if "*" in source.name:
        return sorted(p for p in source.parent.glob(source.name) if p.is_file())
    return [source] if source.is_file() else []


def raw_file(folder: Path, manifest: dict[str, object]) -> tuple[Path, str]:
    """The data file of a committed raw partition and its format (older manifests: Parquet)."""
    fmt = str(manifest.get("format") or "parquet")
    name = str(manifest.get("file") or next(n for n, f in LANDING_FILES.items() if f == fmt))
    return folder / name, fmt


def split_file(split: str) -> str:
    """The Parquet file of one split in a features partition."""
    return f"{split}.parquet"


def role_sub(role: ModelRole | str) -> str:
    """The sub-partition of predictions/ds=D written by the model holding `role` (champion, challenger).

    A name that is not a `ModelRole` is a ValueError: no folder for a role that nothing writes.
    """
    return f"role={ModelRole(role).value}"


def partition_folder(partition: dt.date) -> str:
    return f"{_PARTITION_PREFIX}{partition.isoformat()}"


def partition_of_folder(name: str) -> str | None:
    """The date text of a partition folder name (`ds=YYYY-MM-DD` -> `YYYY-MM-DD`), None for other names."""
    return name[len(_PARTITION_PREFIX) :] if name.startswith(_PARTITION_PREFIX) else None


def dataset_uri(root: str, usecase: str, dataset: str) -> str:
    """The folder holding every partition of a dataset."""
    return f"{root.rstrip('/')}/{usecase}/{dataset}"


def partition_uri(root: str, usecase: str, dataset: str, partition: dt.date, sub: str | None = None) -> str:
    """One partition (or one sub-partition of it) of a dataset."""
    return f"{dataset_uri(root, usecase, dataset)}/{partition_folder(partition)}" + (f"/{sub}" if sub else "")


def champion_lock_uri(root: str, usecase: str) -> str:
    """The object whose atomic creation makes a promotion's compare-and-set one critical section."""
    return f"{root.rstrip('/')}/{usecase}/registry/champion.lock"
