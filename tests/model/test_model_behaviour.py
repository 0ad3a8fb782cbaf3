"""Model behaviour on YarnIt data: minimum quality, a directional expectation, invariance."""

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


def test_non_features_do_not_change_predictions(fitted, data) -> None:
    usecase, model = fitted
    _, test = data
    shuffled = test.copy()
    shuffled["customer_id"] = "C0000000"
    shuffled["session_id"] = shuffled["session_id"].str[::-1]
    before = model.predict_proba(feature_frame(usecase, test))[:, 1]
    after = model.predict_proba(feature_frame(usecase, shuffled))[:, 1]
    np.testing.assert_array_equal(before, after)


def test_training_is_reproducible(data) -> None:
    usecase = get_usecase("yarnit")
    train, test = data
    first = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    second = build_model(usecase).fit(feature_frame(usecase, train), train["purchased"])
    np.testing.assert_array_equal(
        first.predict_proba(feature_frame(usecase, test)), second.predict_proba(feature_frame(usecase, test))
    )
