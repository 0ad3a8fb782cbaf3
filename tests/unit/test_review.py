"""The training run's human review (issue 14 item 3), piece by piece: the DAG's wiring, the review task's
settings from usecase.yaml, what the reviewer reads, how an answer becomes `promote`'s options, and the
REST client's labels. The scheduler-driven run is tests/integration/test_approval.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jinja2
import pytest
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException
from pydantic import ValidationError

from mlcycle import airflow_api
from mlcycle.config import Approval, get_usecase
from mlcycle.orchestration.approval import CandidateReview, review_answer, review_body, review_form, review_template
from mlcycle.orchestration.dags import training_dag
from mlcycle.specs.names import REVIEW_TASK
from mlcycle.specs.results import EvaluateResult

USER = {"id": "7", "name": "ana"}


def evaluate_result(decision: str = "needs_manual_review", experiment: str = "4") -> dict[str, Any]:
    return EvaluateResult.of(
        "evaluate",
        "yarnit",
        "2026-09-08",
        outputs={
            "decision": "/data/yarnit/evaluation/ds=2026-09-08/v2",
            "mlflow_run_id": "c0ffee",
            "mlflow_experiment_id": experiment,
        },
        metrics={
            "decision": decision,
            "candidate_version": "2",
            "champion_version": "1",
            "compute": {"mode": "soft", "factor": 2.0, "regressions": []},
            "metric": "roc_auc",
            "candidate": 0.99912,
            "champion": 0.71,
            "checks": {"floor": True, "slices": True},
            "reasons": [
                "possible leakage: roc_auc=0.9991 >= 0.98",
                "implausibly large change: roc_auc 0.7100 -> 0.9991",
            ],
            "slices": {"country=DE": {"candidate": 0.998, "champion": 0.702}},
        },
    ).to_dict()


class FakeTI:
    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcoms.get(task_ids)


def test_the_review_sits_between_evaluate_and_promote_and_a_skipped_review_does_not_skip_promote() -> None:
    dag = training_dag(get_usecase("yarnit"))
    review, promote = dag.get_task(REVIEW_TASK), dag.get_task("promote")
    assert review.upstream_task_ids == {"evaluate"}
    assert promote.upstream_task_ids == {"evaluate", REVIEW_TASK}
    assert promote.trigger_rule == "none_failed_min_one_success"
    assert (review.options, review.defaults, review.multiple) == (["Approve", "Reject"], ["Reject"], False)
    assert review.response_timeout == dt.timedelta(hours=48)
    assert list(review.serialized_params) == ["comment"], "the form holds the reviewer's reason only"


def test_the_timeout_and_its_answer_come_from_usecase_yaml() -> None:
    usecase = get_usecase("yarnit")
    usecase = usecase.model_copy(update={"approval": Approval(timeout="30m", on_timeout="approve")})
    review = CandidateReview(task_id="r", usecase=usecase, params=review_form())
    assert (review.response_timeout, review.defaults) == (dt.timedelta(minutes=30), ["Approve"])
    with pytest.raises(ValidationError, match="not a positive duration"):
        Approval(timeout="0s")


def test_the_review_skips_itself_when_the_gate_decided_alone() -> None:
    review = CandidateReview(task_id="r", usecase=get_usecase("yarnit"), params=review_form())
    with pytest.raises(AirflowSkipException, match="the gate decided 'promote' on its own"):
        review.execute({"ti": FakeTI({"evaluate": evaluate_result("promote")})})


def test_the_reviewer_reads_the_decision_record_with_links() -> None:
    body = review_body(
        EvaluateResult.model_validate(evaluate_result()), "http://mlflow:5000", timeout="2 days", default="Reject"
    )
    assert "version **2** of `yarnit` replaces @champion version **1**" in body
    assert "- possible leakage: roc_auc=0.9991 >= 0.98" in body and "- implausibly large change" in body
    assert "| frozen test set | 0.9991 | 0.7100 |" in body
    assert "| slice `country=DE` | 0.9980 | 0.7020 |" in body
    assert "[MLflow run](http://mlflow:5000/#/experiments/4/runs/c0ffee)" in body
    assert "[Model card](http://mlflow:5000/#/experiments/4/runs/c0ffee/artifacts/model_card.md)" in body
    assert "No answer within 2 days: Reject." in body
    # Without the experiment (a result from before it was recorded) the card's artifact route cannot be built.
    older = review_body(
        EvaluateResult.model_validate(evaluate_result(experiment="")), "http://m", timeout="1h", default="Reject"
    )
    assert "[MLflow run](http://m/#/runs/c0ffee)" in older and "Model card" not in older


@pytest.mark.parametrize(
    ("answer", "timed_out", "expected"),
    [
        (
            {"chosen_options": ["Approve"], "responded_by_user": USER, "params_input": {"comment": "ok"}},
            False,
            {"review": "approved", "reviewer": "ana", "reason": "ok"},
        ),
        (
            {"chosen_options": ["Reject"], "responded_by_user": USER, "params_input": {}},
            False,
            {"review": "rejected", "reviewer": "ana", "reason": ""},
        ),
        # The scheduler's timeout sweep answers with the default and no user.
        (
            {"chosen_options": ["Reject"], "responded_by_user": None, "params_input": {"comment": ""}},
            True,
            {"review": "timed_out", "reviewer": "", "reason": ""},
        ),
        (
            {"chosen_options": ["Approve"], "responded_by_user": None, "params_input": {}},
            False,
            {"review": "timed_out", "reviewer": "", "reason": ""},
        ),
    ],
)
def test_an_answer_becomes_the_review_promote_applies(
    answer: dict[str, Any], timed_out: bool, expected: dict[str, str]
) -> None:
    assert review_answer(answer, timed_out=timed_out) == expected


def test_promotes_review_options_render_empty_when_the_review_was_skipped() -> None:
    def render(key: str, xcom: Any) -> str:
        return jinja2.Template(review_template(key).text).render(ti=FakeTI({REVIEW_TASK: xcom}))

    answer = {"chosen_options": ["Approve"], "review": "approved", "reviewer": "ana", "reason": "ok"}
    assert [render(k, answer) for k in ("review", "reviewer", "reason")] == ["approved", "ana", "ok"]
    assert [render(k, None) for k in ("review", "reviewer", "reason")] == ["", "", ""]
    with pytest.raises(KeyError, match="has no 'approver'"):
        review_template("approver")


def test_the_rest_client_answers_with_the_operators_labels() -> None:
    assert (airflow_api.APPROVE, airflow_api.REJECT) == (ApprovalOperator.APPROVE, ApprovalOperator.REJECT)


class FakeAirflow:
    """Airflow as `answer_pending_approval` sees it, losing the first answer to the 3.3.2 race it works around:
    the task goes up_for_retry and its retry asks again; the second answer is taken."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, list[str], dict[str, Any]]] = []
        self.try_number = 1

    def pending_approvals(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        if len(self.answers) >= self.try_number:
            return []
        ti = {"dag_id": "yarnit_training", "dag_run_id": "r1", "task_id": REVIEW_TASK, "map_index": -1}
        return [{"task_instance": {**ti, "try_number": self.try_number}, "params": {"comment": {"value": ""}}}]

    def respond(
        self, dag_id: str, run_id: str, task_id: str, chosen: list[str], form: dict[str, Any], map_index: int
    ) -> dict[str, Any]:
        self.answers.append((task_id, chosen, form))
        return {"responded_by": {"id": "1", "name": "admin"}, "chosen_options": chosen}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        if len(self.answers) == 1:
            self.try_number = 2  # the first answer was lost: the retry waits again
            return {REVIEW_TASK: "up_for_retry"}
        return {REVIEW_TASK: "success"}


def test_an_answer_airflow_lost_is_given_again_until_the_task_takes_it() -> None:
    fake = FakeAirflow()
    answered = airflow_api.answer_pending_approval(
        fake,  # type: ignore[arg-type]
        "yarnit_training",
        approve=False,
        reason="leaks the label",
        timeout=30,
        poll=0,
        settle=0,
    )
    assert fake.answers == [(REVIEW_TASK, ["Reject"], {"comment": "leaks the label"})] * 2
    assert answered["task_instance"]["try_number"] == 2 and answered["response"]["chosen_options"] == ["Reject"]


def test_no_pending_approval_is_a_timeout_naming_what_was_looked_for() -> None:
    fake = FakeAirflow()
    fake.answers = [("x", [], {})]  # nothing pending
    with pytest.raises(TimeoutError, match=r"approval of yarnit_training .* not waiting for an answer"):
        airflow_api.answer_pending_approval(fake, "yarnit_training", approve=True, reason="ok", timeout=0.2, poll=0.05)  # type: ignore[arg-type]
