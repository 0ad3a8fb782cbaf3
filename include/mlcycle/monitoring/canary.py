"""The shadow @challenger judged on live traffic, and each version's offline metric beside its online one.

- `compare_day`: on a labelled day L, the champion's served predictions and the challenger's shadow predictions
  of the same rows, joined with L's labels: both versions' gate metric on exactly the same rows (the monitor
  step logs it every day).
- `verdict`: `promotion: shadow_canary` promotes a gate-approved challenger once it has K labelled shadow days
  on none of which it trails the champion by more than the tolerance; the first trailing day refuses it.
- `log_online`: every labelled day's online metric of a version is logged on the MLflow run that trained it
  (metric `online_<metric>`, one step per day), next to its offline `test_<metric>`; the table of both per
  version and their correlation across versions (`mlcycle.monitoring.offline_online`, free of pandas and
  sklearn so that `mlcycle report` stays light) shows whether the offline test predicts serving.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from mlcycle.config import UseCase
from mlcycle.monitoring.offline_online import offline_online as offline_online  # re-exported: monitor.py's name
from mlcycle.monitoring.offline_online import offline_online_table as offline_online_table
from mlcycle.monitoring.offline_online import online_metric_key, shortfall
from mlcycle.monitoring.performance import MIN_LABELLED_ROWS, labelled, metric_of
from mlcycle.registry import tracking
from mlcycle.tags import Tag


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
