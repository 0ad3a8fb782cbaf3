"""How fast a model goes stale, measured: the gate metric of every champion against its age, and the age budget.

The weekly `staleness` step scores the newest labelled days with every version that held @champion; each
(version, day) is a point: the version's metric on that day at age = day - the end of its training window. A
least-squares line through the points gives the metric lost per day of age, and the budget is the age at which
the use case's `retraining.performance_drop` is lost. Until `staleness.min_champions` champions have been
measured at two ages or more, or while no decay shows (the line does not fall), there is no measured budget:
`freshness` uses `freshness.max_model_age_days`.

Standard library only: `freshness` reads the stored curve with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from mlcycle.storage.layout import STALENESS_FILE

MEASURED: Final = "measured"
FALLBACK: Final = "fallback"


@dataclass(frozen=True)
class Point:
    """One champion's metric on one labelled day, at its age on that day."""

    version: str
    partition: str
    age_days: int
    value: float
    rows: int


@dataclass(frozen=True)
class Unscored:
    """A champion that could not score a labelled day: the day lacks a column of its logged signature."""

    version: str
    partition: str
    reason: str


@dataclass(frozen=True)
class AgeBudget:
    """The champion age budget: measured from the curve, or the documented fallback, and why."""

    source: Literal["measured", "fallback"]
    days: int | None  # None: fallback (freshness applies its own `max_model_age_days`)
    reason: str
    slope_per_day: float | None = None


def decay_budget(points: Sequence[Point], *, metric: str, drop: float, min_champions: int) -> AgeBudget:
    """The age at which the fitted metric has lost `drop`, when the points measure a decay; else a fallback.

    `slope_per_day` is the metric's change per day of age (negative for a ranking metric that decays).
    """
    versions = sorted({p.version for p in points}, key=int)
    ages = sorted({p.age_days for p in points})
    if len(versions) < min_champions:
        return AgeBudget(FALLBACK, None, f"{len(versions)} champion(s) measured {versions}, {min_champions} needed")
    if len(ages) < 2:
        return AgeBudget(FALLBACK, None, f"every point has the same age ({ages}): no slope to measure")
    # Quality rises with a ranking metric and falls with a loss: fit quality, so decay is a negative slope.
    sign = -1.0 if metric in ("log_loss", "brier") else 1.0
    xs, ys = [float(p.age_days) for p in points], [sign * p.value for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    span = f"{len(points)} points of {len(versions)} champions, ages {ages[0]}-{ages[-1]} days"
    if slope >= 0:
        return AgeBudget(
            FALLBACK, None, f"no decay measured: {metric} does not fall with age ({span})", round(sign * slope, 6)
        )
    days = max(1, math.floor(drop / -slope + 1e-9))  # 0.05 / 0.01 is 4.999...: not a day less
    reason = f"{metric} loses {-slope:.5f} per day of age ({span}): a drop of {drop} takes {days} days"
    return AgeBudget(MEASURED, days, reason, round(sign * slope, 6))


def curve_document(
    partition: str, metric: str, days: list[str], points: list[Point], budget: AgeBudget, unscored: list[Unscored]
) -> dict[str, Any]:
    """What staleness/ds=D/curve.json holds."""
    return {
        "partition": partition,
        "metric": metric,
        "labelled_days": days,
        "points": [asdict(p) for p in points],
        "unscored": [asdict(u) for u in unscored],
        "budget": asdict(budget),
    }


def save_curve(directory: Path, document: dict[str, Any]) -> None:
    (directory / STALENESS_FILE).write_text(json.dumps(document, indent=2) + "\n")


def read_budget(folder: Path) -> AgeBudget:
    """The budget stored in a committed staleness partition's curve.json."""
    budget = json.loads((folder / STALENESS_FILE).read_text())["budget"]
    return AgeBudget(**budget)
