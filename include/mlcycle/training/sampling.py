"""Training stays single-node: the train split of a large window is cut to a uniform random sample.

`split.max_train_rows` (usecase.yaml) bounds the rows a candidate is fitted on, whatever the window holds (an
`engine: spark` use case may land far more rows a day than one pod can fit). Only the train split is sampled:
valid and test stay whole, so the gate compares candidate and champion on the same frozen test rows. The
sample is drawn with the use case's `model.seed` and kept in the window's row order, so a rerun on the same
data draws the same rows (the training cache's key includes the bound), and the run records the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class TrainSample:
    """What the sample was drawn from and how: logged as the candidate run's params."""

    window_rows: int
    rows: int
    max_rows: int | None
    seed: int

    @property
    def sampled(self) -> bool:
        return self.rows < self.window_rows

    def params(self) -> dict[str, int | str]:
        """The MLflow params of the sample (`rows_train` is logged with the other splits' sizes)."""
        bound: dict[str, int | str] = {"max_train_rows": self.max_rows if self.max_rows is not None else "none"}
        if not self.sampled:
            return bound
        return {**bound, "rows_train_window": self.window_rows, "train_sample_seed": self.seed}


def sample_positions(rows: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """The ascending positions of a uniform sample of `max_rows` of `rows` rows without replacement, drawn with
    `seed`; None when no bound is set or all rows fit. The rows `DataFrame.sample(n=max_rows, random_state=seed)`
    draws, so a frame in memory and a file read by `read_sample` give the same sample."""
    if max_rows is None or rows <= max_rows:
        return None
    return np.sort(np.random.RandomState(seed).choice(rows, size=max_rows, replace=False))


def sample_train(train: pd.DataFrame, max_rows: int | None, seed: int) -> tuple[pd.DataFrame, TrainSample]:
    """`train` itself when it has at most `max_rows` rows (or no bound is set), else `max_rows` of its rows drawn
    uniformly without replacement with `seed`, in their original order."""
    positions = sample_positions(len(train), max_rows, seed)
    if positions is None:
        return train, TrainSample(len(train), len(train), max_rows, seed)
    return train.iloc[positions], TrainSample(len(train), len(positions), max_rows, seed)


def read_sample(
    path: Path, max_rows: int | None, seed: int, columns: list[str] | None = None
) -> tuple[pd.DataFrame, TrainSample]:
    """`sample_train` of the Parquet file at `path`, drawn before the rows become a DataFrame: one row group at a
    time, each cut to the sampled rows it holds, so a file larger than the bound costs one row group's memory
    (~1M rows as Arrow columns) and the sample's, never the whole file's (2.7 GB of Arrow for the 18.6M-row train
    split at 2M rows a day)."""
    file = pq.ParquetFile(path)
    window_rows = file.metadata.num_rows
    positions = sample_positions(window_rows, max_rows, seed)
    if positions is None:
        return file.read(columns=columns).to_pandas(), TrainSample(window_rows, window_rows, max_rows, seed)
    pieces, offset = [], 0
    for group in range(file.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        low, high = np.searchsorted(positions, [offset, offset + rows])
        if high > low:
            pieces.append(file.read_row_group(group, columns=columns).take(positions[low:high] - offset))
        offset += rows
    table = pa.concat_tables(pieces)
    return table.to_pandas(), TrainSample(window_rows, table.num_rows, max_rows, seed)
