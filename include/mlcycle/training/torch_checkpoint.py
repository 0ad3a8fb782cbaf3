"""Per-epoch checkpoints of the torch MLP's training: what identifies them, what they hold, how they are written.

A checkpoint is named after a fingerprint of the params and the data, so a retried fit on the same data
with the same params finds it and resumes; anything else starts fresh. It holds plain tensors, lists and
numbers only, so it loads with ``torch.load(weights_only=True)``.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_PREFIX",
    "atomic_save",
    "fingerprint",
    "read_checkpoint",
    "restore_rng_states",
    "rng_states",
]

CHECKPOINT_FORMAT = 2  # 2: the fused AdamW (its state dict says so; a format-1 run is not resumed)
CHECKPOINT_PREFIX = "torchmlp-"


def fingerprint(meta: Mapping[str, Any], arrays: Sequence[np.ndarray]) -> str:
    """A digest of ``meta`` (params, device type, torch version, format) and the arrays' bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for array in arrays:
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def rng_states(device: torch.device) -> dict[str, Any]:
    """Python's, NumPy's and torch's (CPU, and CUDA on a GPU) generator states."""
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


def restore_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Put back the generator states saved by :func:`rng_states`."""
    python_state = states["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def atomic_save(payload: dict[str, Any], path: Path) -> None:
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
