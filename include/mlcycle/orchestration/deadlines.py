"""DAG deadlines: "the run for day D is done by D+1 <time>" (usecase.yaml `deadlines:`) as Airflow DeadlineAlerts.

Airflow 3.3 creates a deadline for every new DAG run of a DAG with `deadline=` (reference time + interval);
the scheduler finds those past due whose run has not succeeded (still running, or failed) and queues the
callback; an `AsyncCallback` runs in the triggerer, called with its kwargs and `context` = {"dag_run": the run as
the REST API shows it, "deadline": {"id", "deadline_time"}}. A run that succeeds in time drops its deadline.

The reference is the run's logical date: for the daily cron schedules of usecase.yaml
(`CronDataIntervalTimetable`), the run for day D has logical date D + the cron's time of day, so the interval
is (1 day + the time after the end of D) - the cron's time of day. `deadline_missed` then sends the
`deadline-missed` alert through the project's alert path (`alerts.build_message` / `send`: same format and
routing as every other alert). It does not alert for a backfill's runs, nor for a run that was due after its
deadline had already passed (a rerun of an old day): such a run cannot finish in time, and an alert per old day
is noise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

# From their modules: `airflow.sdk` exports them lazily, where mypy does not see them.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from mlcycle.config import UseCase, daily_time
from mlcycle.orchestration.alerts import build_message, send
from mlcycle.orchestration.macros import mlcycle_partition
from mlcycle.specs.names import DagFamily, Runbook

log = logging.getLogger(__name__)

#: The alert's task: a deadline is about the whole run, not one of its tasks.
RUN_TASK_ID = "dag_run"


def deadline_interval(cron: str, after: dt.timedelta) -> dt.timedelta:
    """From a run's logical date (day D at the cron's time) to D+1 + `after`; ValueError for a non-daily cron."""
    fires = daily_time(cron)
    if fires is None:
        raise ValueError(f"schedule {cron!r} does not fire once a day at a fixed time: a day's deadline needs it")
    return dt.timedelta(days=1) + after - fires


def dag_deadline(usecase: UseCase, family: DagFamily) -> DeadlineAlert | None:
    """The DeadlineAlert of `family`'s DAG from `usecase.deadlines`, or None when it has no deadline."""
    after: dt.timedelta | None = getattr(usecase.deadlines, family.value, None)
    if after is None:
        return None
    cron: str = getattr(usecase.schedule, family.value)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=deadline_interval(cron, after),
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
