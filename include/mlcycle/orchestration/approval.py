"""The human review of a gate decision that needs a person: an Airflow human-in-the-loop task in the training run.

When `evaluate` decides `needs_manual_review` (possible leakage, a jump larger than `max_change`), the training
run's `review_candidate` task asks for an answer in the Airflow UI (the run's "Required actions"): its body is
the decision record (metric vs champion, slices, checks, the reasons, links to the MLflow run and the model
card). "Approve" lets `promote` move `@champion` by the same compare-and-set as the gate, with the responding
user recorded as the approver; "Reject", or no answer within the use case's `approval.timeout` (the scheduler
then applies `approval.on_timeout`, "reject" by default), leaves the version `@challenger`, the answer recorded
on it. When the gate decided `promote` or `reject` the review skips itself and `promote` applies the decision.

On Airflow 3.3 the task waits in the `awaiting_input` state: no worker slot, no triggerer; an answer through
the UI or `PATCH .../hitlDetails` (`mlcycle.airflow_api`) resumes it. Only Airflow, the standard library and
pydantic are imported here (DAG parse time).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from mlcycle.config import UseCase
from mlcycle.orchestration.links import mlflow_ui_url, run_url
from mlcycle.orchestration.macros import mlcycle_result
from mlcycle.specs.names import REVIEW_TASK, ModelRole, Review, Step
from mlcycle.specs.options import Template
from mlcycle.specs.results import EvaluateResult

APPROVE, REJECT = ApprovalOperator.APPROVE, ApprovalOperator.REJECT
#: The review form's one field: the reviewer's reason, recorded on the version.
COMMENT = "comment"
#: The keys of the review's answer (its `return_value` XCom, next to Airflow's own) that `promote` reads.
ANSWER_KEYS = ("review", "reviewer", "reason")
NEEDS_REVIEW = "needs_manual_review"


def review_form() -> dict[str, Param]:
    """The review's form (its `params`; passed by the caller, as Airflow merges a task's params at construction)."""
    return {
        COMMENT: Param(
            "", type="string", title="Reason", description="Why you approve or reject (recorded on the version)."
        )
    }


class CandidateReview(HITLOperator):
    """Approve or reject a candidate the gate flagged for a person; skipped when the gate decided alone.

    Build it with `params=review_form()`.
    """

    def __init__(self, *, usecase: UseCase, **kwargs: Any) -> None:
        approval = usecase.approval
        self.timeout_answer = APPROVE if approval.on_timeout == "approve" else REJECT
        super().__init__(
            subject=f"{usecase.name}: review the candidate model the gate flagged",
            options=[APPROVE, REJECT],
            defaults=[self.timeout_answer],
            multiple=False,
            response_timeout=approval.timeout,
            doc_md=(
                "Human review of a `needs_manual_review` gate decision (skipped otherwise). Approve: `promote` moves "
                f"@champion to the candidate, with you recorded as the approver. Reject, or no answer within "
                f"{approval.timeout} (then: {approval.on_timeout}): the version stays @challenger."
            ),
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        result = mlcycle_result(context["ti"], Step.EVALUATE.value)
        assert isinstance(result, EvaluateResult)  # mlcycle_result validates into the step's result model
        decision = result.metrics.decision
        if decision != NEEDS_REVIEW:
            raise AirflowSkipException(f"the gate decided {decision!r} on its own: no review needed")
        metrics = result.metrics.model_dump()
        self.subject = (
            f"{result.usecase}: promote version {metrics['candidate_version']} to @{ModelRole.CHAMPION}? "
            f"The gate asks a person ({'; '.join(metrics.get('reasons') or [])[:200]})"
        )
        self.body = review_body(
            result, mlflow_ui_url(), timeout=str(self.response_timeout), default=self.timeout_answer
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        answer = super().execute_complete(context=context, event=event)
        return {**answer, **review_answer(answer, timed_out=bool(event.get("timedout")))}


def review_answer(answer: dict[str, Any], *, timed_out: bool = False) -> dict[str, str]:
    """What `promote` needs of a HITL answer: the review (`Review`), who gave it (the responding user's name;
    "" when the timeout default answered) and the reason typed in the form."""
    user = answer.get("responded_by_user")
    comment = str((answer.get("params_input") or {}).get(COMMENT) or "")
    if timed_out or not user:
        return {"review": Review.TIMED_OUT.value, "reviewer": "", "reason": comment}
    review = Review.APPROVED if answer["chosen_options"] == [APPROVE] else Review.REJECTED
    return {"review": review.value, "reviewer": str(user.get("name") or user.get("id") or ""), "reason": comment}


def review_template(key: str) -> Template:
    """A template of one key of the review's answer for `promote`'s options ("" when the review was skipped)."""
    if key not in ANSWER_KEYS:
        raise KeyError(f"the review's answer has no {key!r}; it has {list(ANSWER_KEYS)}")
    return Template(f"{{{{ (ti.xcom_pull(task_ids='{REVIEW_TASK}') or {{}}).get('{key}', '') }}}}")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def review_body(result: EvaluateResult, mlflow_url: str, *, timeout: str, default: str) -> str:
    """The decision record as the reviewer reads it (Markdown): why the gate asks, the metric against the champion,
    each slice, the checks, and links to the MLflow run, the model card and the record itself."""
    metrics = result.metrics.model_dump()
    candidate, champion = metrics["candidate_version"], metrics.get("champion_version")
    metric = metrics.get("metric", "metric")
    lines = [
        f"The gate asks a person before version **{candidate}** of `{result.usecase}` replaces "
        + (f"@champion version **{champion}**." if champion else "@champion (there is none yet)."),
        "",
        "**Why the gate asks**",
        *(f"- {reason}" for reason in metrics.get("reasons") or []),
        "",
        f"| {metric} | candidate v{candidate} | champion " + (f"v{champion}" if champion else "-") + " |",
        "|---|---|---|",
        f"| frozen test set | {_number(metrics.get('candidate'))} | {_number(metrics.get('champion'))} |",
    ]
    for name, values in (metrics.get("slices") or {}).items():
        lines.append(f"| slice `{name}` | {_number(values.get('candidate'))} | {_number(values.get('champion'))} |")
    checks = metrics.get("checks") or {}
    if checks:
        lines += [
            "",
            "**Checks**: " + ", ".join(f"{name} {'passed' if ok else 'FAILED'}" for name, ok in checks.items()),
        ]
    links = []
    run = run_url(result.model_dump(), mlflow_url)
    if run:
        links.append(f"[MLflow run]({run})")
        if result.mlflow_experiment_id:
            links.append(f"[Model card]({run}/artifacts/model_card.md)")
    links.append(f"decision record `{result.decision_uri}`")
    lines += [
        "",
        "**Evidence**: " + " · ".join(links),
        "",
        f"**{APPROVE}**: promote to @champion (compare-and-set: only if @champion is still "
        + (f"version {champion}" if champion else "unset")
        + f"), you recorded as the approver. **{REJECT}**: the version stays @challenger. "
        f"No answer within {timeout}: {default}.",
    ]
    return "\n".join(lines)
