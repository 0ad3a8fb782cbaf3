"""The torch MLP's network: its layers, its width parameter and chunked inference.

torch is imported by this module: import it only from code that trains or serves a torch model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["build_network", "hidden_widths", "network_logits"]

# Rows per forward pass at inference: bounds the activations' memory on large scoring batches.
_PREDICT_CHUNK = 65_536


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


def network_logits(module: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Logits on the CPU, computed in chunks on the module's device (the module is put in eval mode)."""
    device = next(module.parameters()).device
    module.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            chunk = X[start : start + _PREDICT_CHUNK].to(device, non_blocking=True)
            outputs.append(module(chunk).squeeze(1).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)
