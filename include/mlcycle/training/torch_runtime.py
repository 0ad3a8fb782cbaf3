"""Process-wide torch settings around a fit or a prediction: device, threads, determinism, seeds.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["deterministic", "resolve_device", "seed_everything", "torch_threads"]


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


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
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
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic CUDA kernels for the duration of a fit; the process-wide setting is restored after.

    The CPU kernels this model uses (linear, ReLU, dropout, BCE, AdamW) are deterministic already, and
    switching the flag imports torch's compiler stack (~2 s), so it is only switched for CUDA.
    """
    if device.type != "cuda":
        yield
        return
    # cuBLAS needs this for deterministic results (read when its handle is created).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch's seeds every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
