"""tests/k8s: the pods every DAG would submit, and the task image, checked offline (no cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The shared checks (kube_checks.py, step_pods.py) are plain modules next to this file; tests/helm uses them too.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_pods import StepPod, build_step_pods


@pytest.fixture(scope="session")
def step_pods() -> tuple[StepPod, ...]:
    pods = build_step_pods()
    assert pods, "no KubernetesPodOperator task was built"
    return pods
