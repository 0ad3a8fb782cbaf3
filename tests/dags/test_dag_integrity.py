"""DAG integrity over the DagBag: every DAG file parses, cheaply, into well-formed DAGs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from mlcycle.config import UseCase, discover_usecases
from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle.specs.names import DagFamily, Step

HEAVY = (
    "pandas", "numpy", "sklearn", "torch", "mlflow", "great_expectations", "evidently", "pyarrow", "pyspark", "kubernetes",
)  # fmt: skip

# Chosen on purpose per family (see mlcycle.orchestration.dags): one training at a time (two would race for
# @champion), one monitoring run at a time (the retraining policy decides in day order), one manual promotion
# at a time; scoring days are independent of each other.
MAX_ACTIVE_RUNS = {"training": 1, "scoring": 3, "monitoring": 1, "promotion": 1}
# Retries per task: every task retries twice (StepSpec's and the DAG's default), except these, on purpose:
# train once (costly; a second failure is not transient), freshness and manual promotion never (a retry
# would only repeat the same verdict or the same compare-and-set).
DEFAULT_RETRIES = 2
RETRIES = {
    ("training", "train"): 1,
    ("monitoring", "freshness"): 0,
    ("monitoring", "canary"): 0,
    ("promotion", "promote"): 0,
}

PARSE_SCRIPT = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "heavy": heavy, "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Parse the DAG folder in a fresh interpreter, as Airflow's dag processor does."""
    env = {**os.environ, **embedded_environment(tmp_path_factory.mktemp("home"))}
    out = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(REPO_ROOT / "dags"), json.dumps(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_no_import_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}


def test_parsing_loads_no_heavy_library(parsed: dict) -> None:
    assert parsed["heavy"] == [], f"DAG parsing imported {parsed['heavy']}"


def test_four_dags_per_usecase(parsed: dict) -> None:
    assert parsed["dag_ids"] == _dag_ids()


def _dag_ids() -> list[str]:
    return sorted(family.dag_id(u.name) for u in discover_usecases() for family in DagFamily)


@pytest.mark.parametrize("family", list(DagFamily))
@pytest.mark.parametrize("usecase", discover_usecases(), ids=lambda u: u.name)
def test_dag_is_well_formed(dagbag, usecase: UseCase, family: DagFamily) -> None:
    dag = dagbag.dags.get(family.dag_id(usecase.name))
    assert dag is not None
    assert dag.doc_md and len(dag.doc_md) > 40, "doc_md explains the DAG"
    assert {"mlcycle", usecase.name, family} <= set(dag.tags)
    start = usecase.schedule.start_date
    assert dag.start_date == dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC), "static start_date"
    assert dag.catchup is False
    assert dag.max_active_runs == MAX_ACTIVE_RUNS[family]
    assert dag.user_defined_macros and "mlcycle_partition" in dag.user_defined_macros
    dag.topological_sort()  # raises on a cycle
    for task in dag.tasks:
        assert task.owner == usecase.owner, f"{task.task_id}: owner {task.owner!r}, not the use case's"
        expected = RETRIES.get((family, task.task_id), DEFAULT_RETRIES)
        assert task.retries == expected, f"{task.task_id}: retries {task.retries}, expected {expected}"
        assert task.retry_delay == dt.timedelta(minutes=2), f"{task.task_id}: retry_delay {task.retry_delay}"
        if task.task_type in ("LocalStepOperator", "StepPodOperator"):
            assert task.execution_timeout == dt.timedelta(hours=1), f"{task.task_id}: timeout {task.execution_timeout}"


def test_training_runs_on_cron_and_retraining_requests(dagbag) -> None:
    from mlcycle.orchestration.timetables import PartitionedAssetOrCronTimetable

    for usecase in discover_usecases():
        dag = dagbag.dags.get(DagFamily.TRAINING.dag_id(usecase.name))
        assert isinstance(dag.timetable, PartitionedAssetOrCronTimetable)
        assert dag.timetable.partitioned  # a request from a (partitioned) monitoring run reaches it
        monitoring = dagbag.dags.get(DagFamily.MONITORING.dag_id(usecase.name))
        outlets = monitoring.get_task("request_retraining").outlets
        assert [a.name for a in outlets] == [f"{usecase.name}_retraining_request"]
        assert (
            type(dagbag.dags.get(DagFamily.PROMOTION.dag_id(usecase.name)).timetable).__name__ == "NullTimetable"
        )  # manual only


def test_monitoring_runs_on_the_partitions_scoring_produces(dagbag) -> None:
    from airflow.sdk import PartitionedAssetTimetable
    from airflow.timetables.trigger import CronPartitionTimetable

    for usecase in discover_usecases():
        scoring = dagbag.dags.get(DagFamily.SCORING.dag_id(usecase.name))
        monitoring = dagbag.dags.get(DagFamily.MONITORING.dag_id(usecase.name))
        assert isinstance(scoring.timetable, CronPartitionTimetable)
        assert isinstance(monitoring.timetable, PartitionedAssetTimetable)
        produced = [a.name for a in scoring.get_task(Step.SCORE.value).outlets]
        assert produced == [f"{usecase.name}_predictions"]
        assert monitoring.timetable.asset_condition.name == produced[0]


def test_promotion_dag_has_a_params_form(dagbag) -> None:
    for usecase in discover_usecases():
        params = dagbag.dags.get(DagFamily.PROMOTION.dag_id(usecase.name)).params
        assert {"action", "version", "approver", "reason"} <= set(params.keys())
        assert params.get_param("action").schema["enum"] == ["promote", "rollback"]
