"""The promotion gate as a pure function: measurements in, a decision with every reason out.

A candidate is promoted only if it has finite outputs, clears the absolute floor, beats the rule
baseline (the training positive rate for everyone) by the hurdle, beats the use case's simple model (logistic
regression by default, fitted on the same frozen split) by its hurdle, beats the champion on the frozen test set and on the recent labelled window,
regresses no slice beyond tolerance, meets the latency budget and passes the 80 % rule. A change that is
implausibly large either way (or a score that smells of leakage) goes to a human: `needs_manual_review`.
Warnings (a feature that has not helped for several trainings, a computing-performance regression in the
default soft mode) are recorded with the decision and never change it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlcycle.config import LOWER_IS_BETTER, GateThresholds

Decision = Literal["promote", "reject", "needs_manual_review"]

# For these metrics lower is better; the gate compares in the right direction.


@dataclass
class Evidence:
    """What evaluate measured for one model on the frozen test set (and the recent window)."""

    metrics: dict[str, float]
    recent: dict[str, float] | None = None
    slices: dict[str, float] = field(default_factory=dict)
    latency_p95_ms: float | None = None
    selection_rates: dict[str, float] = field(default_factory=dict)
    finite: bool = True


@dataclass(frozen=True)
class SimpleModel:
    """The use case's simple model (``thresholds.gate.baseline_family``) as measured on the frozen test set."""

    family: str
    metrics: dict[str, float]


@dataclass
class GateDecision:
    decision: Decision
    metric: str
    candidate: float
    champion: float | None
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    # Soft findings: shown with the decision, never a reason to reject.
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def selection_rate_ratio(rates: dict[str, float]) -> float | None:
    """min / max selection rate across groups (the "80 % rule" ratio); None with fewer than two groups."""
    values = [r for r in rates.values() if math.isfinite(r)]
    if len(values) < 2 or max(values) <= 0:
        return None
    return min(values) / max(values)


def decide(
    thresholds: GateThresholds,
    candidate: Evidence,
    champion: Evidence | None,
    baseline: dict[str, float] | None = None,
    *,
    simple_model: SimpleModel | None = None,
    compute_regressions: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> GateDecision:
    """The decision on ``candidate``; ``compute_regressions`` (see ``evaluation.compute``) reject only in the
    use case's ``compute_regression: hard`` mode, ``warnings`` never do."""
    metric = thresholds.metric
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    value = candidate.metrics[metric]
    champion_value = None if champion is None else champion.metrics[metric]
    reasons: list[str] = []
    checks: dict[str, bool] = {}
    flags: list[str] = []
    soft = list(warnings)

    def check(name: str, ok: bool, why: str) -> None:
        checks[name] = ok
        if not ok:
            reasons.append(why)

    check("finite", candidate.finite and math.isfinite(value), f"candidate outputs or {metric} are not finite")
    if not checks["finite"]:
        return GateDecision("reject", metric, value, champion_value, reasons, checks, flags, soft)

    check(
        "floor",
        sign * value >= sign * thresholds.min_metric,
        f"{metric}={value:.4f} misses the floor {thresholds.min_metric}",
    )
    if baseline is not None:
        hurdle = sign * (value - baseline[metric])
        check(
            "baseline",
            hurdle >= thresholds.baseline_hurdle,
            f"{metric}={value:.4f} does not beat the rule baseline {baseline[metric]:.4f} "
            f"by the hurdle {thresholds.baseline_hurdle}",
        )
    if simple_model is not None:
        simple_value = simple_model.metrics[metric]
        check(
            "simple_model",
            sign * (value - simple_value) >= thresholds.baseline_model_hurdle,
            f"{metric}={value:.4f} does not beat the simple model {simple_model.family} {simple_value:.4f} "
            f"by the hurdle {thresholds.baseline_model_hurdle}",
        )
    if champion is not None and champion_value is not None:
        check(
            "beats_champion",
            sign * (value - champion_value) >= thresholds.min_improvement,
            f"{metric}={value:.4f} does not beat champion {champion_value:.4f} by {thresholds.min_improvement}",
        )
        if candidate.recent is not None and champion.recent is not None:
            cand_recent, champ_recent = candidate.recent[metric], champion.recent[metric]
            check(
                "recent_window",
                not math.isfinite(champ_recent) or sign * (cand_recent - champ_recent) >= -thresholds.slice_tolerance,
                f"on the recent labelled window {metric}={cand_recent:.4f} trails champion {champ_recent:.4f}",
            )
        regressed = {
            name: (candidate.slices[name], champion.slices[name])
            for name in candidate.slices.keys() & champion.slices.keys()
            if sign * (candidate.slices[name] - champion.slices[name]) < -thresholds.slice_tolerance
        }
        check(
            "slices",
            not regressed,
            "slice regression beyond tolerance "
            f"{thresholds.slice_tolerance}: "
            + ", ".join(f"{k} {c:.3f} < champion {p:.3f}" for k, (c, p) in sorted(regressed.items())),
        )
    if candidate.latency_p95_ms is not None:
        check(
            "latency",
            candidate.latency_p95_ms <= thresholds.latency_p95_ms,
            f"p95 per-row predict time {candidate.latency_p95_ms:.2f} ms over the budget {thresholds.latency_p95_ms} ms",
        )
    ratio = selection_rate_ratio(candidate.selection_rates)
    if ratio is not None:
        check(
            "fairness",
            ratio >= thresholds.fairness_min_ratio,
            f"selection-rate ratio {ratio:.3f} across {thresholds.fairness_group} is below "
            f"{thresholds.fairness_min_ratio} (rates {candidate.selection_rates})",
        )

    if thresholds.compute_regression == "hard":
        check("compute", not compute_regressions, "; ".join(compute_regressions))
    else:
        soft.extend(compute_regressions)

    # Implausible results go to a human even when every check passed: they are more often bugs
    # (leakage, a broken label, a wrong join) than breakthroughs.
    # Leakage shows as a ranking metric near perfection; a loss has no such ceiling to compare with.
    if metric not in LOWER_IS_BETTER and value >= thresholds.leakage_threshold:
        flags.append(f"possible leakage: {metric}={value:.4f} >= {thresholds.leakage_threshold}")
    if champion_value is not None and abs(value - champion_value) > thresholds.max_change:
        flags.append(f"implausibly large change: {metric} {champion_value:.4f} -> {value:.4f}")

    if reasons:
        return GateDecision("reject", metric, value, champion_value, reasons, checks, flags, soft)
    if flags:
        return GateDecision("needs_manual_review", metric, value, champion_value, flags, checks, flags, soft)
    if champion_value is None:
        why = "no champion yet"
    elif sign * (value - champion_value) > 0:
        why = f"beats champion {champion_value:.4f}"
    else:  # a negative min_improvement lets a candidate within the margin through (e.g. a shadow canary decides)
        why = f"within {thresholds.min_improvement} of champion {champion_value:.4f}"
    reasons = [f"{metric}={value:.4f} {why}"]
    return GateDecision("promote", metric, value, champion_value, reasons, checks, flags, soft)
