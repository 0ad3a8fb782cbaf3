"""Model behaviour on YarnIt data: minimum quality, a directional expectation, an invariance."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlcycle.config import get_usecase
from mlcycle.synthetic.yarnit import generate_day
from mlcycle.training.model_io import feature_frame
from mlcycle.training.trainers import build_model


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    days = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(9)]
    frames = [generate_day(d, base_rows=2000) for d in days]
    return pd.concat(frames[:7], ignore_index=True), pd.concat(frames[7:], ignore_index=True)


@pytest.mark.parametrize(("family", "floor"), [("sklearn_hgb", 0.72), ("sklearn_logreg", 0.7)])
def test_minimum_quality(data: tuple[pd.DataFrame, pd.DataFrame], family: str, floor: float) -> None:
    usecase = get_usecase("yarnit").model_copy(
        update={"model": get_usecase("yarnit").model.model_copy(update={"family": family, "params": {}})}
    )
    train, test = data
    model = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    auc = roc_auc_score(test["purchased"], model.predict_proba(feature_frame(usecase, test))[:, 1])
    assert auc > floor, f"{family}: test ROC AUC {auc:.3f}"


def test_dummy_baseline_is_uninformative(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    base = get_usecase("yarnit")
    usecase = base.model_copy(update={"model": base.model.model_copy(update={"family": "dummy", "params": {}})})
    train, test = data
    model = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    assert roc_auc_score(test["purchased"], model.predict_proba(feature_frame(usecase, test))[:, 1]) == 0.5


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, pd.DataFrame]):
    usecase = get_usecase("yarnit")
    train, _ = data
    return usecase, build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])


def test_more_previous_purchases_raise_the_score(fitted, data) -> None:
    usecase, model = fitted
    _, test = data
    low, high = test.copy(), test.copy()
    low["previous_purchases"], high["previous_purchases"] = 0, 12
    high["days_since_last_purchase"] = high["days_since_last_purchase"].fillna(20.0)
    low["days_since_last_purchase"] = np.nan
    p_low = model.predict_proba(feature_frame(usecase, low))[:, 1].mean()
    p_high = model.predict_proba(feature_frame(usecase, high))[:, 1].mean()
    assert p_high > p_low


def _mean_score_change(usecase, model, test: pd.DataFrame, column: str) -> float:
    """Mean absolute change of the scores when `column` is shuffled across the rows (a seeded permutation)."""
    shuffled = test.copy()
    shuffled[column] = np.random.default_rng(0).permutation(shuffled[column].to_numpy())
    before = model.predict_proba(feature_frame(usecase, test))[:, 1]
    after = model.predict_proba(feature_frame(usecase, shuffled))[:, 1]
    return float(np.abs(after - before).mean())


def test_an_input_that_does_not_drive_purchases_barely_moves_the_score(fitted, data) -> None:
    # `language` is a model input, but the YarnIt label does not depend on it (mlcycle.synthetic.yarnit's
    # purchase probability): a model that leans on it learnt noise. `discount_pct` does drive purchases.
    usecase, model = fitted
    _, test = data
    assert "language" in feature_frame(usecase, test).columns, "the invariance is about an input the model sees"
    noise = _mean_score_change(usecase, model, test, "language")
    signal = _mean_score_change(usecase, model, test, "discount_pct")
    assert noise < 0.01, f"shuffling language moves scores by {noise:.4f} on average"
    assert noise < signal / 5, f"language ({noise:.4f}) matters almost as much as discount_pct ({signal:.4f})"


def test_training_is_reproducible(data) -> None:
    usecase = get_usecase("yarnit")
    train, test = data
    first = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    second = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    np.testing.assert_array_equal(
        first.predict_proba(feature_frame(usecase, test)), second.predict_proba(feature_frame(usecase, test))
    )
