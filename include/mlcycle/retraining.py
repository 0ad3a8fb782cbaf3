"""The retraining policy as a pure function (no heavy imports: the monitoring DAG's branch task runs it).

Inputs: the monitor step's JSON result (drift, prediction drift, performance once labels arrived, new
labelled rows), the use case's `retraining` policy, and the partitions of earlier retraining requests
(read from the retraining Asset's own event history, so no extra state store is needed).

Triggers (any one): dataset-level drift (the monitor's share of drifted features reached the threshold,
or a `key_features` column drifted) and a performance drop of the champion beyond `performance_drop`.
Per-column drift below the dataset threshold, and prediction drift, only inform.
Guards (every one must pass to retrain): mode `auto_retrain`, not a backfill (history is replayed, not
acted on), the cooldown since the last request, the weekly budget, and enough new labelled rows.

Every retraining request is an event of the use case's retraining Asset, whoever makes it: the monitoring DAG
(this policy) and the alert receiver (a training alert, after `request_guards`: mode, cooldown and budget). So
the cooldown and the weekly budget count every request, and the training DAG runs on each.

The monitor result is validated into its typed model (`mlcycle.specs.results.MonitorResult`) first: a key the
policy reads that is missing or renamed is an error naming it, never a silent "no drift".

The result is the decision record (`RetrainingDecision`, returned as its JSON dict): stored as the branch
task's XCom, sent with alerts, carried by the Asset event into the training run, and so recorded on the MLflow
run it causes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from mlcycle.config import Retraining
from mlcycle.specs.names import Step
from mlcycle.specs.results import MonitorMetrics, MonitorResult, parse_result

RETRAIN: Final = "retrain"
NOTIFY: Final = "notify"
NONE: Final = "none"


def request_asset_name(usecase: str) -> str:
    """The name of the use case's retraining Asset: the monitoring DAG and the alert receiver request retrains here."""
    return f"{usecase}_retraining_request"


def request_asset_uri(usecase: str) -> str:
    return f"mlcycle://{usecase}/retraining-request"


