"""The DAG factory: the four DAGs of every use case, built from its `usecase.yaml`.

`<usecase>_training`   nightly cron, and on every retraining request (Asset event)
`<usecase>_scoring`    daily: ingest -> validate -> score with @champion
`<usecase>_monitoring` daily: Evidently drift -> branch: request retraining or not
`<usecase>_promotion`  manual, Params form: promote a reviewed version or roll back

Only Airflow, the standard library, pydantic and yaml are imported here: this runs at every parse.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, chain, task

from mlcycle.config import UseCase
from mlcycle.orchestration.factory import step_operator
from mlcycle.orchestration.macros import MACROS
from mlcycle.orchestration.spec import StepSpec
from mlcycle.retraining import retraining_decision

DOCS = "https://github.com/mlcycle/mlcycle/blob/main/docs"


def retraining_asset(usecase: UseCase) -> Asset:
    """The Asset the monitoring DAG updates to request a retrain and the training DAG is scheduled on."""
    return Asset(name=f"{usecase.name}_retraining_request", uri=f"mlcycle://{usecase.name}/retraining-request")


def _dag(usecase: UseCase, family: str, schedule: Any, doc: str, **kwargs: Any) -> DAG:
    start = usecase.schedule.start_date
    return DAG(
        dag_id=f"{usecase.name}_{family}",
        description=f"{usecase.name}: {doc.splitlines()[0]}",
        doc_md=f"## {usecase.name} — {family}\n\n{doc}\n\nUse case: {usecase.description}\n\n"
        f"Config: `include/usecases/{usecase.name}/usecase.yaml` · Docs: [{DOCS}/architecture.md]({DOCS}/architecture.md)",
        schedule=schedule,
        start_date=dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC),
        catchup=False,
        tags=["mlcycle", usecase.name, family, *usecase.tags],
        default_args={"owner": usecase.owner, "retries": 2, "retry_delay": dt.timedelta(minutes=2)},
        user_defined_macros=dict(MACROS),
        **kwargs,
    )


def _cron(expression: str) -> CronDataIntervalTimetable:
    # Data-interval semantics: the run for day D starts after D ends and processes partition D.
    return CronDataIntervalTimetable(expression, timezone="UTC")


def _partition_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        title="Partition",
        description="Day to process (YYYY-MM-DD). Empty: the run's logical date.",
    )


def training_dag(usecase: UseCase) -> DAG:
    window = str(usecase.split.window_days)
    with _dag(
        usecase,
        "training",
        AssetOrTimeSchedule(timetable=_cron(usecase.schedule.training), assets=retraining_asset(usecase)),
        "Train a candidate on the window ending at the partition, gate it against @champion, promote if better.\n\n"
        "Runs nightly and whenever the monitoring DAG requests a retrain; the reason is recorded on the MLflow run.",
        max_active_runs=1,  # two trainings racing for @champion would make one of them lose the compare-and-set
        params={
            "partition": _partition_param(),
            "reason": Param("", type="string", title="Reason", description="Why this run (recorded in MLflow)."),
            "no_cache": Param(
                False, type="boolean", title="Retrain even if cached", description="Skip the training cache."
            ),
        },
    ) as dag:
        chain(
            step_operator(StepSpec("ingest", usecase, ("--lookback", window))),
            step_operator(StepSpec("validate", usecase, ("--lookback", window))),
            step_operator(StepSpec("features", usecase)),
            step_operator(
                StepSpec("train", usecase, ("--cache", "{{ 'off' if params.no_cache else 'on' }}"), retries=1)
            ),
            step_operator(
                StepSpec(
                    "evaluate",
                    usecase,
                    ("--model-version", "{{ ti.xcom_pull(task_ids='train')['metrics']['model_version'] }}"),
                )
            ),
            step_operator(
                StepSpec(
                    "promote", usecase, ("--decision", "{{ ti.xcom_pull(task_ids='evaluate')['outputs']['decision'] }}")
                )
            ),
        )
    return dag


def scoring_dag(usecase: UseCase) -> DAG:
    with _dag(
        usecase,
        "scoring",
        _cron(usecase.schedule.scoring),
        "Ingest and validate the day's data, then score it with the @champion version (resolved once).",
        max_active_runs=3,
        params={"partition": _partition_param()},
    ) as dag:
        chain(
            step_operator(StepSpec("ingest", usecase)),
            step_operator(StepSpec("validate", usecase, ("--serving",))),
            step_operator(StepSpec("score", usecase)),
        )
    return dag


def monitoring_dag(usecase: UseCase) -> DAG:
    asset = retraining_asset(usecase)
    mode = usecase.retraining.mode

    with _dag(
        usecase,
        "monitoring",
        _cron(usecase.schedule.monitoring),
        "Evidently data drift of the day against the champion's training data; on dataset drift, "
        f"request a retrain (policy: `{mode}`).",
        max_active_runs=1,  # retraining requests must be decided in day order
        params={"partition": _partition_param()},
    ) as dag:
        monitor = step_operator(StepSpec("monitor", usecase))

        @task.branch(task_id="decide_retraining", inlets=[asset])
        def decide(ti: Any = None, inlet_events: Any = None) -> str:
            # The Asset's own history holds the last request: no extra state store is needed.
            previous = list(inlet_events[asset][-1:]) if inlet_events is not None else []
            last = (previous[0].extra or {}).get("partition") if previous else None
            decision = retraining_decision(
                ti.xcom_pull(task_ids="monitor"),
                mode,
                cooldown_days=usecase.retraining.cooldown_days,
                last_request=last,
            )
            ti.xcom_push(key="decision", value=decision)
            print(f"retraining decision: {decision}")
            return "request_retraining" if decision["retrain"] else "no_retraining"

        @task(task_id="request_retraining", outlets=[asset])
        def request(ti: Any = None, outlet_events: Any = None) -> dict[str, Any]:
            decision = ti.xcom_pull(task_ids="decide_retraining", key="decision")
            outlet_events[asset].extra = {"partition": decision["partition"], "reason": decision["reason"]}
            return dict(decision)

        @task(task_id="no_retraining")
        def no_retraining(ti: Any = None) -> dict[str, Any]:
            return dict(ti.xcom_pull(task_ids="decide_retraining", key="decision"))

        branch = decide()
        monitor >> branch
        branch >> [request(), no_retraining()]
    return dag


def promotion_dag(usecase: UseCase) -> DAG:
    with _dag(
        usecase,
        "promotion",
        None,
        "Manual: promote a reviewed model version to @champion, or roll @champion back to the version it replaced.\n\n"
        "Both are compare-and-set against the champion seen at the start, and recorded on the version.",
        max_active_runs=1,
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
                "promote",
                usecase,
                (
                    "--action",
                    "{{ params.action }}",
                    "--model-version",
                    "{{ params.version if params.version else '' }}",
                    "--approver",
                    "{{ params.approver }}",
                    "--reason",
                    "{{ params.reason }}",
                ),
                retries=0,
            )
        )
    return dag


FAMILIES = (training_dag, scoring_dag, monitoring_dag, promotion_dag)


def build_dags(usecase: UseCase) -> dict[str, DAG]:
    """All four DAGs of a use case, by dag_id."""
    dags = [family(usecase) for family in FAMILIES]
    return {dag.dag_id: dag for dag in dags}
