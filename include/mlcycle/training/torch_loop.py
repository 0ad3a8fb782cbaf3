"""The torch MLP's training loop: mini-batch AdamW with early stopping, per-epoch checkpoints and NaN guards.

:func:`train_network` is what ``TorchMLPClassifier.fit`` runs once the data is prepared. Every source of
randomness is seeded from ``settings.seed`` in a fixed order (global generators, weight init, the shuffle
generator), so the same data and settings give the same weights on CPU. With a checkpoint path, every
epoch writes the whole loop state (:class:`_Progress`, model, optimizer, generator states); a later run
with the same fingerprint resumes after the last completed epoch and ends where an uninterrupted run ends.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from mlcycle.training.torch_checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    read_checkpoint,
    restore_rng_states,
    rng_states,
)
from mlcycle.training.torch_data import FitData
from mlcycle.training.torch_network import build_network, network_logits
from mlcycle.training.torch_runtime import seed_everything

__all__ = [
    "EpochCallback",
    "LoopSettings",
    "NonFiniteTrainingError",
    "TrainedNetwork",
    "build_optimizer",
    "train_network",
]

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


class NonFiniteTrainingError(FloatingPointError):
    """The loss or the gradients became NaN/inf; the message names the epoch and the batch."""


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs of the estimator's params (see ``TorchMLPClassifier``)."""

    hidden_sizes: tuple[int, ...]
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    patience: int | None
    max_grad_norm: float | None
    verbose: bool


@dataclass(frozen=True)
class TrainedNetwork:
    """The selected weights (on the CPU, in eval mode) and how training went."""

    module: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    resumed_from_epoch: int | None


