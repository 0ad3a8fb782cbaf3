"""The pytest plugin of tests/support (tests/conftest.py loads it): fixtures shared by several test folders.

Imports stay inside the fixtures: this module loads in every test session, and building step pods imports
Airflow, the Kubernetes provider and the OpenAPI schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.step_pods import StepPod


@pytest.fixture(scope="session")
def step_pods() -> tuple[StepPod, ...]:
    """Every KubernetesPodOperator pod of every DAG (tests/k8s checks them, tests/helm against the chart)."""
    from support.step_pods import build_step_pods

    pods = build_step_pods()
    assert pods, "no KubernetesPodOperator task was built"
    return pods
