"""Feature value and cost on YarnIt data (ML Test Score, Data 2 and 3): permutation importance finds the features
the generator's purchase probability uses; each feature's share of the predict work follows the model's form."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlcycle.config import UseCase, get_usecase
from mlcycle.evaluation.feature_value import permutation_importance, predict_work_shares
from mlcycle.synthetic.yarnit import generate_day
from mlcycle.training.model_io import feature_frame
from mlcycle.training.trainers import build_model

#: Columns the generator's purchase probability never reads (mlcycle.synthetic.yarnit._purchase_probability).
NO_EFFECT = ("language", "product_category", "yarn_weight", "customer_tenure_days")


class Registered:
    """A fitted pipeline as the registry gives it back to evaluate: predict is predict_proba (the pyfunc)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.pipeline.predict_proba(frame)

    def get_raw_model(self) -> Pipeline:
        return self.pipeline


def _usecase(family: str, params: dict[str, Any]) -> UseCase:
    base = get_usecase("yarnit")
    return base.model_copy(update={"model": base.model.model_copy(update={"family": family, "params": params})})


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = [generate_day(dt.date(2026, 9, 1) + dt.timedelta(days=i), base_rows=1500) for i in range(6)]
    return pd.concat(frames[:4], ignore_index=True), pd.concat(frames[4:], ignore_index=True)


def _fit(usecase: UseCase, train: pd.DataFrame) -> Registered:
    return Registered(build_model(usecase).fit(feature_frame(usecase, train), train[usecase.target.name]))


def test_permutation_importance_finds_the_features_that_drive_purchases(data) -> None:
    train, test = data
    usecase = _usecase("sklearn_logreg", {})
    model = _fit(usecase, train)
    importance = permutation_importance(usecase, model, test)
    assert set(importance) == {c.name for c in usecase.features}
    assert importance["pages_viewed"] > 0.02, importance
    assert all(importance["pages_viewed"] > importance[name] for name in NO_EFFECT), importance
    assert all(abs(importance[name]) < 0.01 for name in NO_EFFECT), importance
    assert permutation_importance(usecase, model, test) == importance, "seeded: the same figures every time"


def test_predict_work_shares_follow_the_model(data) -> None:
    train, _ = data
    linear = _usecase("sklearn_logreg", {})
    shares = predict_work_shares(linear, _fit(linear, train))
    assert shares is not None and sum(shares.values()) == pytest.approx(1.0)
    # A linear model multiplies each model input once: a one-hot feature with several categories costs more than
    # a number (its value and its missing indicator).
    assert shares["country"] > shares["previous_purchases"] > 0
    trees = _usecase("sklearn_hgb", {"max_iter": 30})
    shares = predict_work_shares(trees, _fit(trees, train))
    assert shares is not None and sum(shares.values()) == pytest.approx(1.0)
    # Trees compare where they split: the strongest signal is split on more than a column with no effect.
    assert shares["pages_viewed"] > shares["language"], shares
    assert predict_work_shares(trees, object()) is None, "a model of another form has no measured shares"
