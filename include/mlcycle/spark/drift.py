"""The drift statistics of the monitor step on Spark: one pass of aggregates over the day, and its test rows.

What runs where, so the verdicts are those of the local engine on the same data:

- **Spark** reads the day once for its per-column statistics, all mergeable aggregates computed in one
  ``agg``: rows, nulls (and ±inf for numbers), a histogram of each numeric column on the reference's bins (its
  deciles) and each categorical column's counts per reference level (plus "other"). They are stored with the
  report (``statistics.json``): how the day differs from the reference, at any size.
- **The test rows** are the seeded sample the local engine draws
  (:func:`mlcycle.monitoring.drift.sample_current`: the same row positions of the same file order, picked by
  Parquet's own row index), collected to the driver: at most ``sample_rows`` rows, whatever the day's size.
- **Evidently** then tests and renders them against the reference sketch exactly as the monitor step does
  (:func:`mlcycle.monitoring.drift.run_drift_report`), so the same rows give the same verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.config import UseCase
from mlcycle.monitoring.drift import DEFAULT_SEED, current_sample_size
from mlcycle.monitoring.reference_profile import CATEGORICAL, NUMERIC
from mlcycle.spark.s3 import spark_paths
from mlcycle.spark.session import column, get_session

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "column_statistics",
    "current_for_drift",
    "current_sample",
    "read_current",
    "reference_bins",
]

#: Histogram bins of a numeric column: the reference's deciles.
BINS = 10
_OTHER = "__other__"


def read_current(session: SparkSession, path: Path | str, columns: list[str]) -> DataFrame:
    """The day's ``columns``, with each row's position in the partition (file order, then Parquet's row index).

    ``path``: a local file or folder, or the s3:// URI of the committed object (read through S3A)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame = session.read.parquet(*spark_paths(session, [str(path)])).select(
        *(column(c) for c in columns), "_metadata.file_path", "_metadata.row_index"
    )
    # A partition is one file or several part-* files (read in name order by the local engine): a row's position
    # is the rows of the files before its own plus its index in its file.
    sizes = frame.groupBy("file_path").agg(F.count("*").alias("rows"))
    offsets = sizes.select(
        "file_path",
        (F.sum("rows").over(Window.orderBy("file_path").rowsBetween(Window.unboundedPreceding, -1))).alias("offset"),
    ).fillna(0, subset=["offset"])
    return frame.join(F.broadcast(offsets), "file_path").select(
        *(column(c) for c in columns), (F.col("offset") + F.col("row_index")).alias("_position")
    )


def current_sample(
    frame: DataFrame,
    columns: list[str],
    total: int,
    reference_rows: int,
    sample_rows: int | None,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """The rows the local engine's ``sample_current`` would test, in partition order, as pandas."""
    import numpy as np
    from pyspark.sql import functions as F

    rows = current_sample_size(reference_rows, sample_rows)
    picked = frame
    if rows is not None and total > rows:
        positions = np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))
        wanted = frame.sparkSession.createDataFrame([(int(p),) for p in positions], ["_position"])
        picked = frame.join(F.broadcast(wanted), "_position")
    sample: pd.DataFrame = picked.orderBy("_position").select(*(column(c) for c in columns)).toPandas()
    return sample


def reference_bins(reference: pd.DataFrame, kinds: Mapping[str, str]) -> dict[str, list[Any]]:
    """Per column: a numeric column's bin edges (its finite values' deciles), a categorical one's levels."""
    import numpy as np

    bins: dict[str, list[Any]] = {}
    for name, kind in kinds.items():
        values = reference[name]
        if kind == NUMERIC:
            finite = values.to_numpy(dtype="float64", na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1))) if len(finite) else np.array([])
            bins[name] = [float(e) for e in edges]
        else:
            bins[name] = sorted(str(v) for v in values.dropna().unique())
    return bins


def column_statistics(frame: DataFrame, kinds: Mapping[str, str], bins: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Rows, and per column nulls and counts per reference bin or level: one Spark aggregation over the day.

    A numeric column's counts are of [e0, e1), ..., [e(n-1), en] with ``below`` / ``above`` outside them; a
    categorical column's are per reference level with ``__other__`` for levels the reference never saw.
    """
    from pyspark.sql import functions as F

    aggregates = [F.count(F.lit(1)).alias("rows")]
    names: list[tuple[str, str, Any]] = []

    def add(name: str, label: Any, condition: Any) -> None:
        aggregates.append(F.count_if(condition).alias(f"c{len(names)}"))
        names.append((name, "count" if label is None else "bin", label))

    for name, kind in kinds.items():
        value = column(name)
        missing = value.isNull() | (F.isnan(value) if kind == NUMERIC else F.lit(False))
        add(name, None, missing)
        edges = bins[name]
        if kind == NUMERIC:
            # NaN sorts above every number in Spark SQL: it is counted with the nulls, never in a bin.
            value = F.when(~missing, value)
            add(name, "below", value < F.lit(edges[0]) if edges else F.lit(False))
            for i in range(len(edges) - 1):
                upper = value <= F.lit(edges[i + 1]) if i == len(edges) - 2 else value < F.lit(edges[i + 1])
                add(
                    name,
                    f"[{edges[i]:.6g}, {edges[i + 1]:.6g}{']' if i == len(edges) - 2 else ')'}",
                    (value >= F.lit(edges[i])) & upper,
                )
            add(name, "above", value > F.lit(edges[-1]) if edges else ~missing)
        else:
            for level in edges:
                add(name, level, value.cast("string") == F.lit(level))
            add(name, _OTHER, value.isNotNull() & ~value.cast("string").isin(edges))
    row = frame.agg(*aggregates).first()
    assert row is not None
    statistics: dict[str, Any] = {"rows": int(row["rows"]), "columns": {}}
    for index, (name, what, label) in enumerate(names):
        entry = statistics["columns"].setdefault(name, {"kind": kinds[name], "nulls": 0, "counts": {}})
        count = int(row[f"c{index}"])
        if what == "count":
            entry["nulls"] = count
        else:
            entry["counts"][str(label)] = count
    return statistics


def current_for_drift(
    usecase: UseCase, path: Path | str, reference: pd.DataFrame, columns: list[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(the rows the drift tests see, the day's statistics) of the validated partition at ``path``, on Spark.

    The test rows are the local engine's sample of the same day (see the module docstring); the statistics
    are ``column_statistics`` on the reference's bins and levels.
    """
    kinds = {c: NUMERIC for c in columns if c in usecase.numeric_features} | {
        c: CATEGORICAL for c in columns if c in usecase.categorical_features
    }
    session = get_session(usecase.spark)
    frame = read_current(session, path, columns).persist()
    try:
        statistics = column_statistics(frame, kinds, reference_bins(reference, kinds))
        sample = current_sample(
            frame, columns, statistics["rows"], len(reference), usecase.thresholds.drift.sample_rows
        )
    finally:
        frame.unpersist()
    return sample, statistics
