"""The retraining policy as a pure function (no heavy imports: the monitoring DAG's branch task runs it).

Inputs: the monitor step's JSON result (drift, prediction drift, performance once labels arrived, new
labelled rows), the use case's `retraining` policy, and the partitions of earlier retraining requests
(read from the retraining Asset's own event history, so no extra state store is needed).

Triggers (any one): dataset-level drift (the monitor's share of drifted features reached the threshold,
or a `key_features` column drifted) and a performance drop of the champion beyond `performance_drop`.
Per-column drift below the dataset threshold, and prediction drift, only inform.
Guards (every one must pass to retrain): mode `auto_retrain`, not a backfill (history is replayed, not
acted on), the cooldown since the last request, the weekly budget, and enough new labelled rows.

The result is the decision record: stored as the branch task's XCom, sent with alerts, carried by the
Asset event into the training run, and so recorded on the MLflow run it causes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from mlcycle.config import Retraining

RETRAIN, NOTIFY, NONE = "retrain", "notify", "none"


def _triggers(metrics: dict[str, Any], policy: Retraining, partition: str) -> tuple[list[str], list[str]]:
    """(triggers, informational notes) read from the monitor step's metrics."""
    triggers: list[str] = []
    notes: list[str] = []
    drifted = list(metrics.get("drifted_columns", []))
    share = float(metrics.get("drift_share", 0.0))
    if metrics.get("dataset_drift"):
        triggers.append(f"dataset drift on {partition}: share {share:.2f} of features, columns {drifted}")
    else:
        key_drift = [c for c in drifted if c in policy.key_features]
        if key_drift:
            triggers.append(f"drift on key feature(s) {key_drift} on {partition}")
        elif drifted:
            notes.append(f"per-column drift only (share {share:.2f}): {drifted}")
    prediction = metrics.get("prediction_drift") or {}
    if prediction.get("drifted"):
        notes.append(f"prediction drift (score distribution, {prediction.get('stattest')} {prediction.get('score')})")
    performance = metrics.get("performance") or {}
    if performance.get("status") == "computed":
        drop = float(performance.get("drop", 0.0))
        detail = (
            f"{performance.get('metric')} {performance.get('value'):.4f} on {performance.get('partition')} vs "
            f"{performance.get('reference'):.4f} at training time (drop {drop:+.4f})"
        )
        if drop >= policy.performance_drop:
            triggers.append(f"performance drop: {detail} >= {policy.performance_drop}")
        else:
            notes.append(f"performance ok: {detail}")
    elif performance:
        notes.append(f"performance not measured: {performance.get('reason', 'labels not arrived')}")
    return triggers, notes


def _guards(policy: Retraining, partition: str, previous_requests: Iterable[str], new_rows: int | None) -> list[str]:
    """Reasons not to retrain now even though a trigger fired (empty: go)."""
    blocked: list[str] = []
    day = dt.date.fromisoformat(partition)
    earlier = sorted(d for d in (dt.date.fromisoformat(p) for p in previous_requests if p) if 0 <= (day - d).days < 7)
    if earlier and (day - earlier[-1]).days < policy.cooldown_days:
        blocked.append(
            f"cooldown: retraining was requested for {earlier[-1]} ({(day - earlier[-1]).days} d < "
            f"{policy.cooldown_days} d)"
        )
    if len(earlier) >= policy.max_retrains_per_week:
        blocked.append(f"weekly budget: {len(earlier)} requests in the 7 days up to {partition}")
    if new_rows is not None and new_rows < policy.min_new_labelled_rows:
        blocked.append(
            f"not enough new labelled data: {new_rows} rows since the champion's training window "
            f"< {policy.min_new_labelled_rows}"
        )
    return blocked


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
    """
    mode = mode or policy.mode
    if not monitor_result or monitor_result.get("status") != "success":
        status = (monitor_result or {}).get("status", "missing")
        return {
            "decision": NONE,
            "retrain": False,
            "notify": False,
            "mode": mode,
            "reason": f"no monitoring result ({status})",
        }
    partition = str(monitor_result.get("partition"))
    metrics = monitor_result.get("metrics", {})
    triggers, notes = _triggers(metrics, policy, partition)
    record: dict[str, Any] = {
        "partition": partition,
        "mode": mode,
        "triggers": triggers,
        "notes": notes,
        "drifted_columns": list(metrics.get("drifted_columns", [])),
        "champion_version": metrics.get("champion_version"),
    }
    if not triggers:
        summary = "; ".join(notes) or "no drift, performance within budget"
        return {
            **record,
            "decision": NONE,
            "retrain": False,
            "notify": False,
            "blocked_by": [],
            "reason": f"no trigger on {partition}: {summary}",
        }
    new_rows = metrics.get("new_labelled_rows")
    blocked = _guards(policy, partition, previous_requests, None if new_rows is None else int(new_rows))
    if mode != "auto_retrain":
        blocked.insert(0, f"mode {mode}: notify only")
    if backfill:
        blocked.insert(0, "backfill run: history is replayed, not acted on")
    reason = "; ".join(triggers)
    if blocked:
        return {
            **record,
            "decision": NOTIFY,
            "retrain": False,
            "notify": True,
            "blocked_by": blocked,
            "reason": f"{reason} — not retraining: {'; '.join(blocked)}",
        }
    return {**record, "decision": RETRAIN, "retrain": True, "notify": True, "blocked_by": [], "reason": reason}
