"""The demo's REST driver (`mlcycle_dev.demo_airflow.StoryClient`) against a real scheduler, on one-task DAGs.

What `make demo` relies on, checked without its three weeks of data: holding back the cron run that unpausing
would start, a triggered run followed to its end, a run the *scheduler* creates for an Asset event (with the
partition the event carries), and a pending approval answered through the REST API by `demo.answer_approval`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from mlcycle.settings import embedded_environment
from mlcycle_dev.demo import REVIEWER_ANSWER, answer_approval
from mlcycle_dev.demo_airflow import DEMO_AIRFLOW_SETTINGS, StoryClient
from mlcycle_dev.stack import AirflowServices, ServiceError, wait_until

pytestmark = pytest.mark.integration

DAGS = '''
"""One-task airflow DAGs standing in for the demo's: a cron producer, an Asset consumer, an approval."""
import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, dag, task

REQUEST = Asset(name="driver_request")
START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


@dag(dag_id="driver_daily", schedule="@daily", start_date=START, catchup=False)
def driver_daily():
    @task(outlets=[REQUEST])
    def request(outlet_events=None, dag_run=None):
        outlet_events[REQUEST].extra = {"partition": dag_run.conf["partition"], "reason": "test"}

    request()


@dag(dag_id="driver_consumer", schedule=REQUEST, start_date=START, catchup=False)
def driver_consumer():
    @task
    def consume():
        return "consumed"

    consume()


@dag(dag_id="driver_approval", schedule=None, start_date=START, catchup=False)
def driver_approval():
    ApprovalOperator(task_id="approve", subject="Promote v2?", body="gate: needs_manual_review")


driver_daily()
driver_consumer()
driver_approval()
'''
DAG_IDS = ["driver_daily", "driver_consumer", "driver_approval"]
DAY = dt.date(2026, 9, 15)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoryClient]:
    root = tmp_path_factory.mktemp("demo_driver")
    dags = root / "dags"
    dags.mkdir()
    (dags / "driver_dags.py").write_text(DAGS)
    env = {
        **DEMO_AIRFLOW_SETTINGS,
        **os.environ,
        **embedded_environment(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor", "triggerer")) as airflow:
        airflow.wait_for_dags(DAG_IDS, timeout=180)
        yield StoryClient(airflow, answer_approval, run_timeout=180)


def test_held_back_cron_run_is_not_started_and_scheduler_runs_follow(story: StoryClient) -> None:
    airflow = story.airflow
    due = airflow.request("GET", "/api/v2/dags/driver_daily")["next_dagrun_logical_date"]
    assert story.hold_back_todays_runs(DAG_IDS) == [f"driver_daily {due}"]  # the others have no cron
    for dag_id in DAG_IDS:
        airflow.unpause(dag_id)
    with pytest.raises(ServiceError, match="already unpaused"):
        story.hold_back_todays_runs(["driver_daily"])

    produced = story.run("driver_daily", DAY)
    assert (produced.state, produced.run_type, produced.partition) == ("success", "manual", str(DAY))

    consumed = story.scheduled_run("driver_consumer", lambda run: run["run_type"] == "asset_triggered", "consumer")
    assert (consumed.state, consumed.triggered_by, consumed.partition) == ("success", "asset", str(DAY))
    [event] = consumed.consumed_events
    assert event["source_dag_id"] == "driver_daily" and event["source_run_id"] == produced.run_id
    assert consumed.tasks == {"consume": "success"}

    # The scheduler moved past the held-back interval instead of running it...
    wait_until(
        lambda: airflow.request("GET", "/api/v2/dags/driver_daily")["next_dagrun_logical_date"] > due,
        60,
        "driver_daily's next run to move past the held-back interval",
    )
    runs = airflow.request("GET", "/api/v2/dags/driver_daily/dagRuns", params={"limit": 100})["dag_runs"]
    # ...and started no run of it: the held-back run (failed, never run) and the triggered one are all there is.
    assert sorted((r["run_type"], r["state"], r["logical_date"] == due) for r in runs) == [
        ("manual", "failed", True),
        ("manual", "success", False),
    ]
    # Marking the run failed skipped its task before any worker saw it.
    assert airflow.task_states("driver_daily", f"demo_held_back__{due}") == {"request": "skipped"}


def test_pending_approval_is_answered_through_the_rest_api(story: StoryClient) -> None:
    story.airflow.unpause("driver_approval")
    try:
        record = story.run("driver_approval", DAY)
    finally:
        # Paused again: the module's other test holds back the cron runs of DAGs that are still paused (in any order).
        story.airflow.request(
            "PATCH", "/api/v2/dags/driver_approval", {"is_paused": True}, params={"update_mask": "is_paused"}
        )
    assert record.tasks == {"approve": "success"}
    [approval] = record.approvals
    assert approval["request"]["subject"] == "Promote v2?"
    assert approval["answer"]["chosen_options"] == [REVIEWER_ANSWER]
    assert approval["answer"]["responded_by"]["name"] == story.airflow.username
