"""Training stays single-node: the train split of a large window is cut to a uniform random sample.

`split.max_train_rows` (usecase.yaml) bounds the rows a candidate is fitted on, whatever the window holds (an
`engine: spark` use case may land far more rows a day than one pod can fit). Only the train split is sampled:
valid and test stay whole, so the gate compares candidate and champion on the same frozen test rows. The
sample is drawn with the use case's `model.seed` and kept in the window's row order, so a rerun on the same
data draws the same rows (the training cache's key includes the bound), and the run records the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


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


def sample_train(train: pd.DataFrame, max_rows: int | None, seed: int) -> tuple[pd.DataFrame, TrainSample]:
    """`train` itself when it has at most `max_rows` rows (or no bound is set), else `max_rows` of its rows drawn
    uniformly without replacement with `seed`, in their original order."""
    if max_rows is None or len(train) <= max_rows:
        return train, TrainSample(len(train), len(train), max_rows, seed)
    sample = train.sample(n=max_rows, random_state=seed).sort_index(kind="stable")
    return sample, TrainSample(len(train), len(sample), max_rows, seed)
