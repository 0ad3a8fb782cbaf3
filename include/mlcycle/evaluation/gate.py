"""The promotion gate as a pure function: metrics in, a decision with its reasons out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlcycle.config import GateThresholds

Decision = Literal["promote", "reject"]

# For these metrics lower is better; the gate compares in the right direction.
LOWER_IS_BETTER = {"log_loss", "brier"}


@dataclass
class GateDecision:
    decision: Decision
    metric: str
    candidate: float
    champion: float | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(thresholds: GateThresholds, candidate: dict[str, float], champion: dict[str, float] | None) -> GateDecision:
    """Promote only a finite candidate that clears the floor and beats the champion by the hurdle."""
    metric = thresholds.metric
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    value = candidate[metric]
    reasons: list[str] = []
    if not math.isfinite(value):
        reasons.append(f"candidate {metric} is not finite ({value})")
    elif sign * value < sign * thresholds.min_metric:
        reasons.append(f"candidate {metric}={value:.4f} misses the floor {thresholds.min_metric}")
    champion_value = None if champion is None else champion[metric]
    if champion_value is not None and math.isfinite(value):
        margin = sign * (value - champion_value)
        if margin < thresholds.min_improvement:
            reasons.append(
                f"candidate {metric}={value:.4f} does not beat champion {champion_value:.4f} "
                f"by min_improvement={thresholds.min_improvement}"
            )
    if reasons:
        return GateDecision("reject", metric, value, champion_value, reasons)
    why = "no champion yet" if champion_value is None else f"beats champion {champion_value:.4f}"
    return GateDecision("promote", metric, value, champion_value, [f"candidate {metric}={value:.4f} {why}"])
