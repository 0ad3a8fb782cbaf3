"""DAG deadlines: "the run for day D is done by D+1 <time>" (usecase.yaml `deadlines:`) as Airflow DeadlineAlerts.

Airflow 3.3 creates a deadline for every new DAG run of a DAG with `deadline=` (reference time + interval);
the scheduler finds those past due whose run has not succeeded (still running, or failed) and queues the
callback; an `AsyncCallback` runs in the triggerer, called with its kwargs and `context` = {"dag_run": the run as
the REST API shows it, "deadline": {"id", "deadline_time"}}. A run that succeeds in time drops its deadline.

The reference is `PartitionDayEnd`, the end (UTC) of the day the run processes, whatever the schedule: since
ADR 0010 the scoring, monitoring and training runs carry a partition key and no logical date, so Airflow's
`DAGRUN_LOGICAL_DATE` reference evaluates to None there and Airflow silently creates no deadline. The day is the
run's partition by the rule its tasks use (`mlcycle_partition`: the partition key, else the `partition` conf,
else the logical date's day, ...), and the interval is the `after` of usecase.yaml. Airflow evaluates the
reference when it creates a run (scheduler, api-server), from the serialized DAG: the class must be registered
by a plugin there (`plugins/mlcycle_deadlines.py`). A run whose partition is not a day fails to be created,
with an error naming the run: a silent None would drop its deadline.

`deadline_missed` then sends the `deadline-missed` alert through the project's alert path
(`alerts.build_message` / `send`: same format and routing as every other alert). It does not alert for a
backfill's runs, nor for a run that was due after its deadline had already passed (a rerun of an old day): such
a run cannot finish in time, and an alert per old day is noise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

# From their modules: `airflow.sdk` exports them lazily, where mypy does not see them.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import BaseDeadlineReference, DeadlineAlert

from mlcycle.config import UseCase
from mlcycle.orchestration.alerts import build_message, send
from mlcycle.orchestration.macros import mlcycle_partition
from mlcycle.settings import dag_deadlines_enabled
from mlcycle.specs.names import DagFamily, Runbook

log = logging.getLogger(__name__)

#: The alert's task: a deadline is about the whole run, not one of its tasks.
RUN_TASK_ID = "dag_run"


class PartitionDayEndError(ValueError):
    """A new run's deadline cannot be placed: the day it processes is unknown."""


def day_end(dag_run: Any) -> dt.datetime:
    """The end (UTC) of the day `dag_run` processes, by its tasks' rule (`mlcycle_partition`); an error otherwise."""
    try:
        day = dt.date.fromisoformat(mlcycle_partition(dag_run, None))
    except ValueError as error:
        raise PartitionDayEndError(
            f"deadline of run {getattr(dag_run, 'dag_id', '?')}/{getattr(dag_run, 'run_id', '?')}: {error}"
        ) from error
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


class PartitionDayEnd(BaseDeadlineReference):
    """Deadline reference: the end (UTC) of the day a new run processes (its partition key, else its logical day).

    Airflow calls `_evaluate_with` in the scheduler or the api-server when it creates a run, on the serialized
    DAG's copy that `plugins/mlcycle_deadlines.py` registers; `DAGRUN_LOGICAL_DATE` is None for keyed runs.
    Not `DeadlineReference.register_custom_reference`: it only names the class on the SDK's `DeadlineReference`
    (and logs to the DAG file's output); the scheduler finds the class through the plugin, by class path.
    """

    #: What Airflow passes `_evaluate_with` (it filters its keyword arguments by this set).
    required_kwargs = frozenset({"dag_id", "run_id"})

    def _evaluate_with(self, *, session: Any, dag_id: str, run_id: str, **kwargs: Any) -> dt.datetime:
        # Airflow core, imported here: only the scheduler and the api-server evaluate a reference.
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dag_run is None:
            raise PartitionDayEndError(f"deadline of run {dag_id}/{run_id}: no such DAG run in the database")
        return day_end(dag_run)


def dag_deadline(usecase: UseCase, family: DagFamily) -> DeadlineAlert | None:
    """The DeadlineAlert of `family`'s DAG from `usecase.deadlines`, or None when it has no deadline."""
    after: dt.timedelta | None = getattr(usecase.deadlines, family.value, None)
    if after is None or not dag_deadlines_enabled():
        return None
    return DeadlineAlert(
        reference=PartitionDayEnd(),
        interval=after,
        callback=AsyncCallback(
            deadline_missed,
            kwargs={
                "rule": f"{family.value} of day D done by D+1 +{after} UTC (usecase.yaml deadlines.{family.value})"
            },
        ),
        name=f"{usecase.name}_{family.value}_done",
    )


def _time(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _partition(run: dict[str, Any]) -> str:
    """The run's partition by the same rule as its tasks (`mlcycle_partition`), from the run as the API shows it."""
    dag_run = SimpleNamespace(
        partition_key=run.get("partition_key"),
        conf=run.get("conf") or {},
        logical_date=_time(run.get("logical_date")),
        run_after=_time(run.get("run_after")),
        consumed_asset_events=[],
    )
    try:
        return mlcycle_partition(dag_run, None)
    except Exception:  # the alert about a late run must still go out (its partition is a courtesy)
        return "unknown"


def deadline_message(rule: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """The `deadline-missed` alert for a missed deadline's callback context; None when no alert is due."""
    run = dict(context.get("dag_run") or {})
    deadline = _time((context.get("deadline") or {}).get("deadline_time"))
    due = _time(run.get("run_after"))
    dag_id, run_id = str(run.get("dag_id", "")), str(run.get("dag_run_id") or run.get("run_id") or "")
    # A backfill's runs are due at their historical times (run_after), long before a deadline they never had a
    # chance to meet; any other run (a rerun) is due when it was triggered.
    if str(run.get("run_type", "")).lower() == "backfill":
        log.info("%s %s: no deadline-missed alert for a backfill run (deadline %s)", dag_id, run_id, deadline)
        return None
    if deadline is not None and due is not None and due >= deadline:
        log.info(
            "%s %s: no deadline-missed alert: the run was due at %s, after its deadline %s",
            dag_id,
            run_id,
            due,
            deadline,
        )
        return None
    state = run.get("state") or "unknown"
    return build_message(
        alert=Runbook.DEADLINE_MISSED,
        dag_id=dag_id,
        task_id=RUN_TASK_ID,
        run_id=run_id,
        partition=_partition(run),
        reason=f"run not finished by its deadline {deadline.isoformat() if deadline else '?'} (state {state}): {rule}",
        severity="warning",
        details={"deadline_time": deadline.isoformat() if deadline else None, "state": state, "rule": rule},
    )


async def deadline_missed(rule: str, context: dict[str, Any]) -> str:
    """The AsyncCallback of every mlcycle DAG deadline (runs in the triggerer): send `deadline-missed`.

    Returns one line for the callback's record: Airflow stores the return value in a text column, and anything
    else (a dict) fails the triggerer's database write, which stops every trigger it runs.
    """
    message = deadline_message(rule, context)
    if message is None:
        return "no alert: the run was due after its deadline had passed"
    # `send` blocks on HTTP: off the triggerer's event loop. It never raises (it logs a failed delivery).
    sent = await asyncio.to_thread(send, message)
    return f"{'sent' if sent else 'logged (not delivered)'}: {message['text']}"
