"""The seeded hyperparameter search of the ``tune`` step: candidates fitted on train, scored on valid.

Pure (no MLflow, no storage): :func:`run_search` samples ``search.trials`` candidate parameter sets from the
declared space with ``search.seed``, fits each on the train split and scores it on the valid split with the
gate's metric; it never reads the test split, which stays the gate's. The step logs each :class:`Trial` as a
nested MLflow run and commits the best parameters for ``train``.

Strategies:

- ``random``: every candidate is fitted on the whole train split.
- ``successive_halving``: round 0 fits every candidate on a seeded subset of the train rows; each round keeps
  the best ``1/halving_factor`` and multiplies the rows by ``halving_factor``; the last round uses every row.
  (sklearn's ``HalvingRandomSearchCV`` would score by cross-validation on train, not on the valid split.)

The time budget is checked before each fit: no fit starts after ``search.max_time``, the first always runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.config import LOWER_IS_BETTER, ChoiceSpace, FloatRange, IntRange, ParamValue, Search, SearchSpace, UseCase
from mlcycle.training.metrics import classification_metrics
from mlcycle.training.model_io import feature_frame
from mlcycle.training.trainers import build_model

__all__ = ["SearchOutcome", "Trial", "run_search", "sample_candidates", "with_params"]

#: The fewest train rows a halving round fits on (fewer rows say little about the parameters).
MIN_ROUND_ROWS = 100


@dataclass(frozen=True)
class Trial:
    """One fit of one candidate: its parameters, its score on the valid split, what it cost."""

    number: int  # the fit's position in the search (0, 1, ...)
    candidate: int  # which sampled candidate (the same across halving rounds)
    round: int
    params: dict[str, ParamValue]
    train_rows: int
    valid_score: float
    fit_seconds: float


@dataclass(frozen=True)
class SearchOutcome:
    """Every fit, the best one, and why the search stopped.

    ``best`` is the best-scoring fit of the last round the search reached (halving: the round on the most rows;
    a round cut short by the time budget counts with the fits it made).
    """

    metric: str
    trials: list[Trial]
    best: Trial
    stopped_by: str  # "trials" (every planned fit ran) or "time" (search.max_time ran out)


def with_params(usecase: UseCase, params: dict[str, ParamValue]) -> UseCase:
    """The use case with ``params`` over its ``model.params``: what a candidate (or ``train``) fits."""
    model = usecase.model.model_copy(update={"params": {**usecase.model.params, **params}})
    return usecase.model_copy(update={"model": model})


def _draw(space: SearchSpace, rng: np.random.Generator) -> ParamValue:
    if isinstance(space, ChoiceSpace):
        return space.values[int(rng.integers(len(space.values)))]
    if isinstance(space, IntRange):
        if space.log:  # uniform in log space over [low, high + 1), floored: every integer reachable
            return min(space.high, math.floor(math.exp(rng.uniform(math.log(space.low), math.log(space.high + 1)))))
        return int(rng.integers(space.low, space.high + 1))
    assert isinstance(space, FloatRange)
    if space.log:
        return float(math.exp(rng.uniform(math.log(space.low), math.log(space.high))))
    return float(rng.uniform(space.low, space.high))


def sample_candidates(search: Search) -> list[dict[str, ParamValue]]:
    """``search.trials`` parameter sets, drawn from the space in its declared order with ``search.seed``."""
    rng = np.random.default_rng(search.seed)
    return [{name: _draw(space, rng) for name, space in search.params.items()} for _ in range(search.trials)]


def check_searchable(usecase: UseCase, search: Search) -> None:
    """Every searched name is a parameter of the family's estimator (else a ValueError naming them)."""
    accepted = set(build_model(usecase)[-1].get_params())
    unknown = sorted(set(search.params) - accepted)
    if unknown:
        raise ValueError(
            f"model.search.params: {unknown} are not parameters of the {usecase.model.family} estimator "
            f"(it has {sorted(accepted)})"
        )


def _fit_and_score(
    usecase: UseCase, params: dict[str, ParamValue], train: pd.DataFrame, valid: pd.DataFrame, metric: str
) -> tuple[float, float]:
    """(valid score, fit seconds) of a fresh pipeline with ``params``, fitted on ``train``."""
    candidate = with_params(usecase, params)
    model: Pipeline = build_model(candidate)
    target = usecase.target.name
    started = time.perf_counter()
    if usecase.model.family == "torch_mlp":
        from mlcycle.training.torch_mlp import fit_pipeline  # lazy: importing torch costs ~5 s

        # The network early-stops on the valid split, as in `train`.
        fit_pipeline(model, feature_frame(usecase, train), train[target], feature_frame(usecase, valid), valid[target])
    else:
        model.fit(feature_frame(usecase, train), train[target])
    seconds = time.perf_counter() - started
    score = model.predict_proba(feature_frame(usecase, valid))[:, 1]
    value = classification_metrics(valid[target].to_numpy(), score, usecase.model.decision_threshold)[metric]
    return value, seconds


def _rounds(search: Search, train_rows: int) -> list[int]:
    """The train rows of each round: one round of every row (random), or halving rounds ending at every row."""
    if search.strategy == "random":
        return [train_rows]
    factor, count = search.halving_factor, 1
    while factor**count < search.trials:  # the fewest rounds that bring the candidates down to one round's worth
        count += 1
    rows = [max(min(MIN_ROUND_ROWS, train_rows), train_rows // factor ** (count - 1 - r)) for r in range(count)]
    return sorted(set(rows))  # tiny splits: rounds that would fit the same rows are one round


def run_search(
    usecase: UseCase,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_trial: Callable[[Trial], None] | None = None,
) -> SearchOutcome:
    """Search ``usecase.model.search`` over the train and valid splits (the test split is not an argument).

    ``on_trial`` sees each fit as it ends (the step logs it to MLflow); ``clock`` measures the time budget.
    """
    search = usecase.model.search
    if search is None:
        raise ValueError(f"use case {usecase.name}: model.search is not set; nothing to tune")
    check_searchable(usecase, search)
    metric = usecase.thresholds.gate.metric
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    # One seeded order of the train rows: each halving round fits on a prefix of it (nested subsets).
    order = np.random.default_rng(search.seed).permutation(len(train))
    candidates = sample_candidates(search)
    alive = list(range(len(candidates)))
    trials: list[Trial] = []
    deadline = clock() + search.max_time.total_seconds()
    stopped_by = "trials"
    latest: dict[int, Trial] = {}
    for round_number, rows in enumerate(_rounds(search, len(train))):
        subset = train.iloc[np.sort(order[:rows])]
        for index in alive:
            if trials and clock() >= deadline:
                stopped_by = "time"
                break
            value, seconds = _fit_and_score(usecase, candidates[index], subset, valid, metric)
            trial = Trial(len(trials), index, round_number, candidates[index], rows, value, seconds)
            trials.append(trial)
            latest[index] = trial
            if on_trial is not None:
                on_trial(trial)
        if stopped_by == "time":
            break
        ranked = sorted(alive, key=lambda i: _rank(latest[i], sign))
        alive = ranked[: max(1, math.ceil(len(alive) / search.halving_factor))]
    best = min(latest.values(), key=lambda t: (-t.round, *_rank(t, sign)))
    return SearchOutcome(metric=metric, trials=trials, best=best, stopped_by=stopped_by)


def _rank(trial: Trial, sign: float) -> tuple[float, int]:
    """Best first: the higher signed score (a NaN score last), then the earlier candidate (a stable tie-break)."""
    score = -sign * trial.valid_score
    return (math.inf if math.isnan(score) else score, trial.candidate)
