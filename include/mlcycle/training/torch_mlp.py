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
  raises `NonFiniteTrainingError` (a `FloatingPointError`) naming the epoch and batch.
- **Observable.** `history_` holds per-epoch train loss, validation loss, validation ROC AUC and
  seconds, for per-epoch MLflow curves.
- **CPU first.** `device="auto"` uses CUDA only when `use_gpu=True` *and* a GPU is present; an explicit
  `device="cuda"` without a GPU falls back to CPU with a warning. The fitted network lives on the CPU
  (picklable, portable); `device_` records where it was trained.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
CHECKPOINT_PREFIX = "torchmlp-"
# Params that do not change what is learned: excluded from the checkpoint fingerprint.
_NOT_FINGERPRINTED = ("checkpoint_dir", "verbose")  # cpu_threads stays: it may change the floats
_PREDICT_CHUNK = 65_536

EpochCallback = Callable[[int, dict[str, float]], None]


class NonFiniteTrainingError(FloatingPointError):
    """The loss or the gradients became NaN/inf; the message names the epoch and the batch."""


def resolve_device(device: str = "auto", use_gpu: bool = False) -> torch.device:
    """`auto` -> CUDA when `use_gpu` and a GPU is present, else CPU; an unavailable CUDA falls back to CPU."""
    if device == "auto":
        return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    wanted = torch.device(device)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device={device!r} asked for but CUDA is not available: training on CPU", stacklevel=3)
        return torch.device("cpu")
    if wanted.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu' or 'cuda[:N]'")
    return wanted


def hidden_widths(hidden_sizes: Sequence[int] | str | int) -> tuple[int, ...]:
    """(64, 32) from (64, 32), [64, 32], 64 or "64,32" (usecase.yaml params are scalars)."""
    if isinstance(hidden_sizes, str):
        parts = [p for p in hidden_sizes.replace("x", ",").split(",") if p.strip()]
        try:
            widths = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"hidden_sizes={hidden_sizes!r}: expected comma-separated widths, e.g. '64,32'") from None
    elif isinstance(hidden_sizes, int):
        widths = (hidden_sizes,)
    else:
        widths = tuple(int(s) for s in hidden_sizes)
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"hidden_sizes={hidden_sizes!r}: need at least one positive width")
    return widths


