"""Airflow 3's four services on a throw-away embedded environment: health, login, a run and a backfill through the
scheduler, and a stop that leaves no process behind.

The DAGs folder is a temporary copy of the repository's DAG files plus two one-task DAGs, so the runs here are
quick and need no model; the yarnit DAGs are only parsed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle_dev.stack import COMPONENTS, AirflowAPIError, AirflowServices, ServiceError, wait_until
from mlcycle_dev.stack.process import start_ticks

pytestmark = pytest.mark.integration

YARNIT_DAGS = ["yarnit_training", "yarnit_scoring", "yarnit_monitoring", "yarnit_promotion"]

SMOKE_DAGS = """
import datetime as dt

from airflow.sdk import dag, task


@task
def hello(**context) -> str:
    return f"hello from {context['run_id']}"


@dag(dag_id="stack_smoke", schedule=None, start_date=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), catchup=False)
def stack_smoke():
    hello()


@dag(dag_id="stack_daily", schedule="@daily", start_date=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), catchup=False)
def stack_daily():
    hello()


stack_smoke()
stack_daily()
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    root = tmp_path_factory.mktemp("stack")
    dags = root / "dags"
    dags.mkdir()
    for dag_file in (REPO_ROOT / "dags").glob("*.py"):
        shutil.copy(dag_file, dags / dag_file.name)
    (dags / "stack_smoke.py").write_text(SMOKE_DAGS)
    # "airflow" and "dag" must appear in the file, or [core] dag_discovery_safe_mode skips it unparsed.
    (dags / "stack_broken.py").write_text(
        '"""An airflow DAG file that fails."""\nraise RuntimeError("broken on purpose")\n'
    )
    env = {
        **os.environ,
        **embedded_environment(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # Only the runs the tests create: unpausing a scheduled DAG would otherwise make the scheduler create
        # today's run at the moment a backfill creates its runs, and on SQLite the two writers can collide
        # (the scheduler then dies on a StaleDataError on dag_run), whichever test happens to come first.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    with AirflowServices(env, components=COMPONENTS) as services:
        yield services
        # Checked here, not in a test, so that it holds whatever order the tests ran in: stopping leaves no
        # process of any component behind (a failure here is reported as an error of the module's last test).
        pids = services.members()
        assert len(pids) >= len(COMPONENTS)
        assert services.stop() == {}
        assert [pid for pid in pids if _alive(pid)] == []
        assert services.members() == []


def test_every_component_is_healthy_and_the_dags_are_parsed(airflow: AirflowServices) -> None:
    health = airflow.health()
    assert health["metadatabase"]["status"] == "healthy"
    for key in ("scheduler", "dag_processor", "triggerer"):
        assert health[key]["status"] == "healthy", health
    airflow.wait_for_dags([*YARNIT_DAGS, "stack_smoke", "stack_daily"], timeout=180)
    logs = Path(airflow.env["AIRFLOW_HOME"]) / "logs" / "services"
    assert {f"{c}.log" for c in COMPONENTS} <= {p.name for p in logs.iterdir()}


def test_waiting_for_a_dag_that_does_not_parse_shows_the_import_error(airflow: AirflowServices) -> None:
    wait_until(lambda: "broken on purpose" in airflow.import_errors(), 120, "the import error of stack_broken.py")
    with pytest.raises(ServiceError, match=r"(?s)stack_broken.py.*broken on purpose"):
        airflow.wait_for_dags(["stack_broken"], timeout=1)


def test_the_api_wants_a_login(airflow: AirflowServices) -> None:
    with pytest.raises(AirflowAPIError) as anonymous:
        airflow.request("GET", "/api/v2/dags", auth=False)
    assert anonymous.value.status in (401, 403)
    with pytest.raises(AirflowAPIError) as wrong_password:
        airflow.request("POST", "/auth/token", {"username": airflow.username, "password": "wrong"}, auth=False)
    assert wrong_password.value.status == 401
    assert airflow.request("GET", "/api/v2/dags", params={"limit": 1})["total_entries"] >= 1


def test_a_triggered_run_succeeds_through_the_scheduler(airflow: AirflowServices) -> None:
    airflow.wait_for_dags(["stack_smoke"], timeout=180)
    airflow.unpause("stack_smoke")
    run_id = airflow.trigger("stack_smoke", conf={"reason": "stack test"}, run_id="stack-test-1")["dag_run_id"]

    assert airflow.wait_for_run("stack_smoke", run_id, timeout=240) == "success"
    assert airflow.task_states("stack_smoke", run_id) == {"hello": "success"}
    run = airflow.dag_run("stack_smoke", run_id)
    assert run["conf"] == {"reason": "stack test"}
    assert run["run_type"] == "manual"


def test_a_backfill_runs_each_day(airflow: AirflowServices) -> None:
    airflow.wait_for_dags(["stack_daily"], timeout=180)
    airflow.unpause("stack_daily")  # the scheduler leaves the runs of a paused DAG queued
    backfill = airflow.create_backfill("stack_daily", dt.date(2026, 9, 1), dt.date(2026, 9, 3))

    runs = airflow.wait_for_backfill(backfill["id"], timeout=300)

    assert [run["logical_date"][:10] for run in runs] == ["2026-09-01", "2026-09-02", "2026-09-03"]
    assert {run["state"] for run in runs} == {"success"}
    assert {run["run_type"] for run in runs} == {"backfill"}


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    return start_ticks(pid) is not None