@dataclass
class _Progress:
    """The loop's state between epochs: what a checkpoint saves and a resume restores."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    finished: bool = False


@dataclass(frozen=True)
class _Tensors:
    """The fit's arrays as tensors: the training set on the device once (batches are index gathers);
    on CPU ``from_numpy`` shares the arrays' memory, on CUDA X and the validation rows are copied to the
    GPU once, not every epoch."""

    X: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor | None
    X_valid: torch.Tensor | None
    y_valid: np.ndarray | None

    @classmethod
    def of(cls, data: FitData, device: torch.device) -> _Tensors:
        return cls(
            X=torch.from_numpy(data.X).to(device),
            y=torch.from_numpy(data.y).to(device),
            rows=torch.from_numpy(data.train_rows).to(device) if data.train_rows is not None else None,
            X_valid=torch.from_numpy(data.X_valid).to(device) if data.X_valid is not None else None,
            y_valid=data.y_valid,
        )


def train_network(
    data: FitData,
    settings: LoopSettings,
    device: torch.device,
    *,
    checkpoint: Path | None = None,
    fingerprint: str | None = None,
    epoch_callback: EpochCallback | None = None,
) -> TrainedNetwork:
    """Train until ``settings.epochs`` or early stopping; keep the best validation epoch's weights.

    ``checkpoint`` (with the data's ``fingerprint``) is written after every epoch and, when it exists with
    the same fingerprint, resumed from. ``epoch_callback(epoch, record)`` runs after each epoch's checkpoint.

    Raises:
        NonFiniteTrainingError: a non-finite loss, gradient norm or validation loss.
    """
    seed_everything(settings.seed)
    module = build_network(data.n_features, settings.hidden_sizes, settings.dropout).to(device)
    optimizer = build_optimizer(module, settings.lr, settings.weight_decay)
    shuffle = torch.Generator(device="cpu").manual_seed(settings.seed)
    tensors = _Tensors.of(data, device)

    progress = _Progress()
    resumed_from: int | None = None
    if checkpoint is not None and checkpoint.exists():
        saved = read_checkpoint(checkpoint)
        if saved.get("format") == CHECKPOINT_FORMAT and saved.get("fingerprint") == fingerprint:
            progress = _resume(saved, module, optimizer, shuffle, device)
            resumed_from = progress.epoch
            log.info("resuming from %s after epoch %d", checkpoint, progress.epoch)

    while not progress.finished and progress.epoch < settings.epochs:
        progress.epoch += 1
        started = time.perf_counter()
        train_loss = _train_epoch(module, optimizer, tensors, shuffle, settings, data.n_train, progress.epoch, device)
        valid_loss, valid_auc = _validate(module, tensors, progress.epoch)
        record = {
            "epoch": float(progress.epoch),
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            "valid_auc": valid_auc,
            "seconds": time.perf_counter() - started,
        }
        progress.history.append(record)
        _select(progress, module, settings, train_loss, valid_loss, has_validation=tensors.X_valid is not None)
        if settings.verbose:
            log.info(
                "epoch %d/%d train_loss=%.5f valid_loss=%.5f valid_auc=%.4f %.2fs",
                progress.epoch,
                settings.epochs,
                train_loss,
                valid_loss,
                valid_auc,
                record["seconds"],
            )
        if checkpoint is not None:
            _save(checkpoint, fingerprint, progress, module, optimizer, shuffle, device)
        if epoch_callback is not None:
            epoch_callback(progress.epoch, record)

    # Keep the best validation epoch's weights (the last epoch's when there is no validation set).
    module = module.to("cpu")
    if progress.best_state is not None:
        module.load_state_dict(progress.best_state)
    module.eval()
    return TrainedNetwork(module, progress.history, progress.best_epoch, resumed_from)


def build_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """The trainer's AdamW: fused, one kernel per step for all the parameters (CPU and CUDA).

    Fused because a step of this small network is dominated by per-operation overhead, not arithmetic
    (~15 % of a CPU epoch at batch 256; on CUDA a dozen kernel launches become one), and because only
    the fused implementation takes ``found_inf``: a non-finite step is skipped on the device, without
    waiting for the device to say so (see ``_train_epoch``).
    """
    return torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def _train_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    tensors: _Tensors,
    shuffle: torch.Generator,
    settings: LoopSettings,
    n_rows: int,
    epoch: int,
    device: torch.device,
) -> float:
    """One pass over the training rows in a seeded order; returns the mean training loss.

    No host sync per batch: a step whose loss or gradient norm is not finite is skipped on the device
    (the fused AdamW's ``found_inf``: weights and optimizer state stay as they were), and the epoch's
    losses and norms are checked once at its end, which raises naming the first bad batch before the
    epoch is validated, selected or checkpointed. On CUDA a per-batch check would stall the queue of
    kernels every step; on the CPU it is just fewer small operations.
    """
    module.train()
    loss_fn = nn.BCEWithLogitsLoss()
    clip = float(settings.max_grad_norm) if settings.max_grad_norm else math.inf
    order = torch.randperm(n_rows, generator=shuffle).to(device)
    if tensors.rows is not None:
        order = tensors.rows[order]
    losses: list[torch.Tensor] = []
    grad_norms: list[torch.Tensor] = []
    for begin in range(0, n_rows, settings.batch_size):
        idx = order[begin : begin + settings.batch_size]
        logits = module(tensors.X[idx]).squeeze(1)
        loss = loss_fn(logits, tensors.y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        loss = loss.detach()
        bad_step = torch.isfinite(loss).logical_and_(torch.isfinite(grad_norm)).logical_not_()
        optimizer.found_inf = bad_step.float()  # type: ignore[attr-defined]
        optimizer.step()
        losses.append(loss)
        grad_norms.append(grad_norm)
    del optimizer.found_inf  # type: ignore[attr-defined]  # a later step (a resumed fit) must not inherit it
    return _epoch_loss(torch.stack(losses), torch.stack(grad_norms), settings.batch_size, n_rows, epoch)


def _epoch_loss(losses: torch.Tensor, grad_norms: torch.Tensor, batch_size: int, n_rows: int, epoch: int) -> float:
    """The epoch's mean training loss (rows-weighted); raises naming the first non-finite batch."""
    finite = torch.isfinite(losses) & torch.isfinite(grad_norms)
    bad = torch.nonzero(~finite).flatten().cpu()  # the epoch's one host sync
    if len(bad):
        first = int(bad[0])
        value, what = float(losses[first]), "loss"
        if math.isfinite(value):
            value, what = float(grad_norms[first]), "gradient norm"
        raise NonFiniteTrainingError(
            f"non-finite {what} ({value}) at epoch {epoch} batch {first + 1}: "
            "lower lr, check the input scaling, or set max_grad_norm"
        )
    rows = torch.full_like(losses, batch_size, dtype=torch.float64)
    rows[-1] = n_rows - batch_size * (len(losses) - 1)  # the last batch may be short
    return float((losses.double() * rows).sum()) / n_rows


def _validate(module: nn.Module, tensors: _Tensors, epoch: int) -> tuple[float, float]:
    """(validation loss, validation ROC AUC); NaN for both without validation rows."""
    if tensors.X_valid is None or tensors.y_valid is None:
        return float("nan"), float("nan")
    logits = network_logits(module, tensors.X_valid)
    target = torch.from_numpy(tensors.y_valid)
    loss = float(nn.functional.binary_cross_entropy_with_logits(logits, target).item())
    y = tensors.y_valid
    auc = float(roc_auc_score(y, logits.numpy())) if len(np.unique(y)) == 2 else float("nan")
    if not math.isfinite(loss):
        raise NonFiniteTrainingError(f"non-finite validation loss at epoch {epoch}")
    return loss, auc


def _select(
    progress: _Progress,
    module: nn.Module,
    settings: LoopSettings,
    train_loss: float,
    valid_loss: float,
    *,
    has_validation: bool,
) -> None:
    """Early stopping: remember the best epoch's weights and decide whether training is finished."""
    if not has_validation:  # nothing to select on: the last epoch's weights are the model
        progress.best_loss, progress.best_epoch = train_loss, progress.epoch
    elif valid_loss < progress.best_loss:
        progress.best_loss, progress.best_epoch, progress.bad_epochs = valid_loss, progress.epoch, 0
        progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    else:
        progress.bad_epochs += 1
    early_stop = has_validation and settings.patience is not None and progress.bad_epochs >= settings.patience
    progress.finished = early_stop or progress.epoch >= settings.epochs


def _resume(
    saved: dict[str, Any],
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    device: torch.device,
) -> _Progress:
    """Load model, optimizer and generator states from a checkpoint; return the loop state it saved."""
    module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    shuffle.set_state(saved["rng"]["shuffle"])
    restore_rng_states(saved["rng"], device)
    return _Progress(
        epoch=int(saved["epoch"]),
        history=list(saved["history"]),
        best_loss=float(saved["best_loss"]),
        best_epoch=int(saved["best_epoch"]),
        best_state=saved["best_state"],
        bad_epochs=int(saved["bad_epochs"]),
        finished=bool(saved["finished"]),
    )


def _save(
    checkpoint: Path,
    fingerprint: str | None,
    progress: _Progress,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    device: torch.device,
) -> None:
    atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "epoch": progress.epoch,
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {**rng_states(device), "shuffle": shuffle.get_state()},
            "history": progress.history,
            "best_loss": progress.best_loss,
            "best_epoch": progress.best_epoch,
            "best_state": progress.best_state,
            "bad_epochs": progress.bad_epochs,
            "finished": progress.finished,
        },
        checkpoint,
    )
