"""An `engine: spark` YarnIt copy through a real Airflow scheduler: training, scoring and monitoring (issue 17).

The story of `make demo-spark` (mlcycle_dev.demo_spark.tell_story) on the fewest days the split allows: five
days of landing data, `yarnit_training` for the fifth (its validate on Spark), `yarnit_scoring` for the sixth
(validate --serving and score on Spark; the day is a heatwave) and the monitoring run the scheduler starts for it
(the drift statistics on Spark). Four Spark step processes in all, so four JVM starts. Then the local engine runs
the same four steps on the same store, in-process, and both engines' results must agree: the validation
verdicts and rows, the scoring figures with identical prediction ids and decisions and scores within 1e-9, the
drift verdicts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import USECASES_ENV
from mlcycle.settings import embedded_environment
from mlcycle.specs.names import Step
from mlcycle_dev.demo import answer_approval
from mlcycle_dev.demo_airflow import DEMO_AIRFLOW_SETTINGS, StoryClient
from mlcycle_dev.demo_spark import (
    MONITORING,
    RUN_TIMEOUT_S,
    SCORING,
    TRAINING,
    StepRun,
    compare,
    local_engine_env,
    local_engine_results,
    snapshot_predictions,
    spark_usecases,
    tell_story,
)
from mlcycle_dev.stack.airflow import AirflowServices
from support.cli import run
from support.usecases import lenient_usecases, without_cron_runs

pytestmark = pytest.mark.integration

FIRST, TRAINED, DAY = dt.date(2026, 9, 1), dt.date(2026, 9, 5), dt.date(2026, 9, 6)
ROWS = 700


Story = tuple[list[StepRun], Path, Path, dict[str, Any]]


def _spark_outputs(runs: list[StepRun]) -> dict[str, Any]:
    """What the Spark steps committed, read before the local engine rewrites those partitions (pytest-randomly may
    run the local-engine test first; it validates, scores and monitors the same days in the same store): the
    scoring run's `_SUCCESS` markers by output name, and whether the monitor wrote Spark's aggregates."""
    results = {(r.dag_id, r.task): r.result for r in runs if r.result is not None}
    folders = {
        "validated": results[(SCORING, Step.VALIDATE)]["outputs"]["validated"],
        "predictions": results[(SCORING, Step.SCORE)]["outputs"]["predictions"],
    }
    markers: dict[str, Any] = {name: json.loads((Path(f) / "_SUCCESS").read_text()) for name, f in folders.items()}
    monitoring = Path(results[(MONITORING, Step.MONITOR)]["outputs"]["monitoring"])
    return {**markers, "statistics": (monitoring / "statistics.json").is_file()}


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """(the Spark tasks of the three DAG runs, the store's home, the local-engine use cases folder, the scoring
    steps' committed outputs)."""
    home = tmp_path_factory.mktemp("sparkflow")
    local = without_cron_runs(lenient_usecases(home / "local"))
    spark = spark_usecases(local, home / "spark")
    env = {**os.environ, **embedded_environment(home), USECASES_ENV: str(spark)}
    generate = [str(Path(sys.executable).parent / "mlcycle"), "generate", "--usecase", "yarnit"]
    generate += ["--start", str(FIRST), "--end", str(DAY), "--rows", str(ROWS), "--scenario", f"covariate_shift:{DAY}"]
    subprocess.run(generate, env=env, check=True, capture_output=True)
    components = ("api-server", "scheduler", "dag-processor")
    with AirflowServices({**DEMO_AIRFLOW_SETTINGS, **env}, components=components) as airflow:
        airflow.wait_for_dags([TRAINING, SCORING, MONITORING], timeout=180)
        for dag_id in (TRAINING, SCORING, MONITORING):
            airflow.unpause(dag_id)
        runs = tell_story(StoryClient(airflow, answer_approval, run_timeout=RUN_TIMEOUT_S), TRAINED, [DAY])
    return runs, home, local, _spark_outputs(runs)


def test_each_spark_step_ran_on_spark_through_airflow(story: Story) -> None:
    runs, _, _, outputs = story
    assert [(r.dag_id, r.task, r.partition) for r in runs] == [
        (TRAINING, Step.VALIDATE, str(TRAINED)),
        (SCORING, Step.VALIDATE, str(DAY)),
        (SCORING, Step.SCORE, str(DAY)),
        (MONITORING, Step.MONITOR, str(DAY)),
    ]
    assert [(r.state, r.engine) for r in runs] == [("success", "spark")] * 4
    by_task = {(r.dag_id, r.task): r.result for r in runs if r.result is not None}
    trained = by_task[(TRAINING, Step.VALIDATE)]["metrics"]
    assert trained["passed"] == [str(FIRST + dt.timedelta(days=n)) for n in range(5)], trained
    served = by_task[(SCORING, Step.VALIDATE)]["metrics"]
    scored = by_task[(SCORING, Step.SCORE)]
    assert served["passed"] == [str(DAY)] and served["profile"] == "serving"
    assert served["summary"]["success"] is True and served["summary"]["evaluated"] > 0
    validated = outputs["validated"]
    assert validated["engine"] == "spark"
    assert scored["metrics"]["rows"] == validated["rows"] > 0
    assert outputs["predictions"]["engine"] == "spark"
    monitored = by_task[(MONITORING, Step.MONITOR)]
    assert monitored["metrics"]["dataset_drift"] is True, "the heatwave day drifts"
    assert outputs["statistics"], "Spark's aggregates"


def test_the_local_engine_agrees_on_the_same_partitions(
    story: Story, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, home, local_usecases, _ = story

    def in_process(argv: list[str], env: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            return run(capsys, *argv)

    spark_predictions = snapshot_predictions(runs)
    local = local_engine_results(local_engine_env(home, local_usecases), TRAINED, [DAY], runner=in_process)
    comparisons = compare(runs, local, spark_predictions)

    for item in comparisons:
        assert item.spark_figures == item.local_figures, (item.spark.dag_id, item.spark.task)
    (scoring,) = [c for c in comparisons if c.spark.task == Step.SCORE]
    assert [p.output for p in scoring.predictions] == ["predictions"], "one champion, no shadow yet"
    (champion,) = scoring.predictions
    assert champion.rows > 0 and champion.same_ids and champion.same_decisions
    assert champion.max_score_difference <= 1e-9
    assert all(c.agrees for c in comparisons)
