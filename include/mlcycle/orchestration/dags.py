"""The DAG factory: the four DAGs of every use case, built from its `usecase.yaml`.

`<usecase>_training`   nightly cron, and on every retraining request (Asset event); partition key = the day
`<usecase>_scoring`    daily cron, partition key D: ingest -> validate -> score with @champion (+ shadow @challenger)
                       -> the `predictions` Asset's partition D
`<usecase>_monitoring` when predictions D exist (partition key D): Evidently drift/performance + freshness ->
                       policy branch: retrain | notify | nothing
`<usecase>_promotion`  manual, Params form: promote a reviewed version or roll back

Only Airflow, the standard library, pydantic and yaml are imported here: this runs at every parse.

One broken `usecase.yaml` must not take every use case's DAGs down. Airflow records import errors per DAG
file, and marks every DAG of a file with an import error stale (hidden, never scheduled), so the DAG files of
the four families build the DAGs of the use cases that load (`loadable_usecases`) and skip the others, and one
more DAG file, `dags/usecase_errors.py`, defines no DAG and fails to import, naming every broken file
(`raise_for_broken_usecases`): the Import errors list of the UI shows them, the others keep their DAGs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator, Param, PartitionedAssetTimetable, TriggerRule, chain, task
from airflow.sdk.api.datamodels._generated import DagRunType

from mlcycle.config import UseCase, UseCaseConfigError, discover
from mlcycle.orchestration.alerts import ComputeRegressionAlert, FailureAlert, build_message, send
from mlcycle.orchestration.approval import CandidateReview, review_form, review_template
from mlcycle.orchestration.deadlines import dag_deadline
from mlcycle.orchestration.factory import step_operator
from mlcycle.orchestration.macros import MACROS, upstream
from mlcycle.orchestration.spec import StepSpec
from mlcycle.orchestration.timetables import PartitionedAssetOrCronTimetable, daily_partitions
from mlcycle.orchestration.waiting import wait_for_landing
from mlcycle.retraining import request_asset_name, request_asset_uri, request_partitions, retraining_decision
from mlcycle.specs.catalog import (
    EvaluateOptions,
    IngestOptions,
    PromoteOptions,
    TrainOptions,
    ValidateOptions,
)
from mlcycle.specs.names import MAX_ACTIVE_RUNS, REVIEW_TASK, DagFamily, Runbook, Step
from mlcycle.specs.options import Template

DOCS = "https://github.com/mlcycle/mlcycle/blob/main/docs"


def loadable_usecases() -> list[UseCase]:
    """The use cases whose files load; each broken one is reported by `raise_for_broken_usecases`."""
    return discover().usecases


class BrokenUseCasesError(UseCaseConfigError):
    """One or more use cases do not load: one line per broken file, each naming the file and the field."""


def raise_for_broken_usecases() -> None:
    """Raise naming every use case that does not load (the import error of `dags/usecase_errors.py`)."""
    errors = discover().errors
    if errors:
        lines = "\n".join(f"- {error}" for error in errors)
        raise BrokenUseCasesError(
            f"{len(errors)} use case(s) cannot be loaded; their DAGs are missing until the files are fixed "
            f"(every other use case keeps its DAGs):\n{lines}"
        )


def retraining_asset(usecase: UseCase) -> Asset:
    """The Asset the monitoring DAG updates to request a retrain and the training DAG is scheduled on."""
    return Asset(name=request_asset_name(usecase.name), uri=request_asset_uri(usecase.name))


def predictions_asset(usecase: UseCase) -> Asset:
    """The Asset whose partition D the scoring DAG's score task produces; the monitoring DAG runs on it."""
    return Asset(name=f"{usecase.name}_predictions", uri=f"mlcycle://{usecase.name}/predictions")


