"""tune: features/ds=D (train and valid splits) -> tuning/ds=D/best_params.json, the parameters `train` fits with.

Runs only for a use case with `model.search`. Either reuses a search run fewer than `model.search.every`
partitions before D for the same search (a weekly search, nightly trainings), or runs the seeded search of
:func:`mlcycle.training.search.run_search` and logs it to MLflow: one search run, nested in the DAG run's
parent run, with one nested run per fit. Both commit tuning/ds=D, so `train` reads exactly its own partition.

Reuse exits 0, not NOTHING_TO_DO: a skipped task would skip `train` after it (Airflow's default trigger rule),
and reuse does produce something, the tuning partition of D.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import pandas as pd

from mlcycle.config import ParamValue, Search, UseCase
from mlcycle.registry import tracking
from mlcycle.specs.catalog import TuneOptions
from mlcycle.specs.names import Step
from mlcycle.specs.results import TuneResult
from mlcycle.steps.base import NothingToDo, StepContext
from mlcycle.storage.layout import BEST_PARAMS_FILE, Dataset, Split, split_file
from mlcycle.tags import Tag
from mlcycle.training.search import SearchOutcome, Trial, run_search

log = logging.getLogger(__name__)

#: The `mlcycle.role` of the search run and of each trial run.
SEARCH_ROLE, TRIAL_ROLE = "search", "trial"


@dataclass(frozen=True)
class Tuning:
    """The document of tuning/ds=D: the parameters, the search run they came from, and how it went."""

    params: dict[str, ParamValue]
    search_run_id: str
    searched_on: str  # the partition the search ran on (D, or an earlier one when reused)
    fingerprint: str  # of the search: a tuning partition of another search is never reused or trained with
    metric: str
    best_valid_score: float
    trials: int
    stopped_by: str
    reused: bool = False


def search_fingerprint(usecase: UseCase, search: Search) -> str:
    """What makes two searches interchangeable: the family, its fixed params, the space, the features, the metric."""
    material = {
        "family": usecase.model.family,
        "params": usecase.model.params,
        "search": search.model_dump(mode="json", exclude={"every"}),
        "features": [c.model_dump() for c in usecase.features],
        "metric": usecase.thresholds.gate.metric,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def read_tuning(ctx: StepContext, day: dt.date | None = None) -> Tuning | None:
    """The committed tuning partition of `day` (default: the context's), or None when there is none."""
    uri = ctx.uri(Dataset.TUNING, day)
    if not ctx.storage.exists(uri):
        return None
    with ctx.storage.local_copy(uri) as folder:
        document = json.loads((folder / BEST_PARAMS_FILE).read_text())
    try:
        return Tuning(**document)
    except TypeError as exc:  # missing or unknown keys: written by another mlcycle, or by hand
        raise ValueError(f"{uri}/{BEST_PARAMS_FILE} is not a tuning document: {exc}") from None


def tuned_params(ctx: StepContext) -> Tuning:
    """What `train` fits with when `model.search` is set: tuning/ds=D, searched for the current search space."""
    search = ctx.usecase.model.search
    if search is None:
        raise ValueError(f"use case {ctx.usecase.name}: model.search is not set; there are no tuned parameters")
    tuning = read_tuning(ctx)
    uri = ctx.uri(Dataset.TUNING)
    if tuning is None:
        raise FileNotFoundError(f"no tuned parameters at {uri}: model.search is set, run the tune step first")
    if tuning.fingerprint != search_fingerprint(ctx.usecase, search):
        raise ValueError(
            f"{uri}/{BEST_PARAMS_FILE} was searched for another model.search, model.params or features than "
            "usecase.yaml has now: rerun the tune step for this partition"
        )
    return tuning


def reusable(ctx: StepContext, search: Search, fingerprint: str) -> Tuning | None:
    """The newest search run on a partition fewer than `search.every` days before D (D included), same search."""
    found: list[Tuning] = []
    for back in range(search.every.days):
        tuning = read_tuning(ctx, ctx.partition - dt.timedelta(days=back))
        if tuning is None or tuning.fingerprint != fingerprint:
            continue
        age = (ctx.partition - dt.date.fromisoformat(tuning.searched_on)).days
        if 0 <= age < search.every.days:
            found.append(tuning)
    return max(found, key=lambda t: t.searched_on, default=None)


def main(ctx: StepContext, options: TuneOptions) -> TuneResult:
    """Reuse a recent search for the same space, or search now; commit tuning/ds=D either way."""
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    search = usecase.model.search
    if search is None:
        raise NothingToDo(f"use case {usecase.name} has no model.search: nothing to tune")
    features_uri = ctx.uri(Dataset.FEATURES)
    manifest = ctx.storage.manifest(features_uri)
    if manifest is None:
        raise FileNotFoundError(f"no features at {features_uri}: run the features step first")
    fingerprint = search_fingerprint(usecase, search)
    previous = reusable(ctx, search, fingerprint) if options.reuse == "on" else None
    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)
    if previous is not None:
        tuning = Tuning(**{**asdict(previous), "reused": True})
        with mlflow.start_run(run_id=parent_id):
            mlflow.set_tag(Tag.TUNE_REUSED_FROM, previous.search_run_id)
        log.info(
            "reusing the search of %s (run %s): younger than %s",
            previous.searched_on,
            previous.search_run_id,
            search.every,
        )
    else:
        tuning = _search(ctx, parent_id, fingerprint, features_uri)
    _commit(ctx, tuning, manifest)
    return TuneResult.of(
        Step.TUNE,
        usecase.name,
        partition,
        outputs={"best_params": ctx.uri(Dataset.TUNING)},
        inputs={"features": features_uri},
        metrics={
            "search_run_id": tuning.search_run_id,
            "reused": tuning.reused,
            "searched_on": tuning.searched_on,
            "metric": tuning.metric,
            "best_valid_score": tuning.best_valid_score,
            "trials": 0 if tuning.reused else tuning.trials,
            "stopped_by": "reused" if tuning.reused else tuning.stopped_by,
            "params": tuning.params,
        },
    )


