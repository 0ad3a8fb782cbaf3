"""The two profiles of a contract and what a validated partition's profile is good for.

Light (no pandas, no GX): the features step reads it to pick its days.

- ``training``: the whole contract, label rules included (the training DAG's gate).
- ``serving``: no rules on the target, which may be absent (the scoring DAG's gate).

A partition validated as training is valid for serving too; one validated as serving only is not
training data.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "SERVING", "TRAINING", "covers", "profile_of"]

TRAINING = "training"
SERVING = "serving"
PROFILES: tuple[str, ...] = (TRAINING, SERVING)


def covers(done: str, wanted: str) -> bool:
    """Whether a partition validated with profile ``done`` is valid for ``wanted``."""
    return done == wanted or done == TRAINING


def profile_of(manifest: dict[str, Any]) -> str:
    """The profile a validated partition passed (manifests from before profiles: the full contract)."""
    return str(manifest.get("profile") or TRAINING)
