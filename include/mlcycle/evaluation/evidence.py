"""Measure one model for the gate: metrics, slices, latency, selection rates, finiteness."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlcycle.config import UseCase
from mlcycle.evaluation.gate import Evidence, SimpleModel
from mlcycle.training.metrics import classification_metrics, slice_metrics
from mlcycle.training.model_io import feature_frame, model_input, predict_score
from mlcycle.training.sampling import read_sample
from mlcycle.training.trainers import build_model

# The rows the simple model is fitted on: a logistic regression's test metric is settled well before this, and
# fitting it on a 1M-rows/day window's whole train split tripled evaluate's CPU time (22.7 -> 74.6 s).
SIMPLE_MODEL_MAX_ROWS = 100_000

# Rows timed one at a time for the per-row latency percentile, and the smallest group the 80 % rule
# looks at (smaller groups make the ratio noise).
LATENCY_ROWS = 200
MIN_GROUP_ROWS = 100


def latency_p95_ms(model: Any, inputs: pd.DataFrame, rows: int = LATENCY_ROWS) -> float:
    """p95 of single-row predict calls: what an online caller of this model would wait."""
    sample = inputs.sample(n=min(rows, len(inputs)), random_state=0)
    # One thread, as a per-row caller runs: OpenMP pools spinning up for one row measure the machine's
    # load, not the model (p95 went from ~25 ms to ~770 ms on a busy 2-core machine).
    with threadpool_limits(limits=1):
        for _ in range(3):  # warm-up: lazy initialisation is not per-row latency
            model.predict(sample.iloc[:1])
        timings = []
        for index in range(len(sample)):
            started = time.perf_counter()
            model.predict(sample.iloc[index : index + 1])
            timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 95))


def selection_rates(table: pd.DataFrame, score: np.ndarray, group: str | None, threshold: float) -> dict[str, float]:
    if group is None:
        return {}
    decided = pd.Series(score >= threshold, index=table.index)
    values = table[group].astype("string").fillna("<null>")
    counts = values.value_counts()
    big = counts[counts >= MIN_GROUP_ROWS].index
    return {str(g): float(decided[values == g].mean()) for g in sorted(big)}


def measure(
    usecase: UseCase,
    model: Any,
    test: pd.DataFrame,
    recent: pd.DataFrame | None,
    *,
    with_latency: bool,
    what: str,
) -> tuple[Evidence, np.ndarray]:
    """The gate's evidence on ``model``: its metrics on the frozen test set, the recent window and the slices.

    The model gets the columns of its own logged signature, as scoring feeds it: a champion trained before
    `usecase.yaml`'s feature list changed is judged on what it was trained on (``what`` names it in the error
    when the data lacks one of them).
    """
    target, threshold = usecase.target.name, usecase.model.decision_threshold
    inputs = model_input(model, test, what)
    score = predict_score(model, inputs)
    finite = bool(np.isfinite(score).all())
    safe = np.nan_to_num(score, nan=0.5, posinf=1.0, neginf=0.0)
    metrics = classification_metrics(test[target].to_numpy(), safe, threshold)
    recent_metrics = None
    if recent is not None and len(recent):
        recent_score = predict_score(model, model_input(model, recent, what))
        finite = finite and bool(np.isfinite(recent_score).all())
        recent_metrics = classification_metrics(
            recent[target].to_numpy(), np.nan_to_num(recent_score, nan=0.5), threshold
        )
    evidence = Evidence(
        metrics=metrics,
        recent=recent_metrics,
        slices=slice_metrics(test, test[target], safe, usecase.slices),
        latency_p95_ms=latency_p95_ms(model, inputs) if with_latency else None,
        selection_rates=selection_rates(test, safe, usecase.thresholds.gate.fairness_group, threshold),
        finite=finite,
    )
    return evidence, safe


def baseline_metrics(usecase: UseCase, train_target: pd.Series, test: pd.DataFrame) -> dict[str, float]:
    """The rule baseline: predict the training positive rate (of ``train_target``, the train split's labels) for
    everyone."""
    prior = float(train_target.mean())
    target = usecase.target.name
    return classification_metrics(test[target].to_numpy(), np.full(len(test), prior), usecase.model.decision_threshold)


def simple_model(usecase: UseCase, train_split: Path, test: pd.DataFrame) -> SimpleModel | None:
    """The use case's simple model family with its default parameters, fitted on a seeded sample of at most
    `SIMPLE_MODEL_MAX_ROWS` rows of the frozen train split (the Parquet file ``train_split``, sampled before it
    becomes a DataFrame) and measured on the whole frozen test set; None when none is configured or the candidate
    is of that family itself."""
    family = usecase.thresholds.gate.baseline_family
    if family is None or family == usecase.model.family:
        return None
    config = usecase.model_copy(update={"model": usecase.model.model_copy(update={"family": family, "params": {}})})
    target = usecase.target.name
    train, _ = read_sample(train_split, SIMPLE_MODEL_MAX_ROWS, usecase.model.seed)
    model = build_model(config).fit(feature_frame(config, train), train[target])
    score = model.predict_proba(feature_frame(config, test))[:, 1]
    return SimpleModel(family, classification_metrics(test[target].to_numpy(), score, usecase.model.decision_threshold))