def request_partitions(extras: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """The partitions of earlier retraining requests, from their Asset events' extras (in the order given)."""
    return [str(extra["partition"]) for extra in extras if extra and extra.get("partition")]


class RetrainingDecision(BaseModel):
    """The decision record. Fields left unset are left out of its JSON (a missing monitor result has fewer)."""

    model_config = ConfigDict(frozen=True)

    decision: Literal["retrain", "notify", "none"]
    retrain: bool
    notify: bool
    mode: str
    reason: str
    partition: str | None = None
    triggers: list[str] | None = None
    notes: list[str] | None = None
    drifted_columns: list[str] | None = None
    champion_version: str | None = None
    blocked_by: list[str] | None = None

    def record(self) -> dict[str, Any]:
        """The JSON document alerts, the Asset event and MLflow tags read."""
        return self.model_dump(exclude_unset=True)


def _triggers(metrics: MonitorMetrics, policy: Retraining, partition: str) -> tuple[list[str], list[str]]:
    """(triggers, informational notes) read from the monitor step's metrics."""
    triggers: list[str] = []
    notes: list[str] = []
    drifted, share = list(metrics.drifted_columns), metrics.drift_share
    if metrics.dataset_drift:
        triggers.append(f"dataset drift on {partition}: share {share:.2f} of features, columns {drifted}")
    else:
        key_drift = [c for c in drifted if c in policy.key_features]
        if key_drift:
            triggers.append(f"drift on key feature(s) {key_drift} on {partition}")
        elif drifted:
            notes.append(f"per-column drift only (share {share:.2f}): {drifted}")
    prediction = metrics.prediction_drift
    if prediction.drifted:
        notes.append(f"prediction drift (score distribution, {prediction.stattest} {prediction.score})")
    performance = metrics.performance
    if performance.status == "computed":
        # The model's validator guarantees the figures of a computed performance.
        assert performance.value is not None and performance.reference is not None and performance.drop is not None
        drop = performance.drop
        detail = (
            f"{performance.metric} {performance.value:.4f} on {performance.partition} vs "
            f"{performance.reference:.4f} at training time (drop {drop:+.4f})"
        )
        if drop >= policy.performance_drop:
            triggers.append(f"performance drop: {detail} >= {policy.performance_drop}")
        else:
            notes.append(f"performance ok: {detail}")
    else:
        reason = "labels not arrived" if performance.reason is None else performance.reason
        notes.append(f"performance not measured: {reason}")
    return triggers, notes


def request_guards(
    policy: Retraining, partition: str, previous_requests: Iterable[str], mode: str | None = None
) -> list[str]:
    """Reasons not to request a retrain for `partition` now, whoever asks (empty: go).

    The mode (`mode` overrides the policy's), the cooldown since the latest earlier request and the weekly
    budget: the guards that need no monitoring result, so the alert receiver applies them too.
    """
    blocked: list[str] = []
    mode = mode or policy.mode
    if mode != "auto_retrain":
        blocked.append(f"mode {mode}: notify only")
    day = dt.date.fromisoformat(partition)
    earlier = sorted(d for d in (dt.date.fromisoformat(p) for p in previous_requests if p) if 0 <= (day - d).days < 7)
    if earlier and (day - earlier[-1]).days < policy.cooldown_days:
        blocked.append(
            f"cooldown: retraining was requested for {earlier[-1]} ({(day - earlier[-1]).days} d < "
            f"{policy.cooldown_days} d)"
        )
    if len(earlier) >= policy.max_retrains_per_week:
        blocked.append(f"weekly budget: {len(earlier)} requests in the 7 days up to {partition}")
    return blocked


def _labelled_rows_guard(policy: Retraining, new_rows: int) -> list[str]:
    if new_rows < policy.min_new_labelled_rows:
        return [
            f"not enough new labelled data: {new_rows} rows since the champion's training window "
            f"< {policy.min_new_labelled_rows}"
        ]
    return []


def retraining_decision(
    monitor_result: dict[str, Any] | None,
    policy: Retraining,
    *,
    previous_requests: Iterable[str] = (),
    mode: str | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """The decision record: {"decision": retrain|notify|none, "retrain", "notify", "reason", ...}.

    `previous_requests`: partitions of earlier retraining requests (the Asset's events); `mode` overrides
    the policy's mode for one run (the monitoring DAG's Param); `backfill` runs never retrain.
    Raises `mlcycle.specs.results.ResultError` when a successful monitor result lacks a key the policy reads.
    """
    mode = mode or policy.mode
    if not monitor_result or monitor_result.get("status") != "success":
        status = (monitor_result or {}).get("status", "missing")
        return RetrainingDecision(
            decision=NONE, retrain=False, notify=False, mode=mode, reason=f"no monitoring result ({status})"
        ).record()
    monitor = parse_result(MonitorResult, Step.MONITOR.value, monitor_result)
    partition, metrics = monitor.partition, monitor.metrics
    triggers, notes = _triggers(metrics, policy, partition)
    record: dict[str, Any] = {
        "partition": partition,
        "mode": mode,
        "triggers": triggers,
        "notes": notes,
        "drifted_columns": list(metrics.drifted_columns),
        "champion_version": metrics.champion_version,
    }
    if not triggers:
        summary = "; ".join(notes) or "no drift, performance within budget"
        return RetrainingDecision(
            **record,
            decision=NONE,
            retrain=False,
            notify=False,
            blocked_by=[],
            reason=f"no trigger on {partition}: {summary}",
        ).record()
    blocked = request_guards(policy, partition, previous_requests, mode)
    blocked += _labelled_rows_guard(policy, metrics.new_labelled_rows)
    if backfill:
        blocked.insert(0, "backfill run: history is replayed, not acted on")
    reason = "; ".join(triggers)
    if blocked:
        return RetrainingDecision(
            **record,
            decision=NOTIFY,
            retrain=False,
            notify=True,
            blocked_by=blocked,
            reason=f"{reason} — not retraining: {'; '.join(blocked)}",
        ).record()
    return RetrainingDecision(
        **record, decision=RETRAIN, retrain=True, notify=True, blocked_by=[], reason=reason
    ).record()
