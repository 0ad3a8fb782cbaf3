"""The training DAG, then scoring and monitoring, through real Airflow (`airflow dags test`) on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.config import USECASES_ENV
from mlcycle.settings import embedded_environment
from support.usecases import lenient_usecases

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{argv} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import os

    home = tmp_path_factory.mktemp("airflow-it")
    env = {
        **os.environ,
        **embedded_environment(home),
        USECASES_ENV: str(lenient_usecases(home)),  # a champion every time, whatever the machine's load
    }
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", "2026-09-09"]
    _run([*generate, "--rows", "900", "--scenario", "covariate_shift:2026-09-09"], env)
    _run([str(BIN / "airflow"), "db", "migrate"], env)
    return env


@pytest.fixture(scope="module")
def trained_env(airflow_env: dict[str, str]) -> dict[str, str]:
    """The training DAG has run for 2026-09-08 (its outcome is the next test's subject; scoring needs it)."""
    _run([str(BIN / "airflow"), "dags", "test", "yarnit_training", "2026-09-08"], airflow_env)
    return airflow_env


def test_dags_list_shows_the_four_dags(airflow_env: dict[str, str]) -> None:
    out = _run([str(BIN / "airflow"), "dags", "list", "-l", "-o", "json"], airflow_env)
    listing = next(line for line in out.stdout.splitlines() if line.startswith("[{"))
    dag_ids = {d["dag_id"] for d in json.loads(listing)}
    assert {"yarnit_training", "yarnit_scoring", "yarnit_monitoring", "yarnit_promotion"} <= dag_ids


def test_training_dag_registers_a_champion(trained_env: dict[str, str]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=trained_env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("yarnit_model", "champion")
    assert str(champion.version) == "1"
    tags = champion.tags
    assert tags["airflow.dag_id"] == "yarnit_training"
    assert tags["airflow.run_id"].startswith("manual__")
    assert tags["airflow.logical_date"].startswith("2026-09-08")
    assert tags["mlcycle.partition"] == "2026-09-08"
    assert tags["mlcycle.gate.decision"] == "promote"
    parent = client.get_run(tags["mlcycle.parent_run_id"])
    assert parent.data.tags["mlcycle.role"] == "parent"


def test_scoring_and_monitoring_dags(trained_env: dict[str, str]) -> None:
    _run([str(BIN / "airflow"), "dags", "test", "yarnit_scoring", "2026-09-09"], trained_env)
    predictions = Path(trained_env["MLCYCLE_STORAGE_ROOT"]) / "yarnit/predictions/ds=2026-09-09/role=champion"
    assert (predictions / "_SUCCESS").exists()
    out = _run([str(BIN / "airflow"), "dags", "test", "yarnit_monitoring", "2026-09-09"], trained_env)
    summary = json.loads(
        (Path(trained_env["MLCYCLE_STORAGE_ROOT"]) / "yarnit/monitoring/ds=2026-09-09/summary.json").read_text()
    )
    assert summary["dataset_drift"] is True, "the heatwave day drifts"
    assert "request_retraining" in out.stdout + out.stderr
