"""Pure decision functions: partition resolution, the retraining policy and the promotion gate."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from mlcycle.config import GateThresholds
from mlcycle.evaluation.gate import decide
from mlcycle.orchestration.macros import mlcycle_partition, mlcycle_trigger
from mlcycle.retraining import retraining_decision

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


def _monitor(drift: bool, share: float, partition: str = "2026-09-17") -> dict:
    columns = ["price", "fibre"] if drift else ["device"]
    return {
        "status": "success",
        "partition": partition,
        "metrics": {"dataset_drift": drift, "drift_share": share, "drifted_columns": columns},
    }


def test_retraining_policy() -> None:
    assert retraining_decision(_monitor(True, 0.5), "auto_retrain")["retrain"] is True
    calm = retraining_decision(_monitor(False, 0.07), "auto_retrain")
    assert calm["retrain"] is False and "informational" in calm["reason"]
    notify = retraining_decision(_monitor(True, 0.5), "notify_only")
    assert notify["retrain"] is False and notify["notify"] is True
    assert retraining_decision(None, "auto_retrain")["retrain"] is False


def test_retraining_cooldown() -> None:
    later = _monitor(True, 0.5, "2026-09-19")
    cooled = retraining_decision(later, "auto_retrain", cooldown_days=5, last_request="2026-09-17")
    assert cooled["retrain"] is False and "cooldown" in cooled["reason"]
    after = retraining_decision(later, "auto_retrain", cooldown_days=2, last_request="2026-09-17")
    assert after["retrain"] is True


def test_gate() -> None:
    gate = GateThresholds(metric="roc_auc", min_metric=0.6, min_improvement=0.01)
    assert decide(gate, {"roc_auc": 0.8}, None).decision == "promote"
    assert decide(gate, {"roc_auc": 0.55}, None).decision == "reject"
    assert decide(gate, {"roc_auc": 0.805}, {"roc_auc": 0.8}).decision == "reject"
    assert decide(gate, {"roc_auc": 0.82}, {"roc_auc": 0.8}).decision == "promote"
    assert decide(gate, {"roc_auc": float("nan")}, None).decision == "reject"
    loss = GateThresholds(metric="log_loss", min_metric=0.5, min_improvement=0.0)
    assert decide(loss, {"log_loss": 0.3}, {"log_loss": 0.35}).decision == "promote"
    assert decide(loss, {"log_loss": 0.4}, {"log_loss": 0.35}).decision == "reject"
