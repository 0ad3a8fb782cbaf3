"""The drift statistics on Spark against the local engine, on the drift benchmark's labelled columns.

The benchmark's data (dev/mlcycle_dev/benchmarks/drift.py: 30 columns, 17 with a shift that matters, 13 without)
lands as three part files. Spark must draw the very rows the local engine's seeded sample draws (row positions
across the parts), so Evidently gives the same verdict and score per column; its one-pass aggregates must count
every row once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.monitoring.drift import current_sample_size, run_drift_report, sample_current
from mlcycle.monitoring.reference_profile import CATEGORICAL, NUMERIC
from mlcycle.spark.drift import column_statistics, current_sample, read_current, reference_bins
from mlcycle_dev.benchmarks.drift import columns, make_frames

ROWS = 12_000
SAMPLE_ROWS = 2_000


def test_spark_gives_the_local_verdicts_on_the_labelled_columns(spark: Any, tmp_path: Path) -> None:
    reference, current = make_frames(ROWS)
    labelled = columns()
    kinds = {c.name: c.kind for c in labelled}
    numeric = [c for c, kind in kinds.items() if kind == NUMERIC]
    categorical = [c for c, kind in kinds.items() if kind == CATEGORICAL]
    names = list(kinds)
    folder = tmp_path / "current"
    folder.mkdir()
    for index, start in enumerate(range(0, ROWS, 5_000)):  # parts of 5,000, 5,000 and 2,000 rows
        current.iloc[start : start + 5_000].to_parquet(folder / f"part-{index:05d}.parquet", index=False)

    local, _ = run_drift_report(reference, current, numeric=numeric, categorical=categorical, sample_rows=SAMPLE_ROWS)
    frame = read_current(spark, folder, names)
    statistics = column_statistics(frame, kinds, reference_bins(reference, kinds))
    sample = current_sample(frame, names, statistics["rows"], len(reference), SAMPLE_ROWS)
    on_spark, _ = run_drift_report(reference, sample, numeric=numeric, categorical=categorical, sample_rows=SAMPLE_ROWS)

    rows = current_sample_size(len(reference), SAMPLE_ROWS)
    pd.testing.assert_frame_equal(
        sample.reset_index(drop=True), sample_current(current, names, rows, 0).reset_index(drop=True)
    )
    assert [(c.column, c.stattest, c.drifted) for c in on_spark.columns] == [
        (c.column, c.stattest, c.drifted) for c in local.columns
    ]
    assert [c.score for c in on_spark.columns] == [c.score for c in local.columns]
    assert on_spark.dataset_drift == local.dataset_drift
    # The verdicts are the benchmark's labels on most columns (what the local engine achieves, see docs/drift.md).
    assert sum(c.drifted == next(x.shifted for x in labelled if x.name == c.column) for c in local.columns) >= 25

    assert statistics["rows"] == ROWS
    for column, entry in statistics["columns"].items():
        assert entry["nulls"] == int(current[column].isna().sum()), column
        assert entry["nulls"] + sum(entry["counts"].values()) == ROWS, column