def _dag(usecase: UseCase, family: DagFamily, schedule: Any, doc: str, **kwargs: Any) -> DAG:
    start = usecase.schedule.start_date
    return DAG(
        dag_id=family.dag_id(usecase.name),
        description=f"{usecase.name}: {doc.splitlines()[0]}",
        doc_md=f"## {usecase.name} — {family}\n\n{doc}\n\nUse case: {usecase.description}\n\n"
        f"Config: `include/usecases/{usecase.name}/usecase.yaml` · Docs: [{DOCS}/architecture.md]({DOCS}/architecture.md)",
        schedule=schedule,
        start_date=dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=MAX_ACTIVE_RUNS[family],
        tags=["mlcycle", usecase.name, family.value, *usecase.tags],
        default_args={
            "owner": usecase.owner,
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=2),
            # Final failures only (not retries): one alert per failed task, with its runbook.
            "on_failure_callback": [FailureAlert()],
        },
        user_defined_macros=dict(MACROS),
        # usecase.yaml `deadlines:` (none for this family: None): a run not done by then alerts deadline-missed.
        deadline=dag_deadline(usecase, family),
        **kwargs,
    )


def _partition_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        title="Partition",
        description="Day to process (YYYY-MM-DD). A run with a partition key processes that day: leave this empty "
        "or give the same day. Empty on a run without a key: its logical date, else the day before it was queued.",
    )


def training_dag(usecase: UseCase) -> DAG:
    window = usecase.split.window_days
    with _dag(
        usecase,
        DagFamily.TRAINING,
        PartitionedAssetOrCronTimetable(
            timetable=daily_partitions(usecase.schedule.training), assets=retraining_asset(usecase)
        ),
        "Train a candidate on the window ending at the partition, gate it against @champion, promote if better.\n\n"
        "Runs nightly and whenever the monitoring DAG requests a retrain; the reason is recorded on the MLflow run.",
        params={
            "partition": _partition_param(),
            "reason": Param("", type="string", title="Reason", description="Why this run (recorded in MLflow)."),
            "no_cache": Param(
                False, type="boolean", title="Retrain even if cached", description="Skip the training cache."
            ),
        },
    ) as dag:
        chain(
            wait_for_landing(usecase),
            step_operator(StepSpec(Step.INGEST, usecase, IngestOptions.for_task(lookback=window))),
            step_operator(StepSpec(Step.VALIDATE, usecase, ValidateOptions.for_task(lookback=window))),
            step_operator(StepSpec(Step.FEATURES, usecase)),
            *_tune(usecase),
            step_operator(
                StepSpec(
                    Step.TRAIN,
                    usecase,
                    TrainOptions.for_task(cache=Template("{{ 'off' if params.no_cache else 'on' }}")),
                    retries=1,
                )
            ),
            _gate_and_promote(usecase),
        )
    return dag


def _tune(usecase: UseCase) -> list[BaseOperator]:
    """The tune task between features and train, only for a use case with `model.search` (else none)."""
    search = usecase.model.search
    if search is None:
        return []
    # No fit starts after max_time: the last one (and the logging) gets as long again, at least 10 minutes.
    timeout = search.max_time * 2 + dt.timedelta(minutes=10)
    return [step_operator(StepSpec(Step.TUNE, usecase, timeout=timeout, retries=1))]


def _gate_and_promote(usecase: UseCase) -> BaseOperator:
    """evaluate -> review_candidate (a person, only when the gate asks for one) -> promote; returns evaluate."""
    evaluate = step_operator(
        StepSpec(Step.EVALUATE, usecase, EvaluateOptions.for_task(model_version=upstream(Step.TRAIN, "model_version"))),
        # A computing-performance regression beyond the factor tells people (compute-regression), whatever the gate.
        on_success_callback=[ComputeRegressionAlert()],
    )
    review = CandidateReview(task_id=REVIEW_TASK, usecase=usecase, params=review_form())
    options = PromoteOptions.for_task(
        decision=upstream(Step.EVALUATE, "decision_uri"),
        review=review_template("review"),
        approver=review_template("reviewer"),
        reason=review_template("reason"),
    )
    # A skipped review (the gate decided alone) must not skip promote; a skipped evaluate must.
    promote = step_operator(
        StepSpec(Step.PROMOTE, usecase, options), trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    )
    evaluate >> review >> promote
    evaluate >> promote
    return evaluate


