"""Airflow 3 backfills through the real scheduler: running the same range twice changes nothing.

Training for one day, scoring for two, then monitoring alone for the same two, twice
(`reprocess_behavior=completed`): the second pass must commit byte-identical data partitions, register no new
model version, and the monitoring runs (keyed manual runs, `notify_only`: Airflow does not backfill an
Asset-scheduled DAG, ADR 0010) must never request a retrain. Every run's partition key is its day.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle.airflow_api import AirflowClient
from mlcycle.backfill import committed_digests, run_backfills
from mlcycle.config import USECASES_ENV
from mlcycle.settings import embedded_environment
from mlcycle_dev.stack.airflow import AirflowServices
from support.usecases import lenient_usecases

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TRAIN_DAY = dt.date(2026, 9, 8)
SCORE_DAYS = [dt.date(2026, 9, 9), dt.date(2026, 9, 10)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowClient]:
    home = tmp_path_factory.mktemp("backfill")
    env = {
        **os.environ,
        **embedded_environment(home),
        USECASES_ENV: str(lenient_usecases(home)),  # a champion every time, whatever the machine's load
        # No scheduled run for "today" (no data for it) when the DAGs are unpaused: only the backfills run. This
        # also stops Asset-triggered runs (ADR 0010), so monitoring is backfilled on its own: keyed manual runs.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", "2026-09-10"]
    subprocess.run([*generate, "--rows", "700"], env=env, check=True, capture_output=True)
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)  # committed_digests and the registry look-ups read the same stores
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as services:
        services.wait_for_dags(["yarnit_training", "yarnit_scoring", "yarnit_monitoring"], timeout=180)
        yield AirflowClient(services.base_url, username=services.username, password=services.password)
    mp.undo()


def _pass(client: AirflowClient) -> tuple[dict[str, str], list[str]]:
    """One backfill pass; returns the committed digests and the registered versions."""
    from mlcycle.config import get_usecase
    from mlcycle.registry.tracking import all_versions

    results = run_backfills(client, "yarnit", TRAIN_DAY, TRAIN_DAY, ["training"], timeout=900)
    results |= run_backfills(client, "yarnit", SCORE_DAYS[0], SCORE_DAYS[-1], ["scoring"], timeout=900)
    results |= run_backfills(client, "yarnit", SCORE_DAYS[0], SCORE_DAYS[-1], ["monitoring"], timeout=900)
    states = {(dag, run["partition_key"]): run["state"] for dag, runs in results.items() for run in runs}
    assert states == {
        ("yarnit_training", "2026-09-08"): "success",
        ("yarnit_scoring", "2026-09-09"): "success",
        ("yarnit_scoring", "2026-09-10"): "success",
        ("yarnit_monitoring", "2026-09-09"): "success",
        ("yarnit_monitoring", "2026-09-10"): "success",
    }, states
    for monitoring_run in results["yarnit_monitoring"]:
        assert monitoring_run["run_type"] == "manual", monitoring_run  # one keyed run per day, notify_only
        tasks = client.task_states("yarnit_monitoring", monitoring_run["dag_run_id"])
        assert tasks["request_retraining"] == "skipped", tasks  # a backfill replays history, never retrains
    digests = committed_digests("yarnit", ["training", "scoring", "monitoring"], [TRAIN_DAY, *SCORE_DAYS])
    versions = [str(v.version) for v in all_versions(get_usecase("yarnit"))]
    return digests, versions


def test_backfilling_twice_changes_nothing(client: AirflowClient) -> None:
    first_digests, first_versions = _pass(client)
    assert {"features/ds=2026-09-08", "predictions/ds=2026-09-10/role=champion", "monitoring/ds=2026-09-10"} <= set(
        first_digests
    )
    assert first_versions == ["1"]
    second_digests, second_versions = _pass(client)
    assert second_digests == first_digests
    assert second_versions == first_versions, "a re-run must not register another version"
