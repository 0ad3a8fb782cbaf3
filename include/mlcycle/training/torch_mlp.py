"""A PyTorch MLP binary classifier with the scikit-learn estimator interface.

`TorchMLPClassifier` takes the numeric matrix a sklearn preprocessor produces (one-hot + impute +
scale), so it is the last step of the same `Pipeline` as the sklearn models::

    Pipeline([("preprocess", column_transformer), ("model", TorchMLPClassifier(seed=42))])

`fit_pipeline(pipeline, X, y, X_valid, y_valid)` fits such a pipeline with the use case's validation
split (preprocessed by the fitted preprocessor) as the model's early-stopping `eval_set`.

What it adds over a plain training loop:

- **Reproducible.** `seed` fixes weight init, dropout, shuffling and the validation split; Python's
  `random`, NumPy's and torch's global generators are seeded too, and deterministic algorithms are
  switched on for the duration of `fit`. Same data + same params -> identical predictions on CPU.
- **Resumable.** With `checkpoint_dir`, every epoch writes model, optimizer, RNG states, early-stopping
  state and history atomically (temp file + `os.replace`). A later `fit` on the same data with the same
  params (a retried Airflow task) resumes after the last completed epoch and ends where an
  uninterrupted run would have ended; `resumed_from_epoch_` says from where (None: fresh start).
- **Loud on numerical trouble.** Non-finite inputs raise `ValueError`; a non-finite loss or gradient
  raises `NonFiniteTrainingError` (a `FloatingPointError`) naming the epoch and batch. The bad step is
  skipped on the device and the check runs once per epoch (no host sync per batch), before the epoch
  is validated or checkpointed.
- **Observable.** `history_` holds per-epoch train loss, validation loss, validation ROC AUC and
  seconds, for per-epoch MLflow curves.
- **CPU first.** `device="auto"` uses CUDA only when `use_gpu=True` *and* a GPU is present; an explicit
  `device="cuda"` without a GPU falls back to CPU with a warning. The fitted network lives on the CPU
  (picklable, portable); `device_` records where it was trained.

The parts, each in its own module: the network (`torch_network`), the input arrays (`torch_data`), the
training loop with early stopping and NaN guards (`torch_loop`), its checkpoints (`torch_checkpoint`) and
the process-wide torch settings (`torch_runtime`). This module is the sklearn-compatible shell around them.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from mlcycle.training.torch_checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_PREFIX, fingerprint
from mlcycle.training.torch_data import FitData, as_float_matrix, prepare_fit_data
from mlcycle.training.torch_loop import EpochCallback, LoopSettings, train_network
from mlcycle.training.torch_network import build_network, hidden_widths, network_logits
from mlcycle.training.torch_runtime import deterministic, resolve_device, torch_threads

__all__ = ["TorchMLPClassifier", "fit_pipeline"]

# Params that do not change what is learned: excluded from the checkpoint fingerprint.
_NOT_FINGERPRINTED = ("checkpoint_dir", "verbose")  # cpu_threads stays: it may change the floats


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary MLP classifier (PyTorch) with the scikit-learn interface; see the module docstring.

    Parameters
    ----------
    hidden_sizes: widths of the hidden layers: a sequence, or a string like "64,32" (for usecase.yaml).
    dropout: dropout probability after each hidden layer.
    epochs: maximum number of passes over the training data.
    batch_size, lr, weight_decay: mini-batch AdamW settings.
    seed: fixes every source of randomness.
    device: "auto" (CUDA if `use_gpu` and available, else CPU), "cpu" or "cuda[:N]".
    use_gpu: allow "auto" to pick CUDA (the use case asks for a GPU).
    checkpoint_dir: folder for per-epoch checkpoints; a later fit on the same data and params resumes.
    patience: stop after this many epochs without validation-loss improvement (None: never stop early);
        the weights of the best epoch are kept.
    validation_fraction: share of the training rows held out for early stopping when `fit` gets no
        `eval_set` (0: none held out, then no early stopping and no validation curves).
    max_grad_norm: clip the gradients' global norm to this (None: no clipping; still checked for NaN/inf).
    cpu_threads: torch intra-op threads while fitting/predicting (None: torch's default, one per core).
        This network's matrices are tiny: threads buy nothing, and OpenMP's spin-waiting made epochs up to
        80x slower on a busy 2-core machine, so the default is 1. It also makes results independent of the
        machine's core count.
    verbose: log one line per epoch.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] | str = (64, 32),
        dropout: float = 0.1,
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        seed: int = 42,
        device: str = "auto",
        use_gpu: bool = False,
        checkpoint_dir: str | None = None,
        patience: int | None = 5,
        validation_fraction: float = 0.1,
        max_grad_norm: float | None = 5.0,
        cpu_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.use_gpu = use_gpu
        self.checkpoint_dir = checkpoint_dir
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_grad_norm = max_grad_norm
        self.cpu_threads = cpu_threads
        self.verbose = verbose

    def _check_params(self) -> None:
        hidden_widths(self.hidden_sizes)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r} must be in [0, 1)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr!r} must be a positive finite number")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction!r} must be in [0, 1)")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience={self.patience!r} must be >= 1 or None")

    def _loop_settings(self) -> LoopSettings:
        return LoopSettings(
            hidden_sizes=hidden_widths(self.hidden_sizes),
            dropout=self.dropout,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
            patience=self.patience,
            max_grad_norm=self.max_grad_norm,
            verbose=self.verbose,
        )

    def _checkpoint_path(self, data: FitData, device: torch.device) -> Path | None:
        """Where this fit's checkpoint lives (None without ``checkpoint_dir``); sets ``fingerprint_``."""
        if not self.checkpoint_dir:
            return None
        params = {k: v for k, v in self.get_params().items() if k not in _NOT_FINGERPRINTED}
        params["hidden_sizes"] = list(hidden_widths(self.hidden_sizes))
        meta = {"params": params, "device": device.type, "torch": torch.__version__, "format": CHECKPOINT_FORMAT}
        self.fingerprint_ = fingerprint(meta, data.identity())
        folder = Path(self.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{CHECKPOINT_PREFIX}{self.fingerprint_}.pt"

    # ------------------------------------------------------------------ sklearn API
    def fit(
        self,
        X: Any,
        y: Any,
        eval_set: tuple[Any, Any] | None = None,
        epoch_callback: EpochCallback | None = None,
    ) -> TorchMLPClassifier:
        """Train; `eval_set=(X_valid, y_valid)` (already preprocessed) replaces the held-out fraction.

        `epoch_callback(epoch, record)` is called after each epoch's checkpoint is written (epochs count
        from 1; `record` is that epoch's `history_` entry).
        """
        self._check_params()
        data = prepare_fit_data(X, y, eval_set, validation_fraction=self.validation_fraction, seed=self.seed)
        self.classes_ = data.classes
        self.n_features_in_ = data.n_features
        device = resolve_device(self.device, self.use_gpu)
        checkpoint = self._checkpoint_path(data, device)
        with deterministic(device), torch_threads(self.cpu_threads):
            trained = train_network(
                data,
                self._loop_settings(),
                device,
                checkpoint=checkpoint,
                fingerprint=self.fingerprint_ if checkpoint is not None else None,
                epoch_callback=epoch_callback,
            )
        self.module_ = trained.module
        self.device_ = str(device)
        self.history_ = trained.history
        self.best_epoch_ = trained.best_epoch
        self.n_epochs_ = len(trained.history)
        self.resumed_from_epoch_: int | None = trained.resumed_from_epoch
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 2) probabilities, columns in `classes_` order (like sklearn's predict_proba)."""
        check_is_fitted(self, "module_")
        matrix = as_float_matrix(X)
        if matrix.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {matrix.shape[1]} features, the model was fitted with {self.n_features_in_}")
        with torch_threads(getattr(self, "cpu_threads", None)):
            logits = network_logits(self.module_, torch.from_numpy(matrix))
        positive = torch.sigmoid(logits).numpy().astype(np.float64)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        result: np.ndarray = self.classes_[(proba[:, 1] >= 0.5).astype(int)]
        return result

    # ------------------------------------------------------------------ export (for the MLflow pyfunc)
    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write `torch_mlp.json` (architecture, params, classes) and `state_dict.pt` into `folder`."""
        check_is_fitted(self, "module_")
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if k != "checkpoint_dir"}
        params["hidden_sizes"] = list(hidden_widths(self.hidden_sizes))
        meta = {
            "format": CHECKPOINT_FORMAT,
            "params": params,
            "classes": self.classes_.tolist(),
            "n_features_in": int(self.n_features_in_),
            "device_trained": self.device_,
            "best_epoch": int(self.best_epoch_),
            "history": self.history_,
        }
        (target / "torch_mlp.json").write_text(json.dumps(meta, indent=2, default=str))
        torch.save({k: v.cpu() for k, v in self.module_.state_dict().items()}, target / "state_dict.pt")

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: str = "auto") -> TorchMLPClassifier:
        """Rebuild a fitted model saved by `save`; on CUDA when `device="auto"` and a GPU is present."""
        source = Path(folder)
        meta = json.loads((source / "torch_mlp.json").read_text())
        params = dict(meta["params"])
        params["hidden_sizes"] = tuple(params["hidden_sizes"])
        model = cls(**params)
        state = torch.load(source / "state_dict.pt", map_location="cpu", weights_only=True)
        module = build_network(meta["n_features_in"], hidden_widths(model.hidden_sizes), model.dropout)
        module.load_state_dict(state)
        target = resolve_device(device, use_gpu=True)
        model.module_ = module.to(target).eval()
        model.classes_ = np.asarray(meta["classes"])
        model.n_features_in_ = int(meta["n_features_in"])
        model.device_ = str(meta.get("device_trained", "cpu"))
        model.best_epoch_ = int(meta.get("best_epoch", 0))
        model.history_ = list(meta.get("history", []))
        model.n_epochs_ = len(model.history_)
        model.resumed_from_epoch_ = None
        return model


def fit_pipeline(
    pipeline: Pipeline,
    X: Any,
    y: Any,
    X_valid: Any = None,
    y_valid: Any = None,
    **fit_params: Any,
) -> Pipeline:
    """Fit a preprocessing + `TorchMLPClassifier` Pipeline, early-stopping on a given validation split.

    The preprocessing steps are fitted on `X` only; `X_valid` goes through them (transform) and becomes
    the model's `eval_set`, so early stopping and the per-epoch validation curves use the use case's own
    validation days instead of a random slice of the training rows. Without `X_valid` this is
    `pipeline.fit(X, y)`. `fit_params` go to `TorchMLPClassifier.fit` (e.g. `epoch_callback`).
    """
    model = pipeline.steps[-1][1]
    if not isinstance(model, TorchMLPClassifier):
        raise TypeError(f"the pipeline's last step is {type(model).__name__}, not TorchMLPClassifier")
    if X_valid is None:
        return pipeline.fit(X, y, **{f"{pipeline.steps[-1][0]}__{k}": v for k, v in fit_params.items()})
    preprocess = pipeline[:-1]  # shares the step objects: fitting it fits the pipeline's steps
    transformed = preprocess.fit_transform(X, y)
    model.fit(transformed, y, eval_set=(preprocess.transform(X_valid), y_valid), **fit_params)
    return pipeline
