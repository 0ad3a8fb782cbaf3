"""Classification metrics used for tracking and by the gate (one definition for both)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss, roc_auc_score

# Slice values with fewer rows or no positives/negatives give meaningless AUCs: skip them.
MIN_SLICE_ROWS = 50


def classification_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(score, dtype=float), 1e-7, 1 - 1e-7)
    both_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "f1": float(f1_score(y, (p >= threshold).astype(int), zero_division=0)),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def slice_metrics(
    frame: pd.DataFrame, y_true: np.ndarray, score: np.ndarray, slices: Sequence[str]
) -> dict[str, float]:
    """ROC AUC per value of each slice column, keyed `roc_auc.<column>.<value>` (valid MLflow names)."""
    out: dict[str, float] = {}
    y, p = np.asarray(y_true).astype(int), np.asarray(score, dtype=float)
    for column in slices:
        values = frame[column].astype("string").fillna("<null>").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            if mask.sum() >= MIN_SLICE_ROWS and len(np.unique(y[mask])) == 2:
                out[f"roc_auc.{column}.{value}"] = float(roc_auc_score(y[mask], p[mask]))
    return out
