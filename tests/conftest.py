"""Shared fixtures: every test that touches state gets its own MLCYCLE_HOME under tmp_path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.settings import REPO_ROOT, embedded_environment
from support.xdist_groups import make_scheduler

USECASES = REPO_ROOT / "include" / "usecases"

# Test support (tests/support, importable as `support` through pytest's `pythonpath`): its shared fixtures.
pytest_plugins = ["support.fixtures"]

# Airflow reads its configuration at import: point it (and MLflow, and the data) at a throw-away home
# before any test imports it, so tests never touch a developer's ~/airflow or the demo's state.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlcycle-tests-"))
os.environ.update(embedded_environment(_SESSION_HOME))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `make test` (`-n N --dist loadgroup`), a module's tests, and the groups of support.xdist_groups, stay
    on one worker: module-scoped set-ups are built once and machine-wide resources are not raced for."""
    return make_scheduler(config, log, Path(__file__).parent)


@pytest.fixture
def mlcycle_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The embedded-default environment rooted in a fresh temporary folder (also for subprocesses)."""
    env = embedded_environment(tmp_path / "mlcycle")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {**os.environ, **env}


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """One embedded-default environment shared by the tests of a module (for step-by-step scenarios)."""
    mp = pytest.MonkeyPatch()
    values = embedded_environment(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    for key, value in values.items():
        mp.setenv(key, value)
    yield values
    mp.undo()
