"""The DAGs in Airflow's own environment (docs/adr/0009-two-environments.md): `.venv-airflow`, made by
`make venv-airflow` from requirements-airflow.lock alone, as the Airflow image has it. There the ML libraries
are not installed at all, so a DAG file (or anything it imports) that reached one would be an import error.

The DAG folder is parsed there as the dag processor does, in the embedded (local) execution mode and in the
Kubernetes mode production runs, with the settings the Airflow chart's values give Airflow's components.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.config import discover_usecases
from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle.specs.names import DagFamily
from mlcycle_dev.locks import AIRFLOW
from support.airflow_env import ML_LIBRARIES, PARSE_DAGS
from support.step_pods import dag_side_env

AIRFLOW_PYTHON = REPO_ROOT / ".venv-airflow" / "bin" / "python"


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    assert AIRFLOW_PYTHON.is_file(), f"{AIRFLOW_PYTHON} is missing: `make venv-airflow` makes it (`make test` does)"
    return AIRFLOW_PYTHON


def _parse(python: Path, home: Path, extra_env: dict[str, str]) -> dict:
    env = {**os.environ, **embedded_environment(home), **extra_env}
    env.pop("PYTHONPATH", None)  # what the environment itself provides, not this test process's paths
    out = subprocess.run(
        [str(python), "-c", PARSE_DAGS, str(REPO_ROOT / "dags"), json.dumps(ML_LIBRARIES)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_environment_is_exactly_the_airflow_lock(airflow_python: Path) -> None:
    """What `make venv-airflow` installed is requirements-airflow.lock, package for package, and nothing else
    (plus mlcycle itself), so the parse below says what the Airflow image would say."""
    locked = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", (REPO_ROOT / AIRFLOW.file).read_text(), re.M))
    uv = Path(sys.executable).parent / "uv"
    frozen = subprocess.run(
        [str(uv), "pip", "freeze", "--python", str(airflow_python)], capture_output=True, text=True, check=True
    ).stdout
    installed = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", frozen, re.M))
    installed = {name.lower().replace("_", "-"): version for name, version in installed.items()}
    assert installed == locked, {
        "not installed": sorted(set(locked) - set(installed)),
        "not locked": sorted(set(installed) - set(locked)),
        "other version": sorted(n for n in set(locked) & set(installed) if locked[n] != installed[n]),
    }
    assert not {"pandas", "numpy", "scikit-learn", "torch", "mlflow", "great-expectations"} & set(locked)


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_the_dags_parse_without_the_ml_stack(airflow_python: Path, tmp_path: Path, mode: str) -> None:
    """Every use case, plus (in kubernetes mode) `yarnit_spark`, whose Spark steps become SparkKubernetesOperator
    tasks there: the Spark launcher imports nothing the Airflow image lacks (pyspark included)."""
    from support.spark_apps import SPARK_USECASE, spark_usecase_dir

    extra = {"MLCYCLE_EXECUTION_MODE": "local"} if mode == "local" else dag_side_env()
    assert extra["MLCYCLE_EXECUTION_MODE"] == mode
    names = [u.name for u in discover_usecases()]
    if mode == "kubernetes":
        usecases = tmp_path / "usecases"
        shutil.copytree(REPO_ROOT / "include" / "usecases", usecases)
        spark_usecase_dir(usecases)
        extra["MLCYCLE_USECASES_DIR"] = str(usecases)
        names.append(SPARK_USECASE)
    parsed = _parse(airflow_python, tmp_path / "home", extra)
    assert parsed["installed_ml"] == [], f"ML libraries in Airflow's environment: {parsed['installed_ml']}"
    assert parsed["errors"] == {}
    expected = sorted(family.dag_id(name) for name in names for family in DagFamily)
    assert parsed["dag_ids"] == expected
    assert Path(parsed["mlcycle"]).is_relative_to(REPO_ROOT / "include"), parsed["mlcycle"]
    assert parsed["pod_operator"], "the cncf-kubernetes provider is in Airflow's environment"
    step_operators = {"StepPodOperator", "StepSparkOperator"} if mode == "kubernetes" else {"LocalStepOperator"}
    assert step_operators <= set(parsed["step_operators"]), parsed["step_operators"]
