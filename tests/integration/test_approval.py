"""Human approval of a flagged candidate, through the real scheduler (issue 14 item 3).

The test use case's gate flags every candidate as possible leakage (`leakage_threshold: 0`) and lets every
other check pass, so each training run ends in `needs_manual_review`. The first run waits in `awaiting_input`
until a reviewer's client approves through the REST API; `promote` then moves @champion with that user recorded
as the approver. The second run (a new version: cache off) gets no answer: once `approval.timeout` (shortened
in usecase.yaml between the runs) passes, the scheduler applies the default, reject, and the version stays
@challenger with the timeout recorded. The champion never holds @challenger.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.airflow_api import answer_pending_approval
from mlcycle.config import USECASES_ENV
from mlcycle.settings import embedded_environment
from mlcycle.specs.names import REVIEW_TASK
from mlcycle_dev.stack.airflow import AirflowServices
from mlcycle_dev.stack.process import wait_until
from support.usecases import lenient_usecases

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DAY = "2026-09-08"
DAG = "yarnit_training"
# The first run's review waits this long; the answer comes as soon as it waits, so it never times out.
LONG, SHORT = "2h", "3s"


def _set_review(config: Path, timeout: str) -> None:
    """The gate flags every candidate and passes every other check; the review waits `timeout`."""
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    data["thresholds"]["gate"].update(
        leakage_threshold=0.0, min_metric=0.0, min_improvement=-1.0, baseline_hurdle=-1.0, slice_tolerance=1.0
    )
    data["approval"] = {"timeout": timeout, "on_timeout": "reject"}
    data["model"] = {"family": "sklearn_logreg", "seed": 42}  # seconds to fit: the test is about the review
    config.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowServices, Path]]:
    home = tmp_path_factory.mktemp("approval")
    config = lenient_usecases(home) / "yarnit" / "usecase.yaml"
    _set_review(config, LONG)
    env = {
        **os.environ,
        **embedded_environment(home),
        USECASES_ENV: str(config.parent.parent),
        # Only the runs this test triggers: no scheduled run for "today" when the DAG is unpaused.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # The second run needs the shortened timeout: re-parse the DAG file soon after usecase.yaml changes.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
    }
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", DAY]
    subprocess.run([*generate, "--rows", "600"], env=env, check=True, capture_output=True)
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)  # the registry look-ups below read the services' MLflow store
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as af:
        af.wait_for_dags([DAG], timeout=180)
        af.unpause(DAG)
        yield af, config
    mp.undo()


def _registry() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _aliases() -> dict[str, str]:
    return {a: str(v) for a, v in _registry().get_registered_model("yarnit_model").aliases.items()}


def test_an_approval_promotes_a_flagged_candidate_and_a_timeout_leaves_it_challenger(
    services: tuple[AirflowServices, Path],
) -> None:
    af, config = services
    first = af.trigger(DAG, conf={"partition": DAY, "reason": "approval test"})["dag_run_id"]

    # The run waits for a person: the review is awaiting input and promote has not run.
    pending = wait_until(lambda: af.pending_approvals(DAG, first), 900, "the first run's review to wait for input")
    assert [p["task_instance"]["task_id"] for p in pending] == [REVIEW_TASK]
    assert af.task_states(DAG, first)["promote"] in (None, "none"), af.task_states(DAG, first)
    body = pending[0]["body"]
    assert "possible leakage" in body and "[MLflow run](" in body and "[Model card](" in body, body

    answered = answer_pending_approval(af, DAG, run_id=first, approve=True, reason="leakage checked: legitimate")
    assert answered["response"]["responded_by"]["name"] == af.username
    assert af.wait_for_run(DAG, first, timeout=600) == "success", af.task_states(DAG, first)
    assert af.task_states(DAG, first)["promote"] == "success"
    assert _aliases() == {"champion": "1"}, "the promoted version must not keep @challenger"
    tags = _registry().get_model_version("yarnit_model", "1").tags
    assert (tags["mlcycle.approver"], tags["mlcycle.review"], tags["mlcycle.promoted_by"]) == (
        af.username,
        "approved",
        "review",
    )
    assert tags["mlcycle.reason"] == "leakage checked: legitimate"

    # Shorten the timeout; the next run starts once the scheduler's copy of the DAG has it.
    _set_review(config, SHORT)
    wait_until(
        lambda: "0:00:03" in (af.request("GET", f"/api/v2/dags/{DAG}/tasks/{REVIEW_TASK}").get("doc_md") or ""),
        300,
        "the DAG re-parsed with the shortened review timeout",
    )
    second = af.trigger(DAG, conf={"partition": DAY, "no_cache": True, "reason": "timeout test"})["dag_run_id"]
    assert af.wait_for_run(DAG, second, timeout=900) == "success", af.task_states(DAG, second)
    states = af.task_states(DAG, second)
    assert (states[REVIEW_TASK], states["promote"]) == ("success", "skipped"), states
    assert _aliases() == {"champion": "1", "challenger": "2"}
    tags = _registry().get_model_version("yarnit_model", "2").tags
    assert (tags["mlcycle.review"], tags["mlcycle.reviewed_by"]) == ("timed_out", "")
    assert "mlcycle.approver" not in tags
