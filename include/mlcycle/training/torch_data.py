"""The arrays a torch MLP fit works on: dense float32 features, 0/1 targets and the validation rows.

numpy only: the tensors are made from these arrays by the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FitData", "as_float_matrix", "encode_target", "prepare_fit_data"]

# Below this many rows no validation rows are held out: early stopping would judge on a handful.
_MIN_ROWS_TO_HOLD_OUT = 20


def as_float_matrix(X: Any, *, what: str = "X") -> np.ndarray:
    """A dense, C-contiguous float32 matrix; non-finite values (NaN, inf, overflow) raise ValueError."""
    if hasattr(X, "toarray"):  # scipy sparse (OneHotEncoder output below ColumnTransformer's sparse_threshold)
        X = X.toarray()
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf: reported just below
            matrix = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric (put a preprocessor before TorchMLPClassifier): {exc}") from exc
    if matrix.ndim != 2:
        raise ValueError(f"{what} must be 2-dimensional, got shape {matrix.shape}")
    finite = np.isfinite(matrix)
    if not finite.all():
        bad_rows, bad_cols = np.nonzero(~finite)
        columns = sorted({int(c) for c in bad_cols})[:10]
        raise ValueError(
            f"{what} has {len(bad_rows)} non-finite value(s) (NaN, inf, or beyond float32 range) in column(s) "
            f"{columns}{' ...' if len(set(bad_cols.tolist())) > 10 else ''}: impute and scale before the model"
        )
    return matrix


def encode_target(y: Any, classes: np.ndarray, *, what: str = "y") -> np.ndarray:
    """``y`` as float32 class indices into ``classes`` (0/1); an unseen label raises ValueError."""
    values = np.asarray(y)
    if values.ndim != 1:
        values = values.reshape(-1)
    unknown = ~np.isin(values, classes)
    if unknown.any():
        raise ValueError(f"{what} has labels {np.unique(values[unknown])[:5].tolist()} not seen in training")
    return np.searchsorted(classes, values).astype(np.float32)


@dataclass(frozen=True)
class FitData:
    """What one fit trains and selects on.

    ``train_rows`` indexes the rows of ``X`` trained on (None: all of them); training batches gather from
    ``X`` itself through it, so the big matrix is never copied. ``X_valid`` / ``y_valid`` are the rows
    early stopping and the validation curves use (None: there are none).
    """

    classes: np.ndarray
    X: np.ndarray
    y: np.ndarray
    train_rows: np.ndarray | None
    X_valid: np.ndarray | None
    y_valid: np.ndarray | None
    given_eval_set: bool

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_train(self) -> int:
        return len(self.train_rows) if self.train_rows is not None else int(self.X.shape[0])

    def identity(self) -> list[np.ndarray]:
        """The arrays that identify this data for a checkpoint: a held-out split is a function of the
        params (seed, validation_fraction), so only a given eval set adds to X and y."""
        arrays = [self.X, self.y]
        if self.given_eval_set and self.X_valid is not None and self.y_valid is not None:
            arrays += [self.X_valid, self.y_valid]
        return arrays


def prepare_fit_data(
    X: Any, y: Any, eval_set: tuple[Any, Any] | None, *, validation_fraction: float, seed: int
) -> FitData:
    """Check and convert the inputs of a binary fit and choose its validation rows.

    ``eval_set=(X_valid, y_valid)`` (already preprocessed) is used as given; without it a seeded
    ``validation_fraction`` of the rows is held out (none when it is 0 or there are fewer than 20 rows).

    Raises:
        ValueError: non-numeric or non-finite features, X and y of different lengths, non-finite or
            non-binary y, an eval set of another width or with labels not in y.
    """
    X_all = as_float_matrix(X)
    y_raw = np.asarray(y).reshape(-1)
    if len(y_raw) != X_all.shape[0]:
        raise ValueError(f"X has {X_all.shape[0]} rows but y has {len(y_raw)}")
    if y_raw.dtype.kind == "f" and not np.isfinite(y_raw).all():
        raise ValueError("y has non-finite values")
    classes = np.unique(y_raw)
    if len(classes) != 2:
        raise ValueError(f"TorchMLPClassifier is binary: y has {len(classes)} class(es) {classes[:5]}")
    y_all = encode_target(y_raw, classes)

    if eval_set is not None:
        X_valid = as_float_matrix(eval_set[0], what="eval_set X")
        if X_valid.shape[1] != X_all.shape[1]:
            raise ValueError(f"eval_set X has {X_valid.shape[1]} features, X has {X_all.shape[1]}")
        y_valid = encode_target(eval_set[1], classes, what="eval_set y")
        return FitData(classes, X_all, y_all, None, X_valid, y_valid, given_eval_set=True)
    if validation_fraction > 0 and X_all.shape[0] >= _MIN_ROWS_TO_HOLD_OUT:
        order = np.random.default_rng(seed).permutation(X_all.shape[0])
        n_valid = max(1, round(validation_fraction * X_all.shape[0]))
        valid_idx, train_idx = np.sort(order[:n_valid]), np.sort(order[n_valid:])
        return FitData(classes, X_all, y_all, train_idx, X_all[valid_idx], y_all[valid_idx], given_eval_set=False)
    return FitData(classes, X_all, y_all, None, None, None, given_eval_set=False)