def scoring_dag(usecase: UseCase) -> DAG:
    with _dag(
        usecase,
        DagFamily.SCORING,
        daily_partitions(usecase.schedule.scoring),
        "Ingest and validate the day's data, then score it with the @champion version (resolved once); "
        "the @challenger shadow-scores the same rows into its own, never-served folder.",
        params={"partition": _partition_param()},
    ) as dag:
        chain(
            wait_for_landing(usecase),
            step_operator(StepSpec(Step.INGEST, usecase)),
            step_operator(StepSpec(Step.VALIDATE, usecase, ValidateOptions.for_task(serving=True))),
            # Its success produces predictions D: the scheduler then starts the monitoring run for D.
            step_operator(StepSpec(Step.SCORE, usecase), outlets=[predictions_asset(usecase)]),
        )
    return dag


def _previous_requests(inlet_events: Any, asset: Asset, limit: int = 20) -> list[str]:
    """Partitions of the latest retraining requests: the Asset's own history is the policy's memory."""
    if inlet_events is None:
        return []
    return request_partitions(e.extra for e in inlet_events[asset][-limit:])


def replays_history(dag_run: Any) -> bool:
    """A backfill run, or a run started by what a backfill produced: history is replayed, not acted on.

    A backfilled scoring run's predictions start monitoring runs of run type `asset_triggered`; the Asset
    events they consumed name the backfill run that produced them.
    """
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type)).lower()
    backfill = DagRunType.BACKFILL.value  # also the prefix of a backfill run's id: `backfill__<run after>...`
    if run_type == backfill:
        return True
    events = getattr(dag_run, "consumed_asset_events", None) or []
    return any(str(getattr(event, "source_run_id", "") or "").startswith(f"{backfill}__") for event in events)


def monitoring_dag(usecase: UseCase) -> DAG:
    asset = retraining_asset(usecase)
    policy = usecase.retraining
    canary = "; the shadow canary of the approved @challenger" if usecase.promotion == "shadow_canary" else ""

    with _dag(
        usecase,
        DagFamily.MONITORING,
        PartitionedAssetTimetable(assets=predictions_asset(usecase)),
        "Evidently data drift, prediction drift and (after the label delay) performance of the day against the "
        "champion, and of the shadow challenger on the same rows; weekly, the metric-vs-age staleness curve; a "
        f"freshness check{canary}; then the retraining policy (`{policy.mode}`): request a retrain "
        "(Asset event), notify, or nothing — the decision record is this run's `decide_retraining` XCom.",
        params={
            "partition": _partition_param(),
            "retraining_mode": Param(
                "policy",
                enum=["policy", "notify_only"],
                title="Retraining mode",
                description="`policy`: usecase.yaml decides; `notify_only`: alert but never retrain in this run.",
            ),
        },
    ) as dag:
        monitor = step_operator(StepSpec(Step.MONITOR, usecase))
        # Independent of the drift branch: a stale model alerts whatever the drift says. The weekly staleness
        # measurement (skipped on other days) comes first, so freshness applies the budget measured that day;
        # whatever staleness did, freshness runs (its budget falls back to an older curve or the documented one).
        staleness = step_operator(StepSpec(Step.STALENESS, usecase))
        staleness >> step_operator(StepSpec(Step.FRESHNESS, usecase, retries=0), trigger_rule=TriggerRule.ALL_DONE)
        if usecase.promotion == "shadow_canary":
            # After monitor: the day's shadow comparison is logged before the canary decides on the labelled days.
            monitor >> step_operator(StepSpec(Step.CANARY, usecase, retries=0))

        @task.branch(task_id="decide_retraining", inlets=[asset])
        def decide(ti: Any = None, params: Any = None, dag_run: Any = None, inlet_events: Any = None) -> str:
            override = (params or {}).get("retraining_mode")
            decision = retraining_decision(
                ti.xcom_pull(task_ids=Step.MONITOR.value),
                policy,
                previous_requests=_previous_requests(inlet_events, asset),
                mode=None if override in (None, "policy") else override,
                backfill=replays_history(dag_run),
            )
            ti.xcom_push(key="decision", value=decision)
            print(f"retraining decision: {decision['decision']}: {decision['reason']}")
            return {"retrain": "request_retraining", "notify": "notify"}.get(decision["decision"], "no_action")

        @task(task_id="request_retraining", outlets=[asset])
        def request(ti: Any = None, dag_run: Any = None, outlet_events: Any = None) -> dict[str, Any]:
            decision = dict(ti.xcom_pull(task_ids="decide_retraining", key="decision"))
            # The event's partition key is the decided day, also for a monitoring run started without a key:
            # training is partition-aware and Airflow drops an event without a key for it.
            outlet_events[asset].add_partitions(decision["partition"])
            outlet_events[asset].extra = {
                "partition": decision["partition"],
                "reason": decision["reason"],
                "triggers": decision["triggers"],
                "champion_version": decision.get("champion_version"),
            }
            _policy_alert(ti, dag_run, decision, severity="info")
            return decision

        @task(task_id="notify")
        def notify(ti: Any = None, dag_run: Any = None) -> dict[str, Any]:
            decision = dict(ti.xcom_pull(task_ids="decide_retraining", key="decision"))
            _policy_alert(ti, dag_run, decision, severity="warning")
            return decision

        @task(task_id="no_action")
        def no_action(ti: Any = None) -> dict[str, Any]:
            return dict(ti.xcom_pull(task_ids="decide_retraining", key="decision"))

        branch = decide()
        monitor >> branch
        branch >> [request(), notify(), no_action()]
    return dag


