"""How a step loads a registered model version: verified and in mlcycle's own form, or refused (REJECTED).

A refused model is a security finding, not an outage: retrying cannot help, so the step exits REJECTED (65) and
the task's failure alert names the version and the file (see docs/model-integrity.md).
"""

from __future__ import annotations

from typing import Any

from mlcycle.config import UseCase
from mlcycle.registry.integrity import ArtifactRejected
from mlcycle.steps.base import Rejected
from mlcycle.training.loading import load_model_version


def load_model(usecase: UseCase, version: str | int) -> Any:
    """The version as a pyfunc model; `Rejected` when its artifacts fail verification or are not mlcycle's form."""
    try:
        return load_model_version(usecase, version)
    except ArtifactRejected as exc:
        raise Rejected(f"model artifacts refused: {exc}") from exc
