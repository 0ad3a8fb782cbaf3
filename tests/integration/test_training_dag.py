"""The training DAG, then scoring and monitoring, through real Airflow (`airflow dags test`) on tiny data.

Airflow's OpenLineage provider sends the run events of every task to a local HTTP endpoint (its HTTP transport):
the day's graph they describe is checked, and `mlcycle lineage` traces a prediction through the real DAG runs.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import USECASES_ENV
from mlcycle.settings import DAG_DEADLINES_ENV, embedded_environment
from support.usecases import lenient_usecases

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{argv} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def lineage_events() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local OpenLineage endpoint: (its URL, the run events it received)."""
    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # quiet: the events are the record
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def airflow_env(
    tmp_path_factory: pytest.TempPathFactory, lineage_events: tuple[str, list[dict[str, Any]]]
) -> dict[str, str]:
    import os

    home = tmp_path_factory.mktemp("airflow-it")
    env = {
        **os.environ,
        **embedded_environment(home),
        # `airflow dags test` cannot finish a run of a DAG with deadlines in Airflow 3.3.2 (settings.DAG_DEADLINES_ENV);
        # the deadlines run for real under the scheduler (tests/integration/test_waiting_scheduler.py).
        DAG_DEADLINES_ENV: "false",
        USECASES_ENV: str(lenient_usecases(home)),  # a champion every time, whatever the machine's load
        # The OpenLineage provider's HTTP transport, to this module's endpoint.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "http", "url": lineage_events[0], "endpoint": "api/v1/lineage", "timeout": 30}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlcycle-it",
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


@pytest.fixture(scope="module")
def scored_env(trained_env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The scoring and monitoring DAGs have run for 2026-09-09 (the monitoring run's output is returned)."""
    _run([str(BIN / "airflow"), "dags", "test", "yarnit_scoring", "2026-09-09"], trained_env)
    out = _run([str(BIN / "airflow"), "dags", "test", "yarnit_monitoring", "2026-09-09"], trained_env)
    return trained_env, out.stdout + out.stderr


def test_scoring_and_monitoring_dags(scored_env: tuple[dict[str, str], str]) -> None:
    trained_env, output = scored_env
    predictions = Path(trained_env["MLCYCLE_STORAGE_ROOT"]) / "yarnit/predictions/ds=2026-09-09/role=champion"
    assert (predictions / "_SUCCESS").exists()
    summary = json.loads(
        (Path(trained_env["MLCYCLE_STORAGE_ROOT"]) / "yarnit/monitoring/ds=2026-09-09/summary.json").read_text()
    )
    assert summary["dataset_drift"] is True, "the heatwave day drifts"
    assert "request_retraining" in output


def _complete_events(events: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"].endswith(f".{task}")]


def test_openlineage_events_carry_the_days_graph(
    scored_env: tuple[dict[str, str], str], lineage_events: tuple[str, list[dict[str, Any]]]
) -> None:
    """landing -> raw -> validated -> features -> model -> predictions -> monitoring, joined by dataset names that
    name the partition and the model version, as the provider sent them."""
    env, _ = scored_env
    events = lineage_events[1]
    root = env["MLCYCLE_STORAGE_ROOT"] + "/yarnit"

    def edges(task: str, dag: str) -> set[tuple[str, str]]:
        found = set()
        for event in _complete_events(events, task):
            if event["job"]["name"].startswith(dag):
                for i in event.get("inputs", []):
                    for o in event.get("outputs", []):
                        found.add((i["name"].removeprefix(root), o["name"].removeprefix(root)))
        return found

    assert ("/landing/ds=2026-09-08", "/raw/ds=2026-09-08") in edges("ingest", "yarnit_training")
    assert ("/raw/ds=2026-09-08", "/validated/ds=2026-09-08") in edges("validate", "yarnit_training")
    assert ("/validated/ds=2026-09-08", "/features/ds=2026-09-08") in edges("features", "yarnit_training")
    assert ("/features/ds=2026-09-08", "yarnit_model/1") in edges("train", "yarnit_training")
    assert ("/landing/ds=2026-09-09", "/raw/ds=2026-09-09") in edges("ingest", "yarnit_scoring")
    assert ("/raw/ds=2026-09-09", "/validated/ds=2026-09-09") in edges("validate", "yarnit_scoring")
    scored = edges("score", "yarnit_scoring")
    assert {
        ("yarnit_model/1", "/predictions/ds=2026-09-09/role=champion"),
        ("/validated/ds=2026-09-09", "/predictions/ds=2026-09-09/role=champion"),
    } <= scored
    assert ("/predictions/ds=2026-09-09/role=champion", "/monitoring/ds=2026-09-09") in edges(
        "monitor", "yarnit_monitoring"
    )
    model = next(o for e in _complete_events(events, "train") for o in e["outputs"] if o["name"] == "yarnit_model/1")
    assert model["namespace"] == "mlflow" and model["facets"]["version"]["datasetVersion"] == "1"


def test_lineage_traces_a_prediction_through_the_dag_runs(scored_env: tuple[dict[str, str], str]) -> None:
    """`mlcycle lineage --prediction-id`: the scoring run, the version, its training run, each day's digests and
    ingest/validate DAG runs, the gate decision; and the drifted day forward to nothing trained on it yet."""
    import pyarrow.dataset as ds

    env, _ = scored_env
    predictions = Path(env["MLCYCLE_STORAGE_ROOT"]) / "yarnit/predictions/ds=2026-09-09/role=champion"
    prediction_id = str(ds.dataset(str(predictions), format="parquet").to_table(columns=["prediction_id"])[0][0])
    out = _run([str(BIN / "mlcycle"), "lineage", "--usecase", "yarnit", "--prediction-id", prediction_id], env)
    lineage = json.loads(out.stdout.strip().splitlines()[-1])["metrics"]["lineage"]
    scoring_run = lineage["predictions"]["scored_by"]
    assert scoring_run["dag_id"] == "yarnit_scoring" and scoring_run["run_id"]
    assert lineage["predictions"]["data"]["raw"]["ingested_by"]["dag_id"] == "yarnit_scoring"
    assert lineage["predictions"]["monitored"]["read_these_predictions"] is True
    model = lineage["model"]
    assert model["trained_by"]["dag_id"] == "yarnit_training" and model["gate"]["decision"] == "promote"
    assert model["promotion"]["promoted_in"].startswith("yarnit_training/")
    for row in model["training_data"]:
        assert row["raw"]["ingested_by"]["dag_id"] == "yarnit_training"
        assert row["contract"]["validated"]["validated_by"]["run_id"] == model["trained_by"]["run_id"]
        assert row["trained_on_raw_digest"] == row["raw"]["digest"]
    assert f"run_id: {scoring_run['run_id']}" in out.stdout
