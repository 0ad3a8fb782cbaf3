"""The retraining policy (mlcycle.retraining): triggers, guards and the decision record."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from mlcycle.alert_receiver import AlertReceiver
from mlcycle.config import Retraining, get_usecase
from mlcycle.retraining import NONE, NOTIFY, RETRAIN, retraining_decision
from mlcycle.specs.results import ResultError
from support.receiver import TOKEN, FakeAirflow, alert, client_of, payload, serving_fake_airflow

POLICY = Retraining(
    mode="auto_retrain",
    key_features=["price"],
    performance_drop=0.05,
    cooldown_days=5,
    min_new_labelled_rows=1000,
    max_retrains_per_week=2,
)


def _monitor(
    *,
    drift: bool = False,
    share: float = 0.0,
    drifted: list[str] | None = None,
    partition: str = "2026-09-17",
    performance: dict[str, Any] | None = None,
    new_rows: int = 5000,
) -> dict[str, Any]:
    """A monitor result shaped as the monitor step writes it."""
    metrics: dict[str, Any] = {
        "dataset_drift": drift,
        "drift_share": share,
        "drifted_columns": drifted or [],
        "champion_version": "1",
        "new_labelled_rows": new_rows,
        "prediction_drift": {"status": "pending", "reason": "no champion predictions yet"},
        "performance": performance or {"status": "pending", "partition": "2026-09-16", "reason": "labels arrive later"},
    }
    outputs = {"report": "/data/monitoring/report.html", "monitoring": "/data/monitoring"}
    return {
        "status": "success",
        "step": "monitor",
        "usecase": "yarnit",
        "partition": partition,
        "outputs": outputs,
        "metrics": metrics,
    }


def _perf(value: float, reference: float = 0.80) -> dict[str, Any]:
    return {
        "status": "computed",
        "partition": "2026-09-16",
        "metric": "roc_auc",
        "value": value,
        "reference": reference,
        "drop": round(reference - value, 6),
    }


def test_same_distribution_day_triggers_nothing() -> None:
    decision = retraining_decision(_monitor(share=0.06, drifted=["device"], performance=_perf(0.79)), POLICY)
    assert decision["decision"] == NONE and not decision["retrain"] and not decision["notify"]
    assert "per-column drift only" in decision["reason"] and "performance ok" in decision["reason"]


def test_dataset_drift_requests_a_retrain_with_the_drift_as_reason() -> None:
    decision = retraining_decision(_monitor(drift=True, share=0.5, drifted=["fibre", "price"]), POLICY)
    assert decision["decision"] == RETRAIN and decision["retrain"]
    assert "dataset drift on 2026-09-17" in decision["reason"] and "fibre" in decision["reason"]
    assert decision["drifted_columns"] == ["fibre", "price"]


def test_key_feature_drift_alone_is_dataset_level() -> None:
    key = retraining_decision(_monitor(share=0.06, drifted=["price"]), POLICY)
    assert key["retrain"] and "key feature" in key["reason"]
    other = retraining_decision(_monitor(share=0.06, drifted=["fibre"]), POLICY)
    assert not other["retrain"]


def test_performance_drop_triggers_only_beyond_the_budget() -> None:
    dropped = retraining_decision(_monitor(performance=_perf(0.70)), POLICY)
    assert dropped["retrain"] and "performance drop" in dropped["reason"]
    small = retraining_decision(_monitor(performance=_perf(0.77)), POLICY)
    assert not small["retrain"]


def test_pending_labels_do_not_trigger() -> None:
    pending = {"status": "pending", "partition": "2026-09-16", "reason": "labels arrive after 1 day(s)"}
    decision = retraining_decision(_monitor(performance=pending), POLICY)
    assert decision["decision"] == NONE and "labels arrive" in decision["reason"]


def test_notify_only_mode_and_per_run_override() -> None:
    drifted = _monitor(drift=True, share=0.5, drifted=["fibre"])
    notify = retraining_decision(drifted, POLICY.model_copy(update={"mode": "notify_only"}))
    assert notify["decision"] == NOTIFY and not notify["retrain"] and notify["notify"]
    assert "notify only" in notify["reason"]
    overridden = retraining_decision(drifted, POLICY, mode="notify_only")
    assert overridden["decision"] == NOTIFY and overridden["mode"] == "notify_only"


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (["2026-09-14"], NOTIFY),  # 3 days ago < 5-day cooldown
        (["2026-09-12"], RETRAIN),  # 5 days ago: cooldown over
        (["2026-08-01"], RETRAIN),  # long ago
        (["2026-09-18"], RETRAIN),  # a later partition (backfilled history) is not "before"
    ],
)
def test_cooldown(previous: list[str], expected: str) -> None:
    decision = retraining_decision(_monitor(drift=True, share=0.5), POLICY, previous_requests=previous)
    assert decision["decision"] == expected
    if expected == NOTIFY:
        assert "cooldown" in decision["reason"]


def test_weekly_budget() -> None:
    policy = POLICY.model_copy(update={"cooldown_days": 0})
    decision = retraining_decision(
        _monitor(drift=True, share=0.5), policy, previous_requests=["2026-09-12", "2026-09-15"]
    )
    assert decision["decision"] == NOTIFY and "weekly budget" in decision["reason"]


def test_min_new_labelled_rows() -> None:
    decision = retraining_decision(_monitor(drift=True, share=0.5, new_rows=300), POLICY)
    assert decision["decision"] == NOTIFY and "300 rows" in decision["reason"]


def test_backfill_runs_never_retrain() -> None:
    decision = retraining_decision(_monitor(drift=True, share=0.5), POLICY, backfill=True)
    assert decision["decision"] == NOTIFY and "backfill" in decision["reason"]


def test_missing_or_failed_monitor_result() -> None:
    assert retraining_decision(None, POLICY)["decision"] == NONE
    assert retraining_decision({"status": "skipped"}, POLICY)["reason"] == "no monitoring result (skipped)"


@pytest.mark.parametrize(
    ("path", "key"),
    [(("metrics",), "drift_share"), (("metrics",), "dataset_drift"), (("metrics", "performance"), "status")],
)
def test_a_missing_monitor_key_is_an_error_not_no_drift(path: tuple[str, ...], key: str) -> None:
    result = _monitor(drift=True, share=0.5, drifted=["fibre"])
    section = result
    for part in path:
        section = section[part]
    del section[key]
    with pytest.raises(ResultError, match=rf"monitor step's result .*{'.'.join([*path, key])}: Field required"):
        retraining_decision(result, POLICY)


def test_a_computed_performance_needs_its_figures() -> None:
    performance = _perf(0.70)
    del performance["reference"]
    with pytest.raises(ResultError, match="computed performance needs"):
        retraining_decision(_monitor(performance=performance), POLICY)


def test_the_decision_record_keeps_its_json_shape() -> None:
    decision = retraining_decision(_monitor(drift=True, share=0.5, drifted=["fibre"]), POLICY)
    assert set(decision) == {
        "decision", "retrain", "notify", "mode", "reason", "partition", "triggers", "notes",
        "drifted_columns", "champion_version", "blocked_by",
    }  # fmt: skip
    assert set(retraining_decision(None, POLICY)) == {"decision", "retrain", "notify", "mode", "reason"}


def test_a_typed_result_writes_the_json_the_step_always_wrote() -> None:
    from mlcycle.specs.results import MonitorResult

    document = _monitor(drift=True, share=0.5, drifted=["fibre"])
    typed = MonitorResult.of(
        "monitor", "yarnit", "2026-09-17", outputs=document["outputs"], metrics=document["metrics"]
    )
    assert typed.to_dict() == document
    with pytest.raises(ResultError, match=r"monitor step's result .*metrics\.new_labelled_rows: Field required"):
        MonitorResult.of("monitor", "yarnit", "2026-09-17", outputs=document["outputs"], metrics={
            k: v for k, v in document["metrics"].items() if k != "new_labelled_rows"
        })  # fmt: skip


# M3: a retrain the alert receiver asks for is a retraining request like the monitoring DAG's: it is counted
# by the cooldown and the weekly budget, and it passes them itself.

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _stale_alert(fingerprint: str, partition: str) -> bytes:
    return json.dumps(payload(alert(fingerprint, alertname="model-stale", partition=partition))).encode()


def _previous_requests_seen_by_monitoring(fake: FakeAirflow) -> list[str]:
    """What the monitoring DAG's `decide_retraining` reads: its inlet events of the retraining Asset."""
    from mlcycle.orchestration.dags import _previous_requests, retraining_asset

    asset = retraining_asset(get_usecase("yarnit"))
    events = [SimpleNamespace(extra=extra) for extra in fake.event_extras("yarnit")]
    return _previous_requests({asset: events}, asset)


