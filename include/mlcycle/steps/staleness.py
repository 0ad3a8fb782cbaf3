"""staleness: once a week, the gate metric of every champion against its age (*The ML Test Score*, Model 4).

On the monitoring run of a partition D that falls on `staleness.weekday` (other days: NOTHING_TO_DO, skipped),
every version that held @champion (the registry's champion periods) scores the newest `staleness.labelled_days`
labelled days up to D - label delay that lie after its own training window. Each (version, day) is a point of
the curve, metric vs age; monitoring.staleness fits the decay and the age budget that `freshness` applies.
The curve lands in staleness/ds=D/curve.json and in the DAG run's MLflow run (metric
`staleness.v<N>.<metric>` with the age as its step, `staleness_budget_days`, the curve as an artifact).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from mlcycle.monitoring import staleness
from mlcycle.specs.names import Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import StalenessResult
from mlcycle.steps.base import NothingToDo, StepContext
from mlcycle.storage.layout import DATA_FILE, STALENESS_FILE, Dataset
from mlcycle.tags import Tag

log = logging.getLogger(__name__)


def _labelled_days(ctx: StepContext) -> list[dt.date]:
    """The newest `staleness.labelled_days` validated partitions whose labels have arrived (<= D - delay)."""
    usecase = ctx.usecase
    last = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    days = [d for d in ctx.storage.list_partitions(usecase.name, Dataset.VALIDATED) if d <= last]
    return days[-usecase.staleness.labelled_days :]


def champion_points(
    model: Any,
    version: str,
    trained_through: dt.date,
    frames: dict[dt.date, Any],
    *,
    target: str,
    metric: str,
    threshold: float,
    what: str,
) -> tuple[list[staleness.Point], list[staleness.Unscored]]:
    """One champion's points: its metric on each labelled day after its window, fed the columns of its own logged
    signature (a version keeps the features it was trained on). A day that lacks one of them is an `Unscored`
    entry naming the columns, not a silent gap in the curve and not a failure of every weekly run to come."""
    import pandas as pd

    from mlcycle.monitoring.performance import MIN_LABELLED_ROWS, metric_of
    from mlcycle.training.model_io import MissingModelInput, model_input, predict_score

    points, unscored = [], []
    for day, frame in frames.items():
        # A day of its own training window says nothing about its age.
        if day <= trained_through or len(frame) < MIN_LABELLED_ROWS or frame[target].nunique() < 2:
            continue
        try:
            features = model_input(model, frame, what)
        except MissingModelInput as exc:
            unscored.append(staleness.Unscored(version, day.isoformat(), str(exc)))
            continue
        scored = pd.DataFrame({"target": frame[target].astype("int64"), "score": predict_score(model, features)})
        value = metric_of(scored, metric, threshold)
        points.append(
            staleness.Point(version, day.isoformat(), (day - trained_through).days, round(value, 6), len(frame))
        )
    return points, unscored


def measure(ctx: StepContext) -> tuple[list[staleness.Point], list[staleness.Unscored], list[dt.date], list[str]]:
    """(points, unscored, labelled days, champion versions): every champion's metric on each labelled day after its
    window (:func:`champion_points`)."""
    import pandas as pd

    from mlcycle.registry import tracking
    from mlcycle.registry.champion import champion_periods
    from mlcycle.steps.models import load_model

    usecase = ctx.usecase
    target, metric, threshold = usecase.target.name, usecase.thresholds.gate.metric, usecase.model.decision_threshold
    champions = [
        (str(v.version), dt.date.fromisoformat(v.tags[Tag.PARTITION]))
        for v in tracking.all_versions(usecase)
        if champion_periods(dict(v.tags)) and v.tags.get(Tag.PARTITION)
    ]
    days = _labelled_days(ctx)
    frames: dict[dt.date, pd.DataFrame] = {}
    for day in days:
        with ctx.storage.local_copy(ctx.uri(Dataset.VALIDATED, day)) as folder:
            frame = pd.read_parquet(folder / DATA_FILE)
        frames[day] = frame[frame[target].notna()]
    points: list[staleness.Point] = []
    unscored: list[staleness.Unscored] = []
    for version, trained_through in champions:
        what = f"{usecase.registered_model_name} version {version}"
        got, missed = champion_points(
            load_model(usecase, version),
            version,
            trained_through,
            frames,
            target=target,
            metric=metric,
            threshold=threshold,
            what=what,
        )
        points += got
        unscored += missed
    for miss in unscored:
        log.warning("staleness: %s not scored on %s: %s", miss.version, miss.partition, miss.reason)
    return points, unscored, days, [v for v, _ in champions]


def _log_to_mlflow(ctx: StepContext, folder: Path, points: list[staleness.Point], budget: staleness.AgeBudget) -> str:
    import mlflow

    from mlcycle.registry import tracking

    metric = ctx.usecase.thresholds.gate.metric
    parent = tracking.parent_run(ctx.usecase, ctx.airflow, ctx.partition.isoformat())
    with mlflow.start_run(run_id=parent):
        for p in points:
            mlflow.log_metric(f"staleness.v{p.version}.{metric}", p.value, step=p.age_days)
        if budget.days is not None:
            mlflow.log_metric("staleness_budget_days", budget.days)
        mlflow.log_artifacts(str(folder), artifact_path=f"staleness/{ctx.partition.isoformat()}")
    return parent


def main(ctx: StepContext, options: Options) -> StalenessResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    settings = usecase.staleness
    if ctx.partition.isoweekday() != settings.isoweekday:
        raise NothingToDo(
            f"staleness is measured weekly, on the partition of a {settings.weekday} ({partition} is a "
            f"{ctx.partition.strftime('%a').lower()})"
        )
    points, unscored, days, champions = measure(ctx)
    if not champions:
        raise NothingToDo(f"{usecase.registered_model_name} has had no @champion yet: no age to measure")
    metric = usecase.thresholds.gate.metric
    budget = staleness.decay_budget(
        points, metric=metric, drop=usecase.retraining.performance_drop, min_champions=settings.min_champions
    )
    document = staleness.curve_document(partition, metric, [d.isoformat() for d in days], points, budget, unscored)
    target = ctx.uri(Dataset.STALENESS)
    with ctx.storage.writer(
        target, {"step": "staleness", "champions": champions, "airflow": ctx.produced_by()}
    ) as staging:
        staleness.save_curve(staging, document)
        parent_run = _log_to_mlflow(ctx, staging, points, budget)
    log.info("staleness on %s: %d points of champions %s; budget: %s", partition, len(points), champions, budget)
    metrics: dict[str, Any] = {
        "metric": metric,
        "champions": champions,
        "labelled_days": document["labelled_days"],
        "points": document["points"],
        "unscored": document["unscored"],
        "budget": document["budget"],
    }
    return StalenessResult.of(
        Step.STALENESS,
        usecase.name,
        partition,
        outputs={"curve": f"{target}/{STALENESS_FILE}", "staleness": target, "mlflow_run_id": parent_run},
        metrics=metrics,
    )
