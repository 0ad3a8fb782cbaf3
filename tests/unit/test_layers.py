"""The import-linter contracts of pyproject.toml hold on the package, and do catch an inverted import.

The second half proves the contracts are not vacuous: on a copy of the package with one deliberately
wrong import added, `lint-imports` fails and names that import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(config_dir: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts of `config_dir/pyproject.toml` on the `mlcycle` found under `package_parent`."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}  # before site-packages: the copy wins over the install
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(config_dir / "pyproject.toml")],
        cwd=config_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of pyproject.toml and of include/mlcycle under `tmp_path/include`, to break on purpose."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        REPO / "include" / "mlcycle", tmp_path / "include" / "mlcycle", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_the_package_keeps_every_contract() -> None:
    result = lint_imports(REPO, REPO / "include")
    assert result.returncode == 0, result.stdout + result.stderr
    declared = len(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
    assert f"Contracts: {declared} kept, 0 broken." in result.stdout, result.stdout


def test_an_upward_import_breaks_the_layers_contract(package_copy: Path) -> None:
    inverted = package_copy / "include" / "mlcycle" / "registry" / "inverted.py"
    inverted.write_text('"""A registry module reaching up into the step layer."""\n\nfrom mlcycle.steps import base\n')
    result = lint_imports(package_copy, package_copy / "include")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mlcycle layers: each module imports only from the layers below it BROKEN" in result.stdout, result.stdout
    assert "mlcycle.registry.inverted -> mlcycle.steps.base (l.3)" in result.stdout, result.stdout
    assert "DAG parsing stays light" in result.stdout and "KEPT" in result.stdout, "only the broken contract fails"


def test_a_heavy_import_reached_from_orchestration_breaks_the_parse_time_contract(package_copy: Path) -> None:
    # Indirect on purpose: orchestration -> retraining is allowed, retraining -> pandas is what the contract forbids.
    policy = package_copy / "include" / "mlcycle" / "retraining.py"
    policy.write_text(policy.read_text() + "\n\ndef _frame() -> object:\n    import pandas\n\n    return pandas\n")
    result = lint_imports(package_copy, package_copy / "include")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DAG parsing stays light" in result.stdout and "BROKEN" in result.stdout, result.stdout
    assert "mlcycle.retraining -> pandas" in result.stdout, result.stdout


def test_a_dev_tooling_import_breaks_the_runtime_only_contract(package_copy: Path) -> None:
    # A helper the demo has, used from a step: it would not exist in the task image.
    step = package_copy / "include" / "mlcycle" / "steps" / "score.py"
    step.write_text(
        step.read_text() + "\n\ndef _summary() -> object:\n    from mlcycle_dev import demo\n\n    return demo\n"
    )
    result = lint_imports(package_copy, package_copy / "include")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The runtime package never imports the dev tooling or test code BROKEN" in result.stdout, result.stdout
    assert "mlcycle.steps.score -> mlcycle_dev" in result.stdout, result.stdout


def test_an_airflow_import_from_a_step_breaks_the_steps_without_airflow_contract(package_copy: Path) -> None:
    # Indirect on purpose: the task image has no Airflow (ADR 0009), so a step that reached it, through the
    # storage layer here, would fail in its pod.
    storage = package_copy / "include" / "mlcycle" / "storage" / "paths_via_airflow.py"
    storage.write_text('"""A storage helper borrowing from Airflow."""\n\nfrom airflow.sdk import Asset\n')
    step = package_copy / "include" / "mlcycle" / "steps" / "score.py"
    step.write_text(step.read_text() + "\n\nfrom mlcycle.storage import paths_via_airflow  # noqa: E402\n")
    result = lint_imports(package_copy, package_copy / "include")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The task image's code never imports Airflow" in result.stdout, result.stdout
    assert "mlcycle.storage.paths_via_airflow -> airflow (l.3)" in result.stdout, result.stdout
