"""How far YarnIt's boosted trees beat its simple model (ML Test Score, Model 5), on the generator's data.

For each generator seed and window (days x base rows per day, the sizes the tests and the demos use), the
days are generated, split by time as `features` splits them (the last `test_days` days are the test set, the
`valid_days` before them the valid set, the rest train) and both of YarnIt's families are fitted on train with
mlcycle's own code (`build_model`, and evaluate's `simple_model`) and scored on test: one line per case with both ROC AUCs and the gap.

    .venv/bin/python -m mlcycle_dev.benchmarks.simple_model_gap
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from mlcycle.config import get_usecase
from mlcycle.evaluation.evidence import simple_model
from mlcycle.synthetic.yarnit import generate_day
from mlcycle.training.model_io import feature_frame
from mlcycle.training.trainers import build_model

START = dt.date(2026, 9, 1)
#: (days, base rows per day): tests/unit/test_steps.py (8 x 900) and the demo (14 x 3000).
WINDOWS = ((8, 900), (14, 3000))
SEEDS = (7, 11, 23)


def gap(seed: int, days: int, rows: int) -> tuple[float, float, float]:
    """(trees' ROC AUC, simple model's, positive rate) on the test days of one generated window."""
    usecase = get_usecase("yarnit")
    frames = [generate_day(START + dt.timedelta(days=i), seed=seed, base_rows=rows) for i in range(days)]
    test_from = days - usecase.split.test_days
    train = pd.concat(frames[: test_from - usecase.split.valid_days], ignore_index=True)
    test = pd.concat(frames[test_from:], ignore_index=True)
    target = usecase.target.name
    trees = build_model(usecase).fit(feature_frame(usecase, train), train[target])
    trees_auc = float(roc_auc_score(test[target], trees.predict_proba(feature_frame(usecase, test))[:, 1]))
    with tempfile.TemporaryDirectory() as folder:  # evaluate reads the train split from its file
        train.to_parquet(Path(folder) / "train.parquet", index=False)
        # What evaluate fits: the gate's baseline_family, default params.
        simple = simple_model(usecase, Path(folder) / "train.parquet", test)
    if simple is None:
        raise ValueError("yarnit's usecase.yaml names no thresholds.gate.baseline_family to compare with")
    return trees_auc, simple.metrics["roc_auc"], float(pd.concat(frames)[target].mean())


def main() -> int:
    print("seed days rows/day  trees  simple  gap     positive rate")
    gaps = []
    for days, rows in WINDOWS:
        for seed in SEEDS:
            trees, simple, rate = gap(seed, days, rows)
            gaps.append(trees - simple)
            print(f"{seed:4d} {days:4d} {rows:8d}  {trees:.3f}  {simple:.3f}  {trees - simple:+.3f}  {rate:.3f}")
    print(f"gap: min {min(gaps):+.3f}, mean {sum(gaps) / len(gaps):+.3f}, max {max(gaps):+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
