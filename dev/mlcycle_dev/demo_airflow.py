"""The demo's client of a running Airflow: it triggers runs, waits for them and reads what they decided.

Everything here goes through Airflow's REST API (`/api/v2`), as a user's client would; the demo never writes
Airflow's database itself. `StoryClient.run` triggers one DAG run and waits for it; `scheduled_run` waits for a
run that the *scheduler* created (an Asset-triggered retrain, and later partition-triggered monitoring);
`hold_back_todays_runs` keeps the cron timetables from starting "today's" runs when the demo unpauses its DAGs.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.airflow_api import AirflowAPIError
from mlcycle_dev.stack.airflow import AirflowServices
from mlcycle_dev.stack.process import ServiceError, wait_until


def clean_slate(home: Path, say: Callable[[str], None]) -> None:
    """A demo's own store, empty: what an earlier run left (its Airflow DB, MLflow, data) is removed first."""
    if home.exists():
        say(f"Starting from a clean slate: removing {home}")
        shutil.rmtree(home)
    home.mkdir(parents=True)


# Settings for a 2-core machine running one story at a time (used where the caller's env does not set them).
DEMO_AIRFLOW_SETTINGS = {
    # The story's runs are sequential but for monitoring's `monitor` || `freshness`: three task slots are
    # enough, and each LocalExecutor worker is a process that holds memory.
    "AIRFLOW__CORE__PARALLELISM": "3",
    # The DAG files do not change during the demo: parse them once (one process) instead of every 30 s, which
    # would take CPU from the tasks. The first parse happens at start-up whatever this says.
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3600",
    # The scheduler sleeps this long only when a loop found nothing to do; a finished task then waits at most
    # this long for its successor to be queued (default 1 s; a loop on this SQLite database costs ~10 ms).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
}

POLL_SECONDS = 0.5
# How long the demo's reviewer reads a pending approval before answering it (see _ready_for_review).
REVIEW_DELAY_S = 15.0


@dataclass
class RunRecord:
    """One DAG run of the story, as Airflow's REST API reports it."""

    dag_id: str
    run_id: str
    run_type: str
    triggered_by: str | None
    partition: str
    state: str
    seconds: float
    tasks: dict[str, str | None]
    partition_key: str | None = None
    retraining: dict[str, Any] | None = None
    consumed_events: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    champion_before: str | None = None
    champion_after: str | None = None

    @property
    def failed(self) -> bool:
        return self.state != "success"


# A reviewer's answer to a pending approval (HITL detail): gets the client and the pending detail, returns the
# answer Airflow recorded. Passed in by the story (see demo.answer_approval).
ApprovalAnswer = Callable[[AirflowServices, dict[str, Any]], dict[str, Any]]


