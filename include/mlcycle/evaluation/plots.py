"""Diagnostic plots logged with every candidate run: ROC, PR, calibration, confusion matrix, slices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: steps run in pods and subprocesses without a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay


def diagnostic_figures(
    y_true: np.ndarray, score: np.ndarray, threshold: float, slices: dict[str, float]
) -> dict[str, Figure]:
    """Artifact file name -> figure, for `mlflow.log_figure`."""
    y = np.asarray(y_true).astype(int)
    figures: dict[str, Figure] = {}

    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, score, ax=ax)
    ax.set_title("ROC (test)")
    figures["plots/roc.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    PrecisionRecallDisplay.from_predictions(y, score, ax=ax)
    ax.set_title("Precision-recall (test)")
    figures["plots/pr.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    observed, predicted = calibration_curve(y, score, n_bins=10, strategy="quantile")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Calibration (test)")
    ax.legend()
    figures["plots/calibration.png"] = fig

    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(y, (score >= threshold).astype(int), ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix @ {threshold}")
    figures["plots/confusion_matrix.png"] = fig

    if slices:
        fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(slices))))
        names = sorted(slices)
        ax.barh(names, [slices[n] for n in names])
        ax.set_xlim(0.5, 1.0)
        ax.set_xlabel("ROC AUC")
        ax.set_title("ROC AUC by slice (test)")
        fig.tight_layout()
        figures["plots/slices.png"] = fig
    return figures


def close(figures: dict[str, Figure]) -> None:
    for figure in figures.values():
        plt.close(figure)
