"""The retraining policy as a pure function (standard library only: the monitoring DAG's branch runs it).

Per-column drift alone only informs; dataset-level drift (the share of drifted columns crossing the
use case's threshold, decided by the monitor step) is what may request a retrain, and only in
`auto_retrain` mode.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def retraining_decision(
    monitor_result: dict[str, Any] | None,
    mode: str,
    *,
    cooldown_days: int = 0,
    last_request: str | None = None,
) -> dict[str, Any]:
    """{"retrain": bool, "reason": str, ...} from the monitor step's JSON result.

    `last_request` is the partition of the previous retraining request (from the Asset's last event);
    a request within `cooldown_days` after it is suppressed: the retrain it caused is the answer.
    """
    if not monitor_result or monitor_result.get("status") != "success":
        return {"retrain": False, "reason": "no monitoring result"}
    metrics = monitor_result.get("metrics", {})
    drifted = list(metrics.get("drifted_columns", []))
    share = float(metrics.get("drift_share", 0.0))
    partition = monitor_result.get("partition")
    if not metrics.get("dataset_drift"):
        detail = f"; drifted columns (informational): {drifted}" if drifted else ""
        return {"retrain": False, "reason": f"no dataset drift on {partition} (share {share:.2f}){detail}"}
    reason = f"dataset drift on {partition}: share {share:.2f}, columns {drifted}"
    if mode != "auto_retrain":
        return {"retrain": False, "notify": True, "reason": f"{reason} (mode {mode}: notify only)"}
    if last_request and partition:
        since = (dt.date.fromisoformat(partition) - dt.date.fromisoformat(last_request)).days
        if 0 <= since < cooldown_days:
            return {
                "retrain": False,
                "notify": True,
                "reason": f"{reason}; cooldown: retraining was requested for {last_request} ({since} d < {cooldown_days} d)",
            }
    return {"retrain": True, "reason": reason, "partition": partition, "drifted_columns": drifted}
