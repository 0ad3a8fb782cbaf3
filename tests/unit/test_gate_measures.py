"""The gate's ML Test Score measures as pure functions: the simple-model baseline (Model 5), computing performance
regressions (Monitoring 6) and the streak of features without value (Data 2)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.config import GateThresholds, get_usecase
from mlcycle.evaluation import evidence
from mlcycle.evaluation.compute import (
    REGRESSION_PREFIX,
    THROUGHPUT_CALLS,
    THROUGHPUT_MAX_ROWS,
    THROUGHPUT_MIN_ROWS,
    regressions,
    throughput_rows_s,
)
from mlcycle.evaluation.feature_value import unimportant_for, warnings_for
from mlcycle.evaluation.gate import Evidence, SimpleModel, decide
from mlcycle.synthetic.yarnit import generate_day

GATE = GateThresholds(metric="roc_auc", min_metric=0.6, baseline_hurdle=0.05, baseline_model_hurdle=0.01)
PRIOR = {"roc_auc": 0.5, "log_loss": 0.4}


def _ev(auc: float) -> Evidence:
    return Evidence(metrics={"roc_auc": auc, "log_loss": 0.3})


def test_a_candidate_that_does_not_beat_the_simple_model_is_rejected() -> None:
    logistic = SimpleModel("sklearn_logreg", {"roc_auc": 0.80, "log_loss": 0.3})
    trailing = decide(GATE, _ev(0.805), None, PRIOR, simple_model=logistic)
    assert trailing.decision == "reject" and trailing.checks["simple_model"] is False
    assert trailing.checks["baseline"] is True, "the constant prior is still checked, and passed"
    assert trailing.reasons == [
        "roc_auc=0.8050 does not beat the simple model sklearn_logreg 0.8000 by the hurdle 0.01"
    ]
    beating = decide(GATE, _ev(0.811), None, PRIOR, simple_model=logistic)
    assert beating.decision == "promote" and beating.checks["simple_model"] is True
    # A negative hurdle is a tolerance: the candidate may trail the simple model by that much, not more.
    tolerant = GATE.model_copy(update={"baseline_model_hurdle": -0.02})
    assert decide(tolerant, _ev(0.785), None, PRIOR, simple_model=logistic).decision == "promote"
    assert decide(tolerant, _ev(0.775), None, PRIOR, simple_model=logistic).decision == "reject"
    assert "simple_model" not in decide(GATE, _ev(0.805), None, PRIOR).checks


def test_the_simple_model_is_compared_in_the_metrics_direction() -> None:
    loss = GATE.model_copy(update={"metric": "log_loss", "min_metric": 1.0, "baseline_hurdle": 0.0})
    logistic = SimpleModel("sklearn_logreg", {"roc_auc": 0.8, "log_loss": 0.30})
    worse = Evidence(metrics={"roc_auc": 0.8, "log_loss": 0.32})
    better = Evidence(metrics={"roc_auc": 0.8, "log_loss": 0.28})
    assert decide(loss, worse, None, PRIOR, simple_model=logistic).checks["simple_model"] is False
    assert decide(loss, better, None, PRIOR, simple_model=logistic).checks["simple_model"] is True


def test_computing_performance_regressions_beyond_the_factor() -> None:
    champion = {"fit_seconds": 10.0, "train_peak_memory_mb": 500.0, "latency_p95_ms": 5.0, "throughput_rows_s": 1e5}
    assert regressions(champion, champion, 2.0) == []
    slower = {**champion, "fit_seconds": 25.0, "throughput_rows_s": 4e4, "latency_p95_ms": 9.0}
    found = regressions(slower, champion, 2.0)
    assert [(r.figure, r.candidate, r.champion, r.worse_by) for r in found] == [
        ("fit_seconds", 25.0, 10.0, 2.5),
        ("throughput_rows_s", 4e4, 1e5, 2.5),
    ], found
    assert all(r.text.startswith(REGRESSION_PREFIX) and r.factor == 2.0 for r in found)
    assert found[0].text == f"{REGRESSION_PREFIX} fit_seconds 25 vs champion 10 (2.5x worse, factor 2.0)"
    # A figure the champion never logged (a version trained before it was measured) is not compared.
    assert regressions(slower, {**champion, "fit_seconds": None, "throughput_rows_s": None}, 2.0) == []


def test_computing_performance_warns_by_default_and_rejects_when_hard() -> None:
    found = [f"{REGRESSION_PREFIX} fit_seconds 25 vs champion 10 (2.5x worse, factor 2.0)"]
    soft = decide(GATE, _ev(0.82), _ev(0.81), PRIOR, compute_regressions=found)
    assert soft.decision == "promote" and soft.warnings == found and "compute" not in soft.checks
    hard = decide(
        GATE.model_copy(update={"compute_regression": "hard"}), _ev(0.82), _ev(0.81), PRIOR, compute_regressions=found
    )
    assert hard.decision == "reject" and hard.checks["compute"] is False and hard.reasons == found


def test_a_feature_without_value_for_n_trainings_is_a_warning_never_a_rejection() -> None:
    current = {"pages_viewed": 0.08, "language": -0.001, "country": 0.0, "fibre": -0.002}
    earlier = [
        {"pages_viewed": 0.07, "language": 0.0, "country": 0.003, "fibre": -0.001},  # newest first
        {"pages_viewed": 0.09, "language": -0.002, "country": -0.001},  # fibre not measured: its streak ends
    ]
    streaks = unimportant_for(current, earlier, 3)
    assert streaks == {"language": [-0.001, 0.0, -0.002]}
    assert unimportant_for(current, earlier[:1], 3) == {}, "two trainings are not three"
    assert set(unimportant_for(current, earlier, 2)) == {"language", "fibre"}
    assert set(unimportant_for(current, [], 1)) == {"language", "country", "fibre"}
    warnings = warnings_for(streaks, "roc_auc")
    assert warnings == [
        "feature language has had permutation importance <= 0 (roc_auc drop -0.0010, +0.0000, -0.0020) in the "
        "last 3 trainings: consider removing it (docs/ml-test-score.md, Data 2)"
    ]
    gated = decide(GATE, _ev(0.82), None, PRIOR, warnings=warnings)
    assert (
        gated.decision == "promote"
        and gated.warnings == warnings
        and gated.reasons == ["roc_auc=0.8200 no champion yet"]
    )


def test_the_simple_model_is_fitted_on_a_bounded_seeded_sample_of_the_train_split(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    usecase = get_usecase("yarnit")
    days = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(3)]
    train = pd.concat([generate_day(d, base_rows=400) for d in days[:2]], ignore_index=True)
    train.to_parquet(tmp_path / "train.parquet", index=False)
    test = generate_day(days[2], base_rows=400)
    fitted_rows: list[int] = []
    real_build = evidence.build_model

    def counting_build(config: Any) -> Any:
        model = real_build(config)
        real_fit = model.fit

        def fit(features: pd.DataFrame, target: pd.Series) -> Any:
            fitted_rows.append(len(features))
            return real_fit(features, target)

        model.fit = fit
        return model

    monkeypatch.setattr(evidence, "build_model", counting_build)
    monkeypatch.setattr(evidence, "SIMPLE_MODEL_MAX_ROWS", 300)
    first = evidence.simple_model(usecase, tmp_path / "train.parquet", test)
    again = evidence.simple_model(usecase, tmp_path / "train.parquet", test)
    assert len(train) > 300 and fitted_rows == [300, 300]
    assert first is not None and again is not None and first.metrics == again.metrics, "the same seeded rows"


def test_throughput_is_timed_on_at_least_the_minimum_batch() -> None:
    batches: list[int] = []

    class Recording:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            batches.append(len(frame))
            return np.tile([0.5, 0.5], (len(frame), 1))

    rows_s = throughput_rows_s(Recording(), pd.DataFrame({"x": range(7)}))
    assert rows_s > 0 and batches[0] == 10, "the warm-up call"
    assert batches[1:] == [THROUGHPUT_MIN_ROWS + 1] * THROUGHPUT_CALLS, "7 rows repeated past the minimum"
    batches.clear()
    throughput_rows_s(Recording(), pd.DataFrame({"x": range(THROUGHPUT_MAX_ROWS + 5)}))
    assert batches[1:] == [THROUGHPUT_MAX_ROWS] * THROUGHPUT_CALLS, "a large test split: its first rows only"
    with pytest.raises(ValueError, match="at least one row"):
        throughput_rows_s(Recording(), pd.DataFrame({"x": []}))