def _policy_alert(ti: Any, dag_run: Any, decision: dict[str, Any], severity: str) -> None:
    message = build_message(
        alert=Runbook.DRIFT_DETECTED,
        dag_id=dag_run.dag_id,
        task_id=ti.task_id,
        run_id=dag_run.run_id,
        partition=decision["partition"],
        reason=decision["reason"],
        severity=severity,
        details={k: decision.get(k) for k in ("decision", "triggers", "blocked_by", "drifted_columns")},
    )
    send(message)


def promotion_dag(usecase: UseCase) -> DAG:
    with _dag(
        usecase,
        DagFamily.PROMOTION,
        None,
        "Manual: promote a reviewed model version to @champion, or roll @champion back to the version it replaced.\n\n"
        "Both are compare-and-set against the champion seen at the start, and recorded on the version (approver, "
        "reason, and the gate decision record of a promoted version). A promoted version drops @challenger.",
        params={
            "action": Param("promote", enum=["promote", "rollback"], title="Action"),
            "version": Param(
                None, type=["null", "integer"], minimum=1, title="Model version", description="Needed to promote."
            ),
            "approver": Param("", type="string", minLength=1, title="Approver"),
            "reason": Param("", type="string", minLength=3, title="Reason"),
            "partition": _partition_param(),
        },
    ) as dag:
        step_operator(
            StepSpec(
                Step.PROMOTE,
                usecase,
                PromoteOptions.for_task(
                    action=Template("{{ params.action }}"),
                    model_version=Template("{{ params.version if params.version else '' }}"),
                    approver=Template("{{ params.approver }}"),
                    reason=Template("{{ params.reason }}"),
                ),
                retries=0,
            )
        )
    return dag


FACTORIES: dict[DagFamily, Callable[[UseCase], DAG]] = {
    DagFamily.TRAINING: training_dag,
    DagFamily.SCORING: scoring_dag,
    DagFamily.MONITORING: monitoring_dag,
    DagFamily.PROMOTION: promotion_dag,
}


def build_dags(usecase: UseCase) -> dict[str, DAG]:
    """All four DAGs of a use case, by dag_id."""
    dags = [FACTORIES[family](usecase) for family in DagFamily]
    return {dag.dag_id: dag for dag in dags}
