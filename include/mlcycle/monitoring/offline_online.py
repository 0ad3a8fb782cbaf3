"""Each version's offline test metric beside its online one, and their correlation across versions.

What `mlcycle report` and the monitor step print: read from MLflow (the `online_<metric>` history that
`monitoring.canary.log_online` writes on a version's training run, and its `test_<metric>`), with the standard
library's statistics. No pandas, numpy or sklearn of its own: `mlcycle report` imports this, not the canary's
row-level comparisons (tests/unit/test_offline_online.py checks what the report loads).
"""

from __future__ import annotations

import statistics
from typing import Any

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.tags import Tag

#: Versions needed before a correlation of offline vs online metrics is worth printing.
MIN_VERSIONS_FOR_CORRELATION = 3
#: Metrics that grow when quality drops; every other gate metric (ROC AUC, ...) shrinks.
LOSSES = ("log_loss", "brier")


def shortfall(metric: str, *, reference: float, value: float) -> float:
    """How much worse `value` is than `reference`: positive when worse, whichever way the metric points.

    Losses grow when quality drops, ranking metrics shrink.
    """
    return (value - reference) if metric in LOSSES else (reference - value)


def online_metric_key(metric: str) -> str:
    """The MLflow metric, on a version's training run, of its labelled live days (step: the day's ordinal)."""
    return f"online_{metric}"


def offline_online(usecase: UseCase) -> dict[str, Any]:
    """Per version with online days: its offline test metric, its mean online metric and the days behind it;
    and the Pearson correlation of the two across versions (None below MIN_VERSIONS_FOR_CORRELATION)."""
    metric = usecase.thresholds.gate.metric
    client = tracking.client()
    rows: list[dict[str, Any]] = []
    for version in tracking.all_versions(usecase):
        run_id = version.tags.get(Tag.RUN_ID)
        if not run_id:
            continue
        history = client.get_metric_history(run_id, online_metric_key(metric))
        offline = client.get_run(run_id).data.metrics.get(f"test_{metric}")
        if not history or offline is None:
            continue
        by_day = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}  # a day re-logged: its last
        online = statistics.fmean(by_day.values())
        rows.append(
            {
                "version": str(version.version),
                "offline": round(float(offline), 6),
                "online": round(online, 6),
                "online_days": len(by_day),
                "online_shortfall": round(shortfall(metric, reference=float(offline), value=online), 6),
            }
        )
    correlation = None
    if len(rows) >= MIN_VERSIONS_FOR_CORRELATION:
        offline_values = [float(r["offline"]) for r in rows]
        online_values = [float(r["online"]) for r in rows]
        if len(set(offline_values)) > 1 and len(set(online_values)) > 1:
            correlation = round(statistics.correlation(offline_values, online_values), 6)
    return {"metric": metric, "versions": rows, "correlation": correlation}


def offline_online_table(table: dict[str, Any]) -> str:
    """The table as text, for the monitoring log and report folder."""
    metric = table["metric"]
    lines = [f"version  test_{metric}  online_{metric}  online days  online shortfall"]
    for row in table["versions"]:
        lines.append(
            f"v{row['version']:<7} {row['offline']:<12.4f} {row['online']:<14.4f} {row['online_days']:<12d} "
            f"{row['online_shortfall']:+.4f}"
        )
    r = table["correlation"]
    lines.append(
        f"correlation across versions: {r:.3f}"
        if r is not None
        else f"correlation across versions: needs {MIN_VERSIONS_FOR_CORRELATION} versions with online days"
    )
    return "\n".join(lines)