class StoryClient:
    """Triggers and follows the story's DAG runs through one `AirflowServices`."""

    def __init__(self, airflow: AirflowServices, answer_approval: ApprovalAnswer, run_timeout: float = 600.0) -> None:
        self.airflow = airflow
        self.answer_approval = answer_approval
        self.run_timeout = run_timeout
        self.runs: list[RunRecord] = []
        # Runs triggered per (DAG, day), shown apart or not: each gets its own logical date.
        self._triggered: dict[tuple[str, dt.date], int] = {}

    # --- start-up ------------------------------------------------------------------------------------------

    def hold_back_todays_runs(self, dag_ids: Iterable[str]) -> list[str]:
        """Keep the cron timetables from running "today" when the DAGs are unpaused; return what was held back.

        The story replays September 2026; on unpausing a DAG whose latest cron interval is due (catchup is off),
        the scheduler would create that interval's run at once: a training or scoring of a day with no
        landing data, which would fail, alert, and hold the training DAG's only active-run slot that the
        Asset-triggered retrain needs. The scheduler skips creating a run whose logical date already has one
        (and moves the DAG's next run to the following interval): so, while the DAG is still paused (nothing
        of it runs), the demo creates that run itself, marked failed, with a note saying why.
        """
        held: list[str] = []
        for dag_id in dag_ids:
            dag = self.airflow.request("GET", f"/api/v2/dags/{dag_id}")
            if not dag["is_paused"]:
                raise ServiceError(f"{dag_id} is already unpaused: its latest cron run may have started")
            logical_date = dag.get("next_dagrun_logical_date")
            if logical_date is None:
                continue  # no cron run due (a partition- or asset-only schedule)
            # The run must cover the due interval itself: the scheduler computes the next run from the existing
            # one's data interval, and a manual run's inferred interval (the one *before* its logical date) would
            # leave the due interval due, to be skipped again on every scheduler loop.
            body = {
                "dag_run_id": f"demo_held_back__{logical_date}",
                "logical_date": logical_date,
                "data_interval_start": dag["next_dagrun_data_interval_start"],
                "data_interval_end": dag["next_dagrun_data_interval_end"],
                "conf": {},
                "note": "Held back by the demo: the story replays September 2026; this interval has no data.",
            }
            run = self.airflow.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
            path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run['dag_run_id'])}"
            self.airflow.request("PATCH", path, {"state": "failed"}, params={"update_mask": "state"})
            held.append(f"{dag_id} {logical_date}")
        return held

    # --- runs ----------------------------------------------------------------------------------------------

    def run(
        self,
        dag_id: str,
        day: dt.date,
        conf: dict[str, Any] | None = None,
        note: str | None = None,
        partition_key: bool = False,
    ) -> RunRecord:
        """Trigger a run of `dag_id` for partition `day` (as a user would) and wait for it to finish."""
        # A few minutes past midnight: distinct from the cron runs' logical dates, and one minute apart for a
        # second run of the same day (the notify_only monitoring run).
        same_day = self._triggered.get((dag_id, day), 0)
        self._triggered[(dag_id, day)] = same_day + 1
        logical_date = dt.datetime(day.year, day.month, day.day, 0, 5 + same_day, tzinfo=dt.UTC)
        started = time.monotonic()
        run = self.airflow.trigger(
            dag_id,
            conf={"partition": str(day), **(conf or {})},
            logical_date=logical_date,
            note=note,
            # A partition-aware DAG (mlcycle's, ADR 0010) takes the day as the run's key, as the scheduler's runs
            # have it; Airflow refuses a key for any other DAG.
            partition_key=str(day) if partition_key else None,
        )
        return self._follow(run, started)

    def scheduled_run(
        self, dag_id: str, matches: Callable[[dict[str, Any]], bool], what: str, timeout: float = 120.0
    ) -> RunRecord:
        """Wait for the scheduler to create a run of `dag_id` that `matches`, then for it to finish."""
        started = time.monotonic()
        seen = {r.run_id for r in self.runs if r.dag_id == dag_id}

        def created() -> dict[str, Any] | None:
            for run in self._runs_of(dag_id):
                if run["dag_run_id"] not in seen and matches(run):
                    return run
            return None

        run = wait_until(
            created, timeout, f"the scheduler to create {what}", processes=self._scheduling(), interval=POLL_SECONDS
        )
        return self._follow(run, started)

    def _follow(self, run: dict[str, Any], started: float) -> RunRecord:
        dag_id, run_id = run["dag_id"], run["dag_run_id"]
        approvals: list[dict[str, Any]] = []

        def finished() -> dict[str, Any] | None:
            current = self.airflow.dag_run(dag_id, run_id)
            if current["state"] in ("success", "failed"):
                return current
            for pending in self.pending_approvals(dag_id, run_id):
                if _ready_for_review(pending):
                    approvals.append({"request": pending, "answer": self.answer_approval(self.airflow, pending)})
            return None

        try:
            final = wait_until(
                finished,
                self.run_timeout,
                f"DAG run {dag_id}/{run_id}",
                processes=self._scheduling(),
                interval=POLL_SECONDS,
            )
        except ServiceError as error:
            raise ServiceError(f"{error}\ntasks: {self.airflow.task_states(dag_id, run_id)}") from None
        record = RunRecord(
            dag_id=dag_id,
            run_id=run_id,
            run_type=final["run_type"],
            triggered_by=final.get("triggered_by"),
            partition=_partition_of(final, self.consumed_events(dag_id, run_id)),
            state=final["state"],
            seconds=round(time.monotonic() - started, 1),
            tasks=self.airflow.task_states(dag_id, run_id),
            partition_key=final.get("partition_key"),
            retraining=self.xcom(dag_id, run_id, "decide_retraining", "decision"),
            consumed_events=self.consumed_events(dag_id, run_id),
            approvals=approvals,
        )
        self.runs.append(record)
        outcome = "ok" if record.state == "success" else record.state.upper()
        print(
            f"    {dag_id} {record.partition} [{record.run_type}]: {outcome} in {record.seconds:.0f}s  {record.tasks}",
            flush=True,
        )
        return record

    # --- reads ---------------------------------------------------------------------------------------------

    def _runs_of(self, dag_id: str) -> list[dict[str, Any]]:
        params = {"order_by": "-run_after", "limit": 50}
        runs: list[dict[str, Any]] = self.airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)[
            "dag_runs"
        ]
        return runs

    def consumed_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The Asset events a run consumed (`upstreamAssetEvents`): what an Asset-triggered run was started for."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/upstreamAssetEvents"
        events: list[dict[str, Any]] = self.airflow.request("GET", path)["asset_events"]
        return events

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """A task's XCom value, or None when the run has no such task or entry (not every DAG decides)."""
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/xcomEntries/"
            f"{urllib.parse.quote(key)}"
        )
        try:
            return self.airflow.request("GET", path, params={"deserialize": "true"})["value"]
        except AirflowAPIError as error:
            if error.status == 404:  # the DAG has no such task, or it pushed nothing (a failed run)
                return None
            raise

    def pending_approvals(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's human-in-the-loop requests nobody has answered yet (`hitlDetails`)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/hitlDetails"
        details: list[dict[str, Any]] = self.airflow.request("GET", path, params={"response_received": "false"})[
            "hitl_details"
        ]
        return details

    def asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        """Every event of the Asset called `asset_name`, oldest first.

        Airflow 3.3.2 answers HTTP 500 while a run an event created is still queued (its `start_date` is null
        and the response model requires one); the scheduler starts it within a loop or two, so the read is
        retried (wait_until takes an exception as "not yet") for a bounded time and then fails with the error.
        """
        asset_id = self.airflow.asset_id(asset_name)
        events: list[dict[str, Any]] = wait_until(
            lambda: [self.airflow.asset_events(asset_id, limit=100)],
            60,
            f"the events of Asset {asset_name}",
            processes=self._scheduling(),
            interval=POLL_SECONDS,
        )[0]
        return list(reversed(events))

    def _scheduling(self) -> list[Any]:
        return [p for n, p in self.airflow.processes.items() if n in ("api-server", "scheduler")]


def _ready_for_review(pending: dict[str, Any]) -> bool:
    """Whether a pending approval may be answered now: its task is parked and has been for REVIEW_DELAY_S.

    Answering at once loses the task in Airflow 3.3.2: the answer moves the parked task instance to
    `scheduled`, the scheduler queues it again, and only then handles the executor's "success" report of the
    worker that parked it; that stale report against a *queued* instance reads as "killed externally" and
    fails the task (scheduler_job_runner.py tolerates it only while the instance is still `scheduled`). The
    report comes when the parking worker's process exits: within about a second on an idle machine, but 5 s after
    the request was created under load (measured: request 14:01:07.8, worker exit 14:01:12.8, a 5 s reviewer's
    answer 14:01:12.9, the task failed); a reviewer who takes 15 s to read the request does not meet it.
    """
    if pending["task_instance"].get("state") != "awaiting_input":
        return False
    created = dt.datetime.fromisoformat(str(pending["created_at"]).replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - created).total_seconds() >= REVIEW_DELAY_S


def _partition_of(run: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """The day a run processed, by the same precedence as the DAGs' `mlcycle_partition` macro."""
    partition = (run.get("conf") or {}).get("partition")
    if partition:
        return str(partition)
    if run.get("partition_key"):
        return str(run["partition_key"])
    if run.get("logical_date"):
        return str(run["logical_date"])[:10]
    for event in reversed(events):
        if (event.get("extra") or {}).get("partition"):
            return str(event["extra"]["partition"])
    return "?"
