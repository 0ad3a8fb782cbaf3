"""Partition-driven scheduling through the real scheduler (ADR 0010, issue 14).

A retraining request for day T (an Asset event keyed T) starts a training run keyed T, on the partition-aware
"asset or cron" timetable; its steps process T. Scoring for day D finishing then makes the scheduler start
monitoring for D (no cron hour involved): that run is Asset-triggered, its partition key is D, the event it
consumed is the scoring run's, and its monitor step processed D.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mlcycle.config import USECASES_ENV
from mlcycle.rerun import rerun
from mlcycle.retraining import request_asset_name
from mlcycle.settings import embedded_environment
from mlcycle.specs.names import DagFamily, Step
from mlcycle_dev.stack.airflow import AirflowServices
from mlcycle_dev.stack.process import wait_until
from support.usecases import lenient_usecases, without_cron_runs

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TRAIN_DAY = dt.date(2026, 9, 8)
DAY = dt.date(2026, 9, 9)
TRAINING, SCORING, MONITORING = (family.dag_id("yarnit") for family in DagFamily if family != DagFamily.PROMOTION)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("partitions")
    # A champion every time, whatever the machine's load; no cron run, only triggered and Asset-triggered ones.
    usecases = without_cron_runs(lenient_usecases(home))
    env = {**os.environ, **embedded_environment(home), USECASES_ENV: str(usecases)}
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", str(DAY)]
    subprocess.run([*generate, "--rows", "700"], env=env, check=True, capture_output=True)
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as services:
        services.wait_for_dags([TRAINING, SCORING, MONITORING], timeout=180)
        for dag_id in (TRAINING, SCORING, MONITORING):
            services.unpause(dag_id)
        yield services


def _partition_run(airflow: AirflowServices, dag_id: str, day: dt.date, run_type: str) -> dict[str, Any]:
    """Wait for the run of `dag_id` of `run_type` for partition `day` to finish; return it."""

    def finished() -> dict[str, Any] | None:
        runs = [r for r in airflow.partition_runs(dag_id, day.isoformat()) if r["run_type"] == run_type]
        return runs[-1] if runs and runs[-1]["state"] in ("success", "failed") else None

    what = f"a finished {run_type} run of {dag_id} for {day}"
    return wait_until(finished, 900, what, processes=list(airflow.processes.values()))


def _result(airflow: AirflowServices, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    value: dict[str, Any] = airflow.request("GET", path, params={"deserialize": True})["value"]
    return value


def _request_retraining(airflow: AirflowServices, day: dt.date) -> None:
    """A retraining request for `day`, as the alert receiver sends it (the monitoring DAG's carries the same key)."""
    asset_id = airflow.asset_id(request_asset_name("yarnit"))
    extra = {"partition": day.isoformat(), "reason": "test: retraining request", "triggers": ["test"]}
    airflow.create_asset_event(asset_id, extra, partition_key=day.isoformat())


def test_a_request_for_d_trains_d_and_scoring_d_starts_monitoring_d(airflow: AirflowServices) -> None:
    # Training is partition-aware on its retraining Asset: a request keyed D starts a training run keyed D.
    _request_retraining(airflow, TRAIN_DAY)
    trained = _partition_run(airflow, TRAINING, TRAIN_DAY, "asset_triggered")
    assert trained["state"] == "success", airflow.task_states(TRAINING, trained["dag_run_id"])
    assert _result(airflow, TRAINING, trained["dag_run_id"], Step.INGEST.value)["partition"] == TRAIN_DAY.isoformat()

    scored = rerun(airflow, "yarnit", DagFamily.SCORING, DAY.isoformat(), "test: produce predictions D")
    assert airflow.dag_run(SCORING, scored["run_id"])["partition_key"] == DAY.isoformat()
    assert airflow.wait_for_run(SCORING, scored["run_id"], timeout=900) == "success"

    # Nobody triggers monitoring: the scheduler does, for the partition scoring produced.
    monitoring = _partition_run(airflow, MONITORING, DAY, "asset_triggered")
    assert monitoring["state"] == "success", airflow.task_states(MONITORING, monitoring["dag_run_id"])
    assert monitoring["partition_key"] == DAY.isoformat()
    path = f"/api/v2/dags/{MONITORING}/dagRuns/{quote(monitoring['dag_run_id'])}/upstreamAssetEvents"
    events = airflow.request("GET", path)["asset_events"]
    assert [(e["source_dag_id"], e["source_run_id"], e["partition_key"]) for e in events] == [
        (SCORING, scored["run_id"], DAY.isoformat())
    ]
    assert _result(airflow, MONITORING, monitoring["dag_run_id"], Step.MONITOR.value)["partition"] == DAY.isoformat()
    if airflow.task_states(MONITORING, monitoring["dag_run_id"])["request_retraining"] == "success":
        # The policy saw drift on D: its request (keyed D by the task) started training for D by itself.
        retrain = wait_until(
            lambda: airflow.partition_runs(TRAINING, DAY.isoformat()),
            120,
            f"a training run for {DAY} from the monitoring run's request",
            processes=list(airflow.processes.values()),
        )
        assert retrain[0]["run_type"] == "asset_triggered"
