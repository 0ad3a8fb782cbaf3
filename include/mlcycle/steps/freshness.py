"""freshness: is the champion too old, or has training stopped? (*Reliable Machine Learning*, ch. 11).

Ages are counted in partitions, relative to the partition being monitored, not to the wall clock: a
backfill of last month asks "was the model stale *then*?" and gets the same answer every time.
- model age: partition - the last day of the champion's training window (version tag mlcycle.partition);
- training gap: partition - the newest training window of any registered version (promoted or not: the
  pipeline ran), up to the partition.
The model-age budget is the measured one when the newest staleness curve up to the partition
(staleness/ds=<=D, the weekly `staleness` task) measured a decay: the age at which the gate metric falls by
`retraining.performance_drop`; until then `freshness.max_model_age_days`. The result says which it used and why.
Over budget -> REJECTED (65): the task fails without retry and its failure alert links the runbook.
"""

from __future__ import annotations

import datetime as dt

from mlcycle.monitoring import staleness
from mlcycle.registry import tracking
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import FreshnessResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.storage.layout import STALENESS_FILE, Dataset
from mlcycle.tags import Tag


def age_budget(ctx: StepContext) -> tuple[int, str, str, str | None]:
    """(days, "measured" | "fallback", why, the curve it comes from): the champion's age budget on the partition."""
    fallback = ctx.usecase.freshness.max_model_age_days
    measured = [d for d in ctx.storage.list_partitions(ctx.usecase.name, Dataset.STALENESS) if d <= ctx.partition]
    if not measured:
        return fallback, staleness.FALLBACK, f"no staleness curve measured up to {ctx.partition} yet", None
    uri = ctx.uri(Dataset.STALENESS, measured[-1])
    with ctx.storage.local_copy(uri) as folder:
        budget = staleness.read_budget(folder)
    curve = f"{uri}/{STALENESS_FILE}"
    if budget.source == staleness.MEASURED and budget.days is not None:
        return budget.days, staleness.MEASURED, f"measured on {measured[-1]}: {budget.reason}", curve
    return fallback, staleness.FALLBACK, f"curve of {measured[-1]}: {budget.reason}", curve


def main(ctx: StepContext, options: Options) -> FreshnessResult:
    usecase, day = ctx.usecase, ctx.partition
    budget = usecase.freshness
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    if champion is None:
        raise NothingToDo(f"{usecase.registered_model_name} has no @champion yet: nothing can be stale")
    trained = {
        str(v.version): dt.date.fromisoformat(v.tags[Tag.PARTITION])
        for v in tracking.all_versions(usecase)
        if v.tags.get(Tag.PARTITION)
    }
    champion_through = trained.get(str(champion.version))
    if champion_through is None:
        raise ValueError(f"champion version {champion.version} has no mlcycle.partition tag")
    model_age = (day - champion_through).days
    last_training = max((d for d in trained.values() if d <= day), default=champion_through)
    training_gap = (day - last_training).days
    max_age, source, why, curve = age_budget(ctx)
    metrics = {
        "champion_version": str(champion.version),
        "champion_trained_through": champion_through.isoformat(),
        "model_age_days": model_age,
        "max_model_age_days": budget.max_model_age_days,
        "last_training_partition": last_training.isoformat(),
        "training_gap_days": training_gap,
        "max_training_gap_days": budget.max_training_gap_days,
        "age_budget_days": max_age,
        "age_budget_source": source,
        "age_budget_reason": why,
        "staleness_curve": curve,
    }
    problems = []
    if model_age > max_age:
        problems.append(
            f"champion v{champion.version} is {model_age} days old on {day} (trained on data through "
            f"{champion_through}; {source} budget {max_age} days: {why})"
        )
    if training_gap > budget.max_training_gap_days:
        problems.append(
            f"no successful training for {training_gap} days on {day} (last window ended {last_training}; "
            f"budget {budget.max_training_gap_days} days)"
        )
    if problems:
        raise Rejected("stale: " + "; ".join(problems), metrics=metrics, runbook="model-stale")
    return FreshnessResult.of(Step.FRESHNESS, usecase.name, day.isoformat(), outputs={}, metrics=metrics)
