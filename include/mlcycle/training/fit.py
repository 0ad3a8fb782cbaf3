"""Fit one candidate model on its splits and measure it: the pure heart of the ``train`` step.

No MLflow here: :func:`fit_and_measure` returns what the step logs (metrics, the test scores the
diagnostic figures are drawn from, the torch trainer's curves) and registers (the fitted pipeline).

After the fit, valid and test are scored whole (the gate and the model card read them), but the train split only
on a seeded sample of `train_metric_rows` rows (`train_sample_*` metrics): scoring all of it cost as much again as
the fit, for metrics nobody compares across versions. The same sample's scores are the monitor's prediction-drift
reference (mlcycle.monitoring.reference_scores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.config import UseCase
from mlcycle.training.metrics import classification_metrics, slice_metrics
from mlcycle.training.model_io import feature_frame
from mlcycle.training.sampling import sample_train

__all__ = ["TRAIN_SAMPLE", "FittedCandidate", "TorchFitReport", "fit_and_measure"]

# The metrics' prefix for the train split's sample: `train_sample_roc_auc`, never read as the whole split's.
TRAIN_SAMPLE = "train_sample"


@dataclass(frozen=True)
class TorchFitReport:
    """How the torch network's training went: per-epoch curves, device, selected epoch, resume point."""

    history: list[dict[str, float]]
    device: str
    best_epoch: int
    epochs_run: int
    resumed_from_epoch: int | None


@dataclass(frozen=True)
class FittedCandidate:
    """A fitted pipeline and its measurements.

    ``metrics``: ``fit_seconds``, then ``train_sample_<metric>`` (the train split's sample; its size is
    ``train_sample_rows``) and ``<split>_<metric>`` for valid and test, the test slices
    (``test_roc_auc.<column>.<value>``) right after the test split's metrics. ``test_labels`` /
    ``test_scores`` / ``slices`` are what the diagnostic figures are drawn from; ``train_sample_scores`` are the
    scores of the sampled train rows (in the window's order).
    """

    model: Pipeline
    metrics: dict[str, float]
    test_labels: np.ndarray
    test_scores: np.ndarray
    slices: dict[str, float]
    torch: TorchFitReport | None
    train_sample_scores: np.ndarray


def fit_and_measure(
    usecase: UseCase,
    model: Pipeline,
    splits: dict[str, pd.DataFrame],
    *,
    train_metric_rows: int | None,
    checkpoint_dir: Path | None = None,
) -> FittedCandidate:
    """Fit ``model`` (unfitted, from ``build_model``) on ``splits["train"]``; score valid and test as given (the
    train step reads each cut to a seeded sample of `METRIC_SPLIT_MAX_ROWS`) and the train split on a sample of
    ``train_metric_rows`` rows drawn with ``model.seed`` (None: all of it).

    A torch pipeline early-stops on ``splits["valid"]`` and checkpoints every epoch under
    ``checkpoint_dir`` (a retried fit resumes); the other families ignore ``checkpoint_dir``.
    """
    target, threshold = usecase.target.name, usecase.model.decision_threshold
    started = time.perf_counter()
    torch_report: TorchFitReport | None = None
    if usecase.model.family == "torch_mlp":
        torch_report = _fit_torch(usecase, model, splits, checkpoint_dir)
    else:
        model.fit(feature_frame(usecase, splits["train"]), splits["train"][target])
    metrics: dict[str, float] = {"fit_seconds": time.perf_counter() - started}

    train_sample, _ = sample_train(splits["train"], train_metric_rows, usecase.model.seed)
    measured = {TRAIN_SAMPLE: train_sample, **{s: t for s, t in splits.items() if s != "train"}}
    scores: dict[str, np.ndarray] = {}
    test_labels, slices = np.empty(0), {}
    for split, table in measured.items():
        scores[split] = score = model.predict_proba(feature_frame(usecase, table))[:, 1]
        for name, value in classification_metrics(table[target].to_numpy(), score, threshold).items():
            metrics[f"{split}_{name}"] = value
        if split == "test":
            slices = slice_metrics(table, table[target], score, usecase.slices)
            metrics.update({f"test_{k}": v for k, v in slices.items()})
            test_labels = table[target].to_numpy()
    return FittedCandidate(
        model, metrics, test_labels, scores.get("test", np.empty(0)), slices, torch_report, scores[TRAIN_SAMPLE]
    )


def _fit_torch(
    usecase: UseCase, model: Any, splits: dict[str, pd.DataFrame], checkpoint_dir: Path | None
) -> TorchFitReport:
    """Fit the torch pipeline, early-stopping on the validation split, with per-epoch checkpoints."""
    from mlcycle.training.torch_mlp import fit_pipeline  # lazy: importing torch costs ~5 s

    target = usecase.target.name
    if checkpoint_dir is not None:
        model.set_params(model__checkpoint_dir=str(checkpoint_dir))
    fit_pipeline(
        model,
        feature_frame(usecase, splits["train"]),
        splits["train"][target],
        feature_frame(usecase, splits["valid"]),
        splits["valid"][target],
    )
    network = model[-1]
    return TorchFitReport(
        history=network.history_,
        device=str(network.device_),
        best_epoch=network.best_epoch_,
        epochs_run=network.n_epochs_,
        resumed_from_epoch=network.resumed_from_epoch_,
    )
