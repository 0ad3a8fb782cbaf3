"""The built Airflow image (issue 13, item 6; ADR 0009): Airflow and its providers from requirements-airflow.lock,
no ML library, the official chart's user, and the DAG bundle parsed inside it as the chart's components parse it
(the repository where git-sync puts it, the settings of helm/airflow-values.yaml, Kubernetes mode)."""

from __future__ import annotations

import json

import pytest

from mlcycle.config import discover_usecases
from mlcycle.settings import REPO_ROOT
from mlcycle.specs.names import DagFamily
from mlcycle_dev.containers.build import BuildRefused, build_images, built_from_these_inputs
from mlcycle_dev.containers.runtime import Engine
from support.airflow_env import ML_LIBRARIES, PARSE_DAGS
from support.step_pods import airflow_env

from .conftest import TEST_REPO

#: The official chart's defaults (runAsUser 50000, runAsGroup 0) and our values' container securityContext.
CHART_USER = ("--user", "50000:0", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
#: Where the chart's git-sync puts the repository (helm/airflow-values.yaml: PYTHONPATH, plugins folder).
BUNDLE = "/opt/airflow/dags/repo"


@pytest.fixture(scope="module")
def airflow_image(engine: Engine) -> str:
    if engine.name != "podman":
        pytest.skip("the container tests run with podman; this machine's engine is docker")
    try:
        return (
            built_from_these_inputs(engine, "airflow")
            or build_images(engine, repo=TEST_REPO, tag="test", task=False)[0].ref
        )
    except BuildRefused as exc:
        pytest.skip(f"the Airflow image cannot be built here: {exc}")


def test_the_image_runs_airflow_as_the_charts_user(engine: Engine, airflow_image: str) -> None:
    config = json.loads(engine.run("image", "inspect", "--format", "{{json .Config}}", airflow_image).stdout)
    assert config["User"] == "50000:0"
    assert not config.get("Entrypoint"), "the chart's `args` (bash -c 'exec airflow …') are the command"
    done = engine.run("run", "--rm", *CHART_USER, airflow_image, "airflow", "version", check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "3.3.2"


def test_the_dag_bundle_parses_inside_without_the_ml_stack(engine: Engine, airflow_image: str) -> None:
    env = [arg for name, value in airflow_env().items() for arg in ("-e", f"{name}={value}")]
    done = engine.run(
        "run", "--rm", *CHART_USER, "--volume", f"{REPO_ROOT}:{BUNDLE}:ro", *env,
        "-e", "AIRFLOW__CORE__LOAD_EXAMPLES=False", airflow_image,
        "python", "-c", PARSE_DAGS, f"{BUNDLE}/dags", json.dumps(ML_LIBRARIES), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["installed_ml"] == [], f"ML libraries in the Airflow image: {parsed['installed_ml']}"
    assert parsed["errors"] == {}
    assert parsed["dag_ids"] == sorted(family.dag_id(u.name) for u in discover_usecases() for family in DagFamily)
    assert parsed["mlcycle"].startswith(f"{BUNDLE}/include/"), "the bundle's mlcycle wins over the installed one"
    assert "StepPodOperator" in parsed["step_operators"], "production's Kubernetes mode"
