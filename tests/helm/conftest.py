"""tests/helm: the chart rendered by Helm's own engine (helm-python-sdk), linted, and validated offline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Shared with tests/k8s: the schema / Pod Security checks and the step pods the DAGs build; and this folder's
# rendering helper.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "k8s"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helm_release import VALUE_SETS, Rendered, render
from step_pods import StepPod, build_step_pods


@pytest.fixture(scope="session")
def step_pods() -> tuple[StepPod, ...]:
    return build_step_pods()


@pytest.fixture(scope="session")
def default_release() -> Rendered:
    return render("default")


@pytest.fixture(scope="session", params=VALUE_SETS)
def release(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with each values set of helm/mlcycle/ci (and the defaults)."""
    return render(request.param)
