"""The shadow @challenger judged on live traffic, and each version's offline metric beside its online one.

- `compare_day`: on a labelled day L, the champion's served predictions and the challenger's shadow predictions
  of the same rows, joined with L's labels: both versions' gate metric on exactly the same rows (the monitor
  step logs it every day).
- `verdict`: `promotion: shadow_canary` promotes a gate-approved challenger once it has K labelled shadow days
  on none of which it trails the champion by more than the tolerance; the first trailing day refuses it.
- `log_online` / `offline_online`: every labelled day's online metric of a version is logged on the MLflow run
  that trained it (metric `online_<metric>`, one step per day), next to its offline `test_<metric>`; the table
  of both per version, and their correlation across versions, shows whether the offline test predicts serving.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from mlcycle.config import UseCase
from mlcycle.monitoring.performance import MIN_LABELLED_ROWS, labelled, metric_of, shortfall
from mlcycle.registry import tracking
from mlcycle.tags import Tag

#: Versions needed before a correlation of offline vs online metrics is worth printing.
MIN_VERSIONS_FOR_CORRELATION = 3


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


@dataclass(frozen=True)
class ShadowDay:
    """Champion vs shadow challenger on one labelled day's rows that both scored."""

    status: Literal["computed", "pending"]
    partition: str
    champion_version: str
    challenger_version: str
    metric: str = ""
    champion: float = math.nan
    challenger: float = math.nan
    #: How far the challenger falls short of the champion (positive: worse), whichever way the metric points.
    trail: float = math.nan
    rows: int = 0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}


def compare_day(
    served: pd.DataFrame,
    shadow: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    usecase: UseCase,
    partition: str,
    champion_version: str,
    challenger_version: str,
) -> ShadowDay:
    """Both versions' gate metric on the labelled rows both scored on `partition` (key, score, decision columns)."""
    key, metric, threshold = usecase.key, usecase.thresholds.gate.metric, usecase.model.decision_threshold
    champion = labelled(served, labels, key, usecase.target.name)
    challenger = labelled(shadow, labels, key, usecase.target.name)
    # An inner join: a row only one of them scored (a shadow that failed on a chunk) is not a comparison.
    both = champion[[key, "target", "score"]].merge(challenger[[key, "score"]], on=key, suffixes=("", "_challenger"))
    if len(both) < MIN_LABELLED_ROWS or both["target"].nunique() < 2:
        reason = f"{len(both)} labelled rows scored by both on {partition} (need {MIN_LABELLED_ROWS} with both classes)"
        return ShadowDay(
            "pending", partition, champion_version, challenger_version, metric=metric, rows=len(both), reason=reason
        )
    value = metric_of(both, metric, threshold)
    shadow_value = metric_of(both[["target", "score_challenger"]].rename(columns={"score_challenger": "score"}),
                             metric, threshold)  # fmt: skip
    return ShadowDay(
        "computed",
        partition,
        champion_version,
        challenger_version,
        metric=metric,
        champion=round(value, 6),
        challenger=round(shadow_value, 6),
        trail=round(shortfall(metric, reference=value, value=shadow_value), 6),
        rows=len(both),
    )


@dataclass(frozen=True)
class CanaryVerdict:
    """What the canary decides for one challenger: promote, refuse, or wait for more labelled shadow days."""

    decision: Literal["promote", "refuse", "pending"]
    reason: str
    required_days: int
    tolerance: float
    days: list[ShadowDay] = field(default_factory=list)

    def evidence(self) -> list[dict[str, Any]]:
        """The judged days, compact: what the version records as its canary evidence."""
        keys = ("partition", "rows", "champion", "challenger", "trail")
        return [{k: day.to_dict()[k] for k in keys} for day in self.days]


def verdict(days: Sequence[ShadowDay], *, required: int, tolerance: float) -> CanaryVerdict:
    """The canary decision over the challenger's labelled shadow days (oldest first).

    The first `required` computed days are judged: the first one on which the challenger trails the champion
    by more than `tolerance` refuses it; all of them within it promote it; fewer of them is pending.
    """
    judged = [d for d in days if d.status == "computed"][:required]
    for day in judged:
        if day.trail > tolerance:
            reason = (
                f"challenger v{day.challenger_version} trails champion v{day.champion_version} on {day.partition}: "
                f"{day.metric} {day.challenger:.4f} vs {day.champion:.4f} on the same {day.rows} labelled rows "
                f"(short by {day.trail:.4f} > tolerance {tolerance})"
            )
            return CanaryVerdict("refuse", reason, required, tolerance, judged[: judged.index(day) + 1])
    if len(judged) < required:
        seen = ", ".join(d.partition for d in judged) or "none"
        reason = f"{len(judged)} of {required} labelled shadow days so far ({seen}); the challenger waits"
        return CanaryVerdict("pending", reason, required, tolerance, judged)
    worst = max(judged, key=lambda d: d.trail)
    reason = (
        f"{required} labelled shadow days ({judged[0].partition} .. {judged[-1].partition}) within tolerance "
        f"{tolerance}: largest shortfall {worst.trail:+.4f} on {worst.partition}"
    )
    return CanaryVerdict("promote", reason, required, tolerance, judged)


def online_metric_key(metric: str) -> str:
    """The MLflow metric, on a version's training run, of its labelled live days (step: the day's ordinal)."""
    return f"online_{metric}"


def _training_run(usecase: UseCase, version: str) -> str:
    run_id = tracking.version_tags(usecase, version).get(Tag.RUN_ID, "")
    if not run_id:
        raise ValueError(f"version {version} of {usecase.registered_model_name} has no {Tag.RUN_ID} tag")
    return run_id


def log_online(usecase: UseCase, version: str, day: dt.date, value: float) -> None:
    """Log a labelled day's online metric of `version` on its training run; logging a day again changes nothing
    (same key, step, timestamp and value: MLflow keeps one)."""
    timestamp = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    key = online_metric_key(usecase.thresholds.gate.metric)
    tracking.client().log_metric(_training_run(usecase, version), key, value, timestamp=timestamp, step=day.toordinal())


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
