"""The pytest plugin of tests/support (tests/conftest.py loads it): fixtures shared by several test folders.

Imports stay inside the fixtures: this module loads in every test session, and building step pods imports
Airflow, the Kubernetes provider and the OpenAPI schemas.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

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


class StdoutCapture:
    """What `support.cli.run` needs of capsys (`readouterr`), for module-scoped fixtures: capsys is per test,
    and a scenario's expensive set-up (training, promotion) is built once per module."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def readouterr(self) -> Any:
        out = self.stream.getvalue()
        self.stream.seek(0)
        self.stream.truncate()
        return types.SimpleNamespace(out=out, err="")


@contextlib.contextmanager
def _capture_stdout() -> Iterator[StdoutCapture]:
    captured = StdoutCapture()
    with contextlib.redirect_stdout(captured.stream):
        yield captured


@pytest.fixture(scope="session")
def capture_stdout() -> Callable[[], AbstractContextManager[StdoutCapture]]:
    """`with capture_stdout() as out: step(out, ...)` in a fixture of any scope."""
    return _capture_stdout


@pytest.fixture(autouse=True, scope="module")
def _no_active_mlflow_experiment_leaks() -> Iterator[None]:
    """Steps run in-process call `mlflow.set_experiment`, which sets a process global and MLFLOW_EXPERIMENT_ID in
    os.environ (inherited by every later subprocess): neither may follow a module to another module's store."""
    before = os.environ.get("MLFLOW_EXPERIMENT_ID")
    yield
    if before is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = before
    fluent = sys.modules.get("mlflow.tracking.fluent")  # never imported here: only reset if a test did
    if fluent is not None:
        fluent._active_experiment_id = None
