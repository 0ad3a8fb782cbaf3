"""Pure decision functions: partition resolution, trigger reasons and the promotion gate."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from mlcycle.config import GateThresholds
from mlcycle.evaluation.gate import Evidence, decide, selection_rate_ratio
from mlcycle.orchestration.macros import mlcycle_partition, mlcycle_trigger

UTC = dt.UTC


def _run(**kw):
    base = {
        "logical_date": None,
        "run_after": dt.datetime(2026, 9, 18, 6, tzinfo=UTC),
        "conf": {},
        "consumed_asset_events": [],
        "run_type": "manual",
    }
    return SimpleNamespace(**{**base, **kw})


def test_partition_resolution_order() -> None:
    event = SimpleNamespace(extra={"partition": "2026-09-17", "reason": "drift"}, source_dag_id="m", source_run_id="r")
    assert mlcycle_partition(_run(logical_date=dt.datetime(2026, 9, 14, 2, tzinfo=UTC)), {}) == "2026-09-14"
    assert mlcycle_partition(_run(consumed_asset_events=[event]), {}) == "2026-09-17"
    assert mlcycle_partition(_run(), {}) == "2026-09-17"  # day before run_after
    assert mlcycle_partition(_run(conf={"partition": "2026-09-10"}), {}) == "2026-09-10"
    assert mlcycle_partition(_run(conf={"partition": "2026-09-10"}), {"partition": "2026-09-01"}) == "2026-09-01"
    with pytest.raises(ValueError):
        mlcycle_partition(_run(), {"partition": "yesterday"})


def test_trigger_reason() -> None:
    event = SimpleNamespace(extra={"reason": "dataset drift"}, source_dag_id="yarnit_monitoring", source_run_id="r1")
    assert mlcycle_trigger(_run(consumed_asset_events=[event])) == "asset: dataset drift (from yarnit_monitoring/r1)"
    assert mlcycle_trigger(_run(run_type="scheduled")) == "scheduled"
    assert mlcycle_trigger(_run(conf={"reason": "hotfix"})) == "manual: hotfix"
    assert mlcycle_trigger(_run(), {"reason": "from the form"}) == "manual: from the form"


def _ev(auc: float, **kw) -> Evidence:
    return Evidence(metrics={"roc_auc": auc, "log_loss": 0.3}, **kw)


GATE = GateThresholds(metric="roc_auc", min_metric=0.6, min_improvement=0.01, baseline_hurdle=0.05)
BASELINE = {"roc_auc": 0.5, "log_loss": 0.4}


def test_gate_first_model_and_floor() -> None:
    assert decide(GATE, _ev(0.8), None, BASELINE).decision == "promote"
    low = decide(GATE, _ev(0.55), None, BASELINE)
    assert low.decision == "reject" and low.checks["floor"] is False
    assert decide(GATE, _ev(float("nan")), None).decision == "reject"
    assert decide(GATE, _ev(0.8, finite=False), None).decision == "reject"


def test_gate_worse_candidate_is_rejected_better_is_promoted() -> None:
    worse = decide(GATE, _ev(0.805), _ev(0.8), BASELINE)
    assert worse.decision == "reject" and worse.checks["beats_champion"] is False
    better = decide(GATE, _ev(0.82), _ev(0.8), BASELINE)
    assert better.decision == "promote" and all(better.checks.values())


def test_gate_baseline_hurdle() -> None:
    gate = GateThresholds(min_metric=0.5, baseline_hurdle=0.05)
    result = decide(gate, _ev(0.53), None, {"roc_auc": 0.5})
    assert result.decision == "reject" and result.checks["baseline"] is False


def test_gate_slice_regression_rejects() -> None:
    champion = _ev(0.80, slices={"roc_auc.country.US": 0.80, "roc_auc.country.DE": 0.78})
    candidate = _ev(0.83, slices={"roc_auc.country.US": 0.86, "roc_auc.country.DE": 0.70})
    result = decide(GATE, candidate, champion, BASELINE)
    assert result.decision == "reject" and result.checks["slices"] is False
    assert "roc_auc.country.DE" in result.reasons[0]


def test_gate_recent_window_regression_rejects() -> None:
    champion = _ev(0.80, recent={"roc_auc": 0.80, "log_loss": 0.3})
    candidate = _ev(0.82, recent={"roc_auc": 0.70, "log_loss": 0.3})
    assert decide(GATE, candidate, champion, BASELINE).checks["recent_window"] is False


def test_gate_huge_jump_and_leakage_need_a_human() -> None:
    jump = decide(GATE, _ev(0.97), _ev(0.75), BASELINE)
    assert jump.decision == "needs_manual_review" and "implausibly large change" in jump.reasons[0]
    leak = decide(GATE, _ev(0.995), None, BASELINE)
    assert leak.decision == "needs_manual_review" and "possible leakage" in leak.reasons[0]


def test_gate_latency_and_fairness() -> None:
    slow = decide(GATE, _ev(0.8, latency_p95_ms=500.0), None, BASELINE)
    assert slow.decision == "reject" and slow.checks["latency"] is False
    gate = GATE.model_copy(update={"fairness_group": "age_band"})
    unfair = decide(gate, _ev(0.8, selection_rates={"a": 0.20, "b": 0.10}), None, BASELINE)
    assert unfair.decision == "reject" and unfair.checks["fairness"] is False
    fair = decide(gate, _ev(0.8, selection_rates={"a": 0.20, "b": 0.17}), None, BASELINE)
    assert fair.decision == "promote" and fair.checks["fairness"] is True
    assert selection_rate_ratio({"a": 0.2, "b": 0.1}) == pytest.approx(0.5)


def test_gate_lower_is_better_metric() -> None:
    loss = GateThresholds(metric="log_loss", min_metric=0.5, min_improvement=0.0, baseline_hurdle=0.0)
    better = Evidence(metrics={"log_loss": 0.30})
    worse = Evidence(metrics={"log_loss": 0.40})
    assert decide(loss, better, Evidence(metrics={"log_loss": 0.35})).decision == "promote"
    assert decide(loss, worse, Evidence(metrics={"log_loss": 0.35})).decision == "reject"