def build_network(n_features: int, hidden_sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout per hidden layer, then one logit."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


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


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for a block and restore it after (None: leave it alone)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic CUDA kernels for the duration of a fit; the process-wide setting is restored after.

    The CPU kernels this model uses (linear, ReLU, dropout, BCE, AdamW) are deterministic already, and
    switching the flag imports torch's compiler stack (~2 s), so it is only switched for CUDA.
    """
    if device.type != "cuda":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_states(device: torch.device) -> dict[str, Any]:
    # Plain lists/tensors only, so checkpoints load with torch.load(weights_only=True).
    np_state: Any = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_rng_states(states: dict[str, Any], device: torch.device) -> None:
    python_state = states["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def _atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target: never a torn file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by `TorchMLPClassifier.fit` (tensors, lists and numbers only)."""
    payload: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=True)
    return payload


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

    # ------------------------------------------------------------------ helpers
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

    def _encode_target(self, y: Any, *, what: str = "y") -> np.ndarray:
        values = np.asarray(y)
        if values.ndim != 1:
            values = values.reshape(-1)
        unknown = ~np.isin(values, self.classes_)
        if unknown.any():
            raise ValueError(f"{what} has labels {np.unique(values[unknown])[:5].tolist()} not seen in training")
        return np.searchsorted(self.classes_, values).astype(np.float32)

    def _fingerprint(self, arrays: Sequence[np.ndarray], device: torch.device) -> str:
        digest = hashlib.blake2b(digest_size=16)
        params = {k: v for k, v in self.get_params().items() if k not in _NOT_FINGERPRINTED}
        params["hidden_sizes"] = list(hidden_widths(self.hidden_sizes))
        meta = {"params": params, "device": device.type, "torch": torch.__version__, "format": CHECKPOINT_FORMAT}
        digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
        for array in arrays:
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def _evaluate(self, module: nn.Module, X: torch.Tensor, y: np.ndarray) -> tuple[float, float]:
        logits = self._logits(module, X)
        target = torch.from_numpy(y)
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, target).item())
        auc = float(roc_auc_score(y, logits.numpy())) if len(np.unique(y)) == 2 else float("nan")
        return loss, auc

    @staticmethod
    def _logits(module: nn.Module, X: torch.Tensor) -> torch.Tensor:
        """Logits on the CPU, computed in chunks on the module's device."""
        device = next(module.parameters()).device
        module.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                chunk = X[start : start + _PREDICT_CHUNK].to(device, non_blocking=True)
                outputs.append(module(chunk).squeeze(1).float().cpu())
        return torch.cat(outputs) if outputs else torch.empty(0)

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
        X_all = as_float_matrix(X)
        y_raw = np.asarray(y).reshape(-1)
        if len(y_raw) != X_all.shape[0]:
            raise ValueError(f"X has {X_all.shape[0]} rows but y has {len(y_raw)}")
        if y_raw.dtype.kind == "f" and not np.isfinite(y_raw).all():
            raise ValueError("y has non-finite values")
        self.classes_ = np.unique(y_raw)
        if len(self.classes_) != 2:
            raise ValueError(f"TorchMLPClassifier is binary: y has {len(self.classes_)} class(es) {self.classes_[:5]}")
        y_all = self._encode_target(y_raw)
        self.n_features_in_ = X_all.shape[1]

        device = resolve_device(self.device, self.use_gpu)
        if device.type == "cuda":
            # cuBLAS needs this for deterministic results (read when its handle is created).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

        if eval_set is not None:
            train_rows: np.ndarray | None = None  # all of X
            eval_X = as_float_matrix(eval_set[0], what="eval_set X")
            if eval_X.shape[1] != self.n_features_in_:
                raise ValueError(f"eval_set X has {eval_X.shape[1]} features, X has {self.n_features_in_}")
            X_valid: np.ndarray | None = eval_X
            y_valid: np.ndarray | None = self._encode_target(eval_set[1], what="eval_set y")
        elif self.validation_fraction > 0 and X_all.shape[0] >= 20:
            order = np.random.default_rng(self.seed).permutation(X_all.shape[0])
            n_valid = max(1, round(self.validation_fraction * X_all.shape[0]))
            valid_idx, train_idx = np.sort(order[:n_valid]), np.sort(order[n_valid:])
            # Training batches gather from X itself through `train_rows` (no copy of the big matrix).
            train_rows = train_idx
            X_valid, y_valid = X_all[valid_idx], y_all[valid_idx]
        else:
            train_rows, X_valid, y_valid = None, None, None

        checkpoint: Path | None = None
        if self.checkpoint_dir:
            # The held-out split is a function of the params (seed, validation_fraction): X, y and the
            # eval set identify the data.
            arrays: list[np.ndarray] = [X_all, y_all]
            if eval_set is not None and X_valid is not None and y_valid is not None:
                arrays += [X_valid, y_valid]
            self.fingerprint_ = self._fingerprint(arrays, device)
            folder = Path(self.checkpoint_dir)
            folder.mkdir(parents=True, exist_ok=True)
            checkpoint = folder / f"{CHECKPOINT_PREFIX}{self.fingerprint_}.pt"

        with _deterministic(device), _torch_threads(self.cpu_threads):
            self._train(X_all, y_all, train_rows, X_valid, y_valid, device, checkpoint, epoch_callback)
        return self

    def _train(
        self,
        X_all: np.ndarray,
        y_all: np.ndarray,
        train_rows: np.ndarray | None,
        X_valid: np.ndarray | None,
        y_valid: np.ndarray | None,
        device: torch.device,
        checkpoint: Path | None,
        epoch_callback: EpochCallback | None,
    ) -> None:
        _seed_everything(self.seed)
        module = build_network(self.n_features_in_, hidden_widths(self.hidden_sizes), self.dropout).to(device)
        optimizer = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        shuffle = torch.Generator(device="cpu").manual_seed(self.seed)
        loss_fn = nn.BCEWithLogitsLoss()
        # The whole (small, preprocessed) training set goes to the device once; batches are index gathers.
        # On CPU `from_numpy` shares X's memory; on CUDA X is copied to the GPU once.
        X_dev = torch.from_numpy(X_all).to(device)
        y_dev = torch.from_numpy(y_all).to(device)
        rows = torch.from_numpy(train_rows).to(device) if train_rows is not None else None
        X_valid_t = torch.from_numpy(X_valid) if X_valid is not None else None
        n_rows = len(train_rows) if train_rows is not None else X_all.shape[0]
        clip = float(self.max_grad_norm) if self.max_grad_norm else math.inf

        start_epoch, history = 0, []
        best_loss, best_epoch, best_state, bad_epochs, finished = math.inf, 0, None, 0, False
        self.resumed_from_epoch_: int | None = None
        if checkpoint is not None and checkpoint.exists():
            saved = read_checkpoint(checkpoint)
            if saved.get("format") == CHECKPOINT_FORMAT and saved.get("fingerprint") == self.fingerprint_:
                module.load_state_dict(saved["model"])
                optimizer.load_state_dict(saved["optimizer"])
                shuffle.set_state(saved["rng"]["shuffle"])
                _restore_rng_states(saved["rng"], device)
                start_epoch, history = int(saved["epoch"]), list(saved["history"])
                best_loss, best_epoch = float(saved["best_loss"]), int(saved["best_epoch"])
                best_state, bad_epochs = saved["best_state"], int(saved["bad_epochs"])
                finished = bool(saved["finished"])
                self.resumed_from_epoch_ = start_epoch
                log.info("resuming from %s after epoch %d", checkpoint, start_epoch)

        epoch = start_epoch
        while not finished and epoch < self.epochs:
            epoch += 1
            started = time.perf_counter()
            module.train()
            order = torch.randperm(n_rows, generator=shuffle).to(device)
            if rows is not None:
                order = rows[order]
            total = torch.zeros((), device=device, dtype=torch.float64)
            for batch, begin in enumerate(range(0, n_rows, self.batch_size), start=1):
                idx = order[begin : begin + self.batch_size]
                logits = module(X_dev[idx]).squeeze(1)
                loss = loss_fn(logits, y_dev[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
                # One host sync per batch: a bad step must stop training before it touches the weights.
                if not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):
                    value, what = float(loss.detach()), "loss"
                    if math.isfinite(value):
                        value, what = float(grad_norm), "gradient norm"
                    raise NonFiniteTrainingError(
                        f"non-finite {what} ({value}) at epoch {epoch} batch {batch}: "
                        "lower lr, check the input scaling, or set max_grad_norm"
                    )
                optimizer.step()
                total += loss.detach().double() * len(idx)
            train_loss = float(total.item()) / n_rows

            valid_loss, valid_auc = float("nan"), float("nan")
            if X_valid_t is not None and y_valid is not None:
                valid_loss, valid_auc = self._evaluate(module, X_valid_t, y_valid)
                if not math.isfinite(valid_loss):
                    raise NonFiniteTrainingError(f"non-finite validation loss at epoch {epoch}")
            record = {
                "epoch": float(epoch),
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "valid_auc": valid_auc,
                "seconds": time.perf_counter() - started,
            }
            history.append(record)

            if X_valid_t is None:  # nothing to select on: the last epoch's weights are the model
                best_loss, best_epoch = train_loss, epoch
            elif valid_loss < best_loss:
                best_loss, best_epoch, bad_epochs = valid_loss, epoch, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            else:
                bad_epochs += 1
            early_stop = X_valid_t is not None and self.patience is not None and bad_epochs >= self.patience
            finished = early_stop or epoch >= self.epochs
            if self.verbose:
                log.info(
                    "epoch %d/%d train_loss=%.5f valid_loss=%.5f valid_auc=%.4f %.2fs",
                    epoch,
                    self.epochs,
                    train_loss,
                    valid_loss,
                    valid_auc,
                    record["seconds"],
                )
            if checkpoint is not None:
                _atomic_save(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "fingerprint": self.fingerprint_,
                        "epoch": epoch,
                        "model": module.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "rng": {**_rng_states(device), "shuffle": shuffle.get_state()},
                        "history": history,
                        "best_loss": best_loss,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "bad_epochs": bad_epochs,
                        "finished": finished,
                    },
                    checkpoint,
                )
            if epoch_callback is not None:
                epoch_callback(epoch, record)

        # Keep the best validation epoch's weights (the last epoch's when there is no validation set).
        module = module.to("cpu")
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        self.module_ = module
        self.device_ = str(device)
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.n_epochs_ = len(history)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 2) probabilities, columns in `classes_` order (like sklearn's predict_proba)."""
        check_is_fitted(self, "module_")
        matrix = as_float_matrix(X)
        if matrix.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {matrix.shape[1]} features, the model was fitted with {self.n_features_in_}")
        with _torch_threads(getattr(self, "cpu_threads", None)):
            logits = self._logits(self.module_, torch.from_numpy(matrix))
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