def _load_train_valid(ctx: StepContext, features_uri: str) -> dict[str, pd.DataFrame]:
    """Only the train and valid splits: the search cannot score on the test split, which it never reads."""
    with ctx.storage.local_copy(features_uri) as folder:
        return {s: pd.read_parquet(folder / split_file(s)) for s in (Split.TRAIN, Split.VALID)}


def _search(ctx: StepContext, parent_id: str, fingerprint: str, features_uri: str) -> Tuning:
    """Run the search in an MLflow search run nested in the DAG run's parent run, one nested run per fit."""
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    search = usecase.model.search
    assert search is not None  # main checked it
    splits = _load_train_valid(ctx, features_uri)
    tags = tracking.run_tags(ctx.airflow, partition)
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(run_name=f"tune-{partition}", nested=True, tags={**tags, Tag.ROLE: SEARCH_ROLE}) as run,
    ):
        mlflow.log_params(
            {
                "family": usecase.model.family,
                "strategy": search.strategy,
                "trials": search.trials,
                "max_seconds": search.max_time.total_seconds(),
                "seed": search.seed,
                "every_days": search.every.days,
                "metric": usecase.thresholds.gate.metric,
                "features": features_uri,
            }
        )
        mlflow.log_dict(search.model_dump(mode="json"), "tuning/search_space.json")

        def log_trial(trial: Trial) -> None:
            with mlflow.start_run(
                run_name=f"trial-{trial.number}",
                nested=True,
                tags={**tags, Tag.ROLE: TRIAL_ROLE, Tag.TRIAL: str(trial.number)},
            ):
                mlflow.log_params(
                    {
                        **{f"model.{k}": v for k, v in trial.params.items()},
                        "candidate": trial.candidate,
                        "round": trial.round,
                        "train_rows": trial.train_rows,
                    }
                )
                mlflow.log_metrics(
                    {f"valid_{usecase.thresholds.gate.metric}": trial.valid_score, "fit_seconds": trial.fit_seconds}
                )

        outcome = run_search(usecase, splits[Split.TRAIN], splits[Split.VALID], on_trial=log_trial)
        tuning = _tuning(outcome, run.info.run_id, partition, fingerprint)
        mlflow.log_params({f"best.{k}": v for k, v in outcome.best.params.items()})
        mlflow.log_metrics({f"best_valid_{outcome.metric}": outcome.best.valid_score, "fits": len(outcome.trials)})
        mlflow.log_param("stopped_by", outcome.stopped_by)
        mlflow.log_dict(asdict(tuning), f"tuning/{BEST_PARAMS_FILE}")
    log.info(
        "search %s: %d fits, best %s=%.5f with %s (stopped by %s)",
        run.info.run_id,
        len(outcome.trials),
        outcome.metric,
        outcome.best.valid_score,
        outcome.best.params,
        outcome.stopped_by,
    )
    return tuning


def _tuning(outcome: SearchOutcome, run_id: str, partition: str, fingerprint: str) -> Tuning:
    return Tuning(
        params=outcome.best.params,
        search_run_id=run_id,
        searched_on=partition,
        fingerprint=fingerprint,
        metric=outcome.metric,
        best_valid_score=outcome.best.valid_score,
        trials=len(outcome.trials),
        stopped_by=outcome.stopped_by,
    )


def _commit(ctx: StepContext, tuning: Tuning, features: dict[str, Any]) -> None:
    """tuning/ds=D, committed atomically (a half-written partition is never read)."""
    manifest = {
        "step": Step.TUNE.value,
        "search_run_id": tuning.search_run_id,
        "searched_on": tuning.searched_on,
        "reused": tuning.reused,
        "features_digests": features.get("input_digests", {}),
        "airflow": ctx.produced_by(),
    }
    with ctx.storage.writer(ctx.uri(Dataset.TUNING), manifest) as staging:
        (staging / BEST_PARAMS_FILE).write_text(json.dumps(asdict(tuning), indent=2, sort_keys=True))