def test_a_receiver_triggered_retrain_inside_the_cooldown_blocks_the_next_policy_retrain() -> None:
    fake = FakeAirflow()
    with serving_fake_airflow(fake) as url:
        receiver = AlertReceiver(client_of(url), TOKEN, {"yarnit": POLICY})
        status, answer = receiver.handle(AUTH, _stale_alert("fp-stale", "2026-09-15"))
    assert status == 200 and len(answer["created"]) == 1, answer
    previous = _previous_requests_seen_by_monitoring(fake)
    decision = retraining_decision(_monitor(drift=True, share=0.5), POLICY, previous_requests=previous)
    assert decision["decision"] == NOTIFY and "cooldown: retraining was requested for 2026-09-15" in decision["reason"]


def test_the_receiver_applies_the_policy_guards_to_its_own_retrains() -> None:
    fake = FakeAirflow()
    with serving_fake_airflow(fake) as url:
        receiver = AlertReceiver(client_of(url), TOKEN, {"yarnit": POLICY})
        first = receiver.handle(AUTH, _stale_alert("fp-1", "2026-09-15"))
        within_cooldown = receiver.handle(AUTH, _stale_alert("fp-2", "2026-09-17"))
        notify_only = AlertReceiver(
            client_of(url), TOKEN, {"yarnit": POLICY.model_copy(update={"mode": "notify_only"})}
        )
        later = notify_only.handle(AUTH, _stale_alert("fp-3", "2026-10-01"))
    assert first[0] == 200 and len(first[1]["created"]) == 1
    assert within_cooldown[0] == 200 and within_cooldown[1]["created"] == [], within_cooldown
    (refused,) = within_cooldown[1]["ignored"]
    assert refused["reason"] == "retraining policy" and "cooldown" in refused["blocked_by"][0]
    assert later[1]["created"] == [] and later[1]["ignored"][0]["blocked_by"] == ["mode notify_only: notify only"]
    assert len(fake.event_extras("yarnit")) == 1 and fake.runs == {}


def test_a_repeated_retrain_alert_is_one_request_across_receiver_restarts() -> None:
    fake = FakeAirflow()
    policy = POLICY.model_copy(update={"cooldown_days": 0})  # the repeat must be caught as a repeat, not a cooldown
    with serving_fake_airflow(fake) as url:
        first = AlertReceiver(client_of(url), TOKEN, {"yarnit": policy}).handle(AUTH, _stale_alert("fp", "2026-09-15"))
        again = AlertReceiver(client_of(url), TOKEN, {"yarnit": policy}).handle(AUTH, _stale_alert("fp", "2026-09-15"))
    assert len(first[1]["created"]) == 1 and again[1]["created"] == [] and len(again[1]["duplicates"]) == 1
    (extra,) = fake.event_extras("yarnit")
    assert extra["partition"] == "2026-09-15" and extra["reason"].startswith("alert model-stale")
