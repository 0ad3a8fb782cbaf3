"""A champion's staleness points are scored on the columns of its own signature, and a day that lacks one is named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.monitoring.performance import MIN_LABELLED_ROWS
from mlcycle.steps.staleness import champion_points

TRAINED_THROUGH = dt.date(2026, 9, 8)
ROWS = max(MIN_LABELLED_ROWS, 200)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A logistic regression logged with the signature (a, b): a version trained before `c` was a feature."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=ROWS), "b": rng.normal(size=ROWS)})
    fitted = LogisticRegression().fit(train, (train["a"] > 0).astype(int))
    path = Path(tmp_path_factory.mktemp("model")) / "v1"
    mlflow.sklearn.save_model(
        fitted, path, signature=infer_signature(train), pyfunc_predict_fn="predict_proba", pip_requirements=[]
    )
    return mlflow.pyfunc.load_model(str(path))


def _day(seed: int, columns: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=ROWS) for c in columns})
    return frame.assign(target=(frame["a"] + rng.normal(scale=0.5, size=ROWS) > 0).astype(int))


def test_each_day_is_scored_on_the_versions_own_columns_and_a_day_without_one_is_named(model: Any) -> None:
    frames = {
        TRAINED_THROUGH: _day(1, ["a", "b", "c"]),  # its own window: no point, no entry
        dt.date(2026, 9, 10): _day(2, ["c", "b", "a"]),  # a column it never saw, another order: its own (a, b)
        dt.date(2026, 9, 11): _day(3, ["a", "c"]),  # `b` dropped from the data since
    }
    points, unscored = champion_points(
        model, "1", TRAINED_THROUGH, frames, target="target", metric="roc_auc", threshold=0.5, what="yarnit_model v1"
    )
    assert [(p.version, p.partition, p.age_days, p.rows) for p in points] == [("1", "2026-09-10", 2, ROWS)]
    assert 0.8 < points[0].value <= 1.0  # the target follows `a`, which the model learned
    assert [(u.version, u.partition) for u in unscored] == [("1", "2026-09-11")]
    assert "yarnit_model v1 needs column(s) ['b']" in unscored[0].reason
