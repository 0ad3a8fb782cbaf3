"""Shared fixtures: every test that touches state gets its own MLCYCLE_HOME under tmp_path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle.settings import REPO_ROOT, embedded_environment

USECASES = REPO_ROOT / "include" / "usecases"

# Test support (tests/support, importable as `support` through pytest's `pythonpath`): its shared fixtures.
pytest_plugins = ["support.fixtures"]

# Airflow reads its configuration at import: point it (and MLflow, and the data) at a throw-away home
# before any test imports it, so tests never touch a developer's ~/airflow or the demo's state.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlcycle-tests-"))
os.environ.update(embedded_environment(_SESSION_HOME))


# Tests that must not run beside each other's kind on two workers: the browser folder shares one expensive
# package-scoped stack; the container tests (and the container fault drills) drive the machine-wide podman (pods,
# volumes, secrets, the OOM killer's view of memory), so they run one after another on one worker. The Spark tests
# share one SparkSession (one JVM, started once: tests/spark/conftest.py), so they too stay on one worker.
_GROUPS = {
    "browser": "browser",
    "containers": "containers",
    "test_faults_containers.py": "containers",
    "spark": "spark",
}


def _group(relative: Path) -> str:
    for part in relative.parts:
        if part in _GROUPS:
            return _GROUPS[part]
    return relative.as_posix()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (make test), a module's tests stay on one worker, so module-scoped
    set-ups (an Airflow stack, a trained champion) are built once; the groups above stay together too.
    Runs before xdist reads the groups (tryfirst); without xdist the mark is inert."""
    tests_root = Path(__file__).parent
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.path.relative_to(tests_root))))


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
