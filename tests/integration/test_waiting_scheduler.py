"""Waiting for data and deadlines on a real Airflow: api-server, scheduler, dag-processor and triggerer (SQLite).

Drill DAGs from a temporary DAGs folder, one per test use case (copies of YarnIt with their own `data:` and
`deadlines:`), each `<uc>_scoring`: mlcycle's landing wait (`wait_for_landing`, the task the real DAGs put
before ingest), then a stand-in `ingest`, and the DAG's `deadline=` from `dag_deadline` (the real DAGs'
argument). Alerts go to a local recording endpoint through mlcycle's alert path.

- `waitlate`: a data deadline two days after the end of the day: a missing landing partition defers (no
  worker slot held) and the run goes on once `_SUCCESS` appears; a malformed marker fails at once.
- `waitnever`: data and run deadlines placed a minute or two after the services are up, and a partition-keyed
  run (a run with a partition key and no logical date), on a `PartitionedAssetTimetable` like the real
  monitoring DAG's (an Asset nothing produces: no scheduled run joins the drill): the
  partition never lands, so the run misses its deadline (`deadline-missed`: the `PartitionDayEnd` reference,
  registered by plugins/mlcycle_deadlines.py, evaluated by the api-server and the scheduler, the callback run by
  the triggerer) and then its data deadline (`data-late`, the wait fails without retry).
  A run triggered with a key that is not a day is refused (400, naming the run), never created without deadline.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.airflow_api import AirflowAPIError
from mlcycle.config import DEFAULT_USECASES_DIR
from mlcycle.orchestration.waiting import WAIT_TASK_ID
from mlcycle.settings import embedded_environment
from mlcycle.storage.layout import SUCCESS, Dataset, partition_uri
from mlcycle_dev.stack import AirflowServices, wait_until
from support.alerting import RecordingEndpoint, recording_endpoint

pytestmark = pytest.mark.integration

LATE, NEVER = "waitlate", "waitnever"
#: Between the services being up and the `waitnever` deadlines: time to parse its DAG and start its run.
RUN_DEADLINE_MARGIN = dt.timedelta(seconds=60)
DATA_DEADLINE_MARGIN = dt.timedelta(seconds=80)

DRILL_DAG = '''
"""airflow dag: the landing-wait drill of use case {name} (tests/integration/test_waiting_scheduler.py)."""
import datetime as dt

from airflow.sdk import DAG, Asset, PartitionedAssetTimetable, task

from mlcycle.config import get_usecase
from mlcycle.orchestration.alerts import FailureAlert
from mlcycle.orchestration.deadlines import dag_deadline
from mlcycle.orchestration.macros import MACROS
from mlcycle.orchestration.waiting import wait_for_landing
from mlcycle.specs.names import DagFamily

USECASE = get_usecase("{name}")

with DAG(
    dag_id=DagFamily.SCORING.dag_id(USECASE.name),
    schedule={schedule},
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    user_defined_macros=dict(MACROS),
    deadline=dag_deadline(USECASE, DagFamily.SCORING),
    default_args={{"retries": 2, "retry_delay": dt.timedelta(seconds=1), "on_failure_callback": [FailureAlert()]}},
):

    @task(task_id="ingest")
    def ingest():
        return "ran after the wait"

    wait_for_landing(USECASE) >> ingest()
'''


def _usecase(usecases: Path, name: str, data: dict[str, str], deadlines: dict[str, str] | None = None) -> None:
    folder = usecases / name
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", folder)
    config: dict[str, Any] = yaml.safe_load((folder / "usecase.yaml").read_text())
    config["name"] = name
    config["data"] = data
    # A run's deadline is the end of its partition day + its duration, whatever the cron (it only must be daily).
    config["schedule"] = {**config["schedule"], "scoring": "0 0 * * *"}
    config["deadlines"] = deadlines or {}
    (folder / "usecase.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _duration(delta: dt.timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


class Drill:
    def __init__(self, services: AirflowServices, sink: RecordingEndpoint, storage_root: str) -> None:
        self.af, self.sink, self.root = services, sink, storage_root
        self.today = dt.datetime.now(dt.UTC).date()
        self.never_run_id = ""

    def landing(self, usecase: str, day: dt.date) -> Path:
        return Path(partition_uri(self.root, usecase, Dataset.LANDING, day))

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.af.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        )
        return found

    def alerts(self, alert: str, run_id: str) -> list[dict[str, Any]]:
        return [m for m in self.sink.on("/hook") if m.get("alert") == alert and m.get("run_id") == run_id]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    root = tmp_path_factory.mktemp("waiting")
    (root / "dags").mkdir()
    usecases = root / "usecases"
    _usecase(usecases, LATE, {"deadline": "2d", "poll_interval": "1s"})
    (root / "dags" / f"{LATE}.py").write_text(DRILL_DAG.format(name=LATE, schedule="None"))
    home = embedded_environment(root / "home")
    with recording_endpoint() as sink:
        env = {
            **os.environ,
            **home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "MLCYCLE_USECASES_DIR": str(usecases),
            "MLCYCLE_ALERT_WEBHOOK_URL": f"{sink.url}/hook",
        }
        with AirflowServices(env) as services:
            drill = Drill(services, sink, home["MLCYCLE_STORAGE_ROOT"])
            # Placed now that the services are up: a deadline a minute or two ahead of the run that misses it.
            yesterday_end = dt.datetime.combine(drill.today, dt.time(), tzinfo=dt.UTC)
            now = dt.datetime.now(dt.UTC)
            _usecase(
                usecases,
                NEVER,
                {"deadline": _duration(now + DATA_DEADLINE_MARGIN - yesterday_end), "poll_interval": "1s"},
                {"scoring": _duration(now + RUN_DEADLINE_MARGIN - yesterday_end)},
            )
            # Partition-keyed on an Asset nothing produces: only the runs triggered here.
            (root / "dags" / f"{NEVER}.py").write_text(
                DRILL_DAG.format(name=NEVER, schedule='PartitionedAssetTimetable(assets=Asset("waitnever_input"))')
            )
            services.wait_for_dags([f"{LATE}_scoring", f"{NEVER}_scoring"], timeout=180)
            for usecase in (LATE, NEVER):
                services.unpause(f"{usecase}_scoring")
            yesterday = drill.today - dt.timedelta(days=1)
            # The run of yesterday's partition key, started now, with no logical date: the key places its run
            # deadline (the end of yesterday + deadlines.scoring); the partition never lands.
            drill.never_run_id = services.trigger(f"{NEVER}_scoring", partition_key=yesterday.isoformat())["dag_run_id"]
            yield drill


def test_a_late_landing_partition_defers_then_runs_when_its_marker_appears(drill: Drill) -> None:
    dag_id = f"{LATE}_scoring"
    run_id = drill.af.trigger(dag_id, conf={"partition": drill.today.isoformat()})["dag_run_id"]
    wait_until(lambda: drill.af.task_states(dag_id, run_id).get(WAIT_TASK_ID) == "deferred", 180, "the wait to defer")

    def idle_pool() -> dict[str, Any] | None:
        # No worker slot held while waiting (the other drill's wait may still be starting up: a bounded wait).
        pool: dict[str, Any] = drill.af.request("GET", "/api/v2/pools/default_pool")
        return pool if pool["running_slots"] == 0 and pool["deferred_slots"] >= 1 else None

    wait_until(idle_pool, 120, "every waiting task to be deferred, with no running slot")
    assert drill.af.task_states(dag_id, run_id)[WAIT_TASK_ID] == "deferred"
    # Land only once the scheduler has heard from the executor that the deferring process is gone: Airflow 3.3.2
    # fails (and retries) a task resumed by its trigger before that (the executor's late "success" for a task
    # that runs again), so the resumed task would be a second try that never deferred.
    finished = f"TaskInstance Finished: dag_id={dag_id}, task_id={WAIT_TASK_ID}, run_id={run_id},"
    scheduler_log = drill.af.logs_dir / "scheduler.log"
    wait_until(
        lambda: any(finished in line and "state=deferred" in line for line in scheduler_log.read_text().splitlines()),
        120,
        "the scheduler to record the deferral",
    )
    assert drill.af.task_states(dag_id, run_id)["ingest"] is None  # nothing ran past the wait

    landing = drill.landing(LATE, drill.today)
    landing.mkdir(parents=True)
    (landing / "data.csv").write_text("session_id\n1\n")
    (landing / SUCCESS).write_text("{}")  # written last, as a data source does

    assert drill.af.wait_for_run(dag_id, run_id, timeout=180) == "success"
    assert drill.af.task_states(dag_id, run_id) == {WAIT_TASK_ID: "success", "ingest": "success"}
    wait = drill.task(dag_id, run_id, WAIT_TASK_ID)
    assert wait["try_number"] == 1
    xcom = drill.af.request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{WAIT_TASK_ID}/xcomEntries/return_value"
    )
    assert xcom["value"] == {"landing": str(landing), "deferred": True}  # resumed from the trigger's event


def test_a_malformed_marker_fails_at_once_without_retry(drill: Drill) -> None:
    dag_id, day = f"{LATE}_scoring", drill.today - dt.timedelta(days=1)
    landing = drill.landing(LATE, day)
    landing.mkdir(parents=True)
    (landing / SUCCESS).write_text("done")
    run_id = drill.af.trigger(dag_id, conf={"partition": day.isoformat()})["dag_run_id"]

    assert drill.af.wait_for_run(dag_id, run_id, timeout=180) == "failed"
    assert drill.af.task_states(dag_id, run_id) == {WAIT_TASK_ID: "failed", "ingest": "upstream_failed"}
    assert drill.task(dag_id, run_id, WAIT_TASK_ID)["try_number"] == 1  # retries=2, none used
    alerts = wait_until(lambda: drill.alerts("data-rejected", run_id), 60, "the data-rejected alert")
    assert len(alerts) == 1 and f"{landing}/{SUCCESS}" in alerts[0]["reason"] and "JSON object" in alerts[0]["reason"]
    assert alerts[0]["partition"] == day.isoformat()


def test_a_partition_that_never_lands_misses_the_run_deadline_then_alerts_data_late(drill: Drill) -> None:
    dag_id, run_id = f"{NEVER}_scoring", drill.never_run_id
    yesterday = (drill.today - dt.timedelta(days=1)).isoformat()
    run = drill.af.dag_run(dag_id, run_id)
    assert (run["partition_key"], run["logical_date"]) == (yesterday, None)  # what made logical-date deadlines vanish

    missed = wait_until(lambda: drill.alerts("deadline-missed", run_id), 300, "the deadline-missed alert")
    assert len(missed) == 1 and missed[0]["task_id"] == "dag_run" and missed[0]["partition"] == yesterday
    assert "state running" in missed[0]["reason"] and "deadlines.scoring" in missed[0]["reason"]
    assert missed[0]["runbook"].endswith("/deadline-missed.md")

    assert drill.af.wait_for_run(dag_id, run_id, timeout=300) == "failed"
    wait = drill.task(dag_id, run_id, WAIT_TASK_ID)
    assert (wait["state"], wait["try_number"]) == ("failed", 1)  # past the deadline: not retried
    late = wait_until(lambda: drill.alerts("data-late", run_id), 60, "the data-late alert")
    assert len(late) == 1 and late[0]["task_id"] == WAIT_TASK_ID and late[0]["partition"] == yesterday
    assert f"no {drill.landing(NEVER, drill.today - dt.timedelta(days=1))}/{SUCCESS}" in late[0]["reason"]
    assert late[0]["rerun"].startswith(f"mlcycle rerun --usecase {NEVER} --dag scoring --partition {yesterday}")
    assert len(drill.alerts("deadline-missed", run_id)) == 1  # one alert per missed deadline


def test_a_run_whose_partition_key_is_not_a_day_is_refused_not_left_without_deadline(drill: Drill) -> None:
    dag_id = f"{NEVER}_scoring"
    with pytest.raises(AirflowAPIError) as refused:
        drill.af.trigger(dag_id, partition_key="2026-13-45", run_id="bad_key")
    assert refused.value.status == 400
    assert (
        f"deadline of run {dag_id}/bad_key" in refused.value.body and "'2026-13-45' is not a day" in refused.value.body
    )
    runs = drill.af.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"run_id_pattern": "bad_key"})
    assert runs["total_entries"] == 0  # the creation was rolled back: no run without its deadline
