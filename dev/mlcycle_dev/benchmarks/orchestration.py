"""Benchmark: what Airflow adds around the steps, under a real scheduler (the `make up` stack), and a 30-day backfill.

    python -m mlcycle_dev.benchmarks.orchestration [--rows N] [--days 30] [--base-port 18200]
                                                   [--airflow KEY=VALUE ...] [--json FILE] [--markdown FILE]
    python -m mlcycle_dev.benchmarks.orchestration --render FILE [--markdown FILE]

It starts the stack of `make up` in-process (`LocalStack`: PostgreSQL, the S3 API, the MLflow server, Airflow's
api-server, scheduler, dag-processor and triggerer with the LocalExecutor on PostgreSQL), on six ports from
`--base-port`, in a fresh folder, and stops it at the end. Then, through Airflow's REST API only:

1. `mlcycle generate` of YarnIt's data (`--rows` base rows a day; default: the generator's, the demo's day size);
2. one training run (triggered, partition = the last day of the first 14-day window), waited for;
3. `--days` days of scoring + monitoring as `make backfill` runs them (`mlcycle.backfill.run_backfills`: an
   Airflow backfill of scoring; the scheduler starts each day's monitoring run from the predictions it writes);
4. every DAG run's task instances (`queued_when`, `scheduled_when`, `start_date`, `end_date`, `duration`) and each
   step task's XCom (the step's JSON result: its own `seconds`, and the size Airflow stores).

Per DAG run: wall (run start -> end) / the sum of its step tasks' walls, and / the sum of the steps' own seconds
(the body the CLI times, `mlcycle.cli.run_command`). Per task: scheduled -> queued and queued -> running latency
(median, p95, max). Per step: task wall, step body, the difference (the launch cost: Airflow's task runner, the
subprocess, the CLI's interpreter start and imports) and the XCom size. For the backfill: its wall and the share of
the task walls that is launch cost. `--airflow KEY=VALUE` sets Airflow configuration (`AIRFLOW__SECTION__KEY`) on
every service, for before/after runs of one knob with the same command.

The use case runs from a copy whose contract admits the day size and whose gate latency budget a loaded machine
meets (`nightly.scaled_usecases`). Unpausing training and scoring lets the scheduler create their due cron runs for
yesterday, which has no data: they fail at `wait_for_data` within seconds and are not counted (only the triggered
training run and the backfill's runs are).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

USECASE = "yarnit"
# Data from FIRST_DAY; the training run's partition closes the first 14-day window; the backfill follows it.
FIRST_DAY = dt.date(2026, 8, 1)
WINDOW_DAYS = 14
STEP_KEYS = ("step", "seconds", "status")


# --- the arithmetic over task-instance rows (pure) ----------------------------------------------------------------


def parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _between(start: str | None, end: str | None) -> float | None:
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds()


@dataclass
class TaskTiming:
    """One task instance (its last try) as the REST API reports it, with its step's own figures from its XCom."""

    task_id: str
    state: str | None
    try_number: int
    scheduled_when: str | None
    queued_when: str | None
    start_date: str | None
    end_date: str | None
    duration: float | None
    # From the step's JSON result (the task's return_value XCom); None for tasks that are not `mlcycle` steps.
    step_seconds: float | None = None
    xcom_bytes: int | None = None
    # From the task's log (`log_marks`): when the operator's execute began (after the task process parsed the
    # DAG file), when the step printed its result, and the parse time the task runner reports.
    execute_at: str | None = None
    result_at: str | None = None
    dag_parse_ms: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], xcom: Any = None, log: Sequence[Mapping[str, Any]] = ()) -> TaskTiming:
        is_step = isinstance(xcom, dict) and all(key in xcom for key in STEP_KEYS)
        return cls(
            **log_marks(log),
            task_id=str(row["task_id"]),
            state=row.get("state"),
            try_number=int(row.get("try_number") or 0),
            scheduled_when=row.get("scheduled_when"),
            queued_when=row.get("queued_when"),
            start_date=row.get("start_date"),
            end_date=row.get("end_date"),
            duration=row.get("duration"),
            step_seconds=float(xcom["seconds"]) if is_step else None,
            xcom_bytes=len(json.dumps(xcom, separators=(",", ":"))) if xcom is not None else None,
        )

    @property
    def is_step(self) -> bool:
        return self.step_seconds is not None

    @property
    def wall(self) -> float | None:
        """The task's own wall: start -> end (Airflow's `duration`, else the difference of the two)."""
        return self.duration if self.duration is not None else _between(self.start_date, self.end_date)

    @property
    def scheduled_to_queued(self) -> float | None:
        return _between(self.scheduled_when, self.queued_when)

    @property
    def queued_to_running(self) -> float | None:
        return _between(self.queued_when, self.start_date)

    @property
    def before_execute(self) -> float | None:
        """Task start -> the operator's execute: the task process's start-up and its parse of the DAG file."""
        return _between(self.start_date, self.execute_at)

    @property
    def step_process(self) -> float | None:
        """The operator's execute -> the step's result line: the `mlcycle` subprocess as the task saw it."""
        return _between(self.execute_at, self.result_at)

    @property
    def cli_start(self) -> float | None:
        """The step process minus the step's own seconds: interpreter start and the CLI's imports."""
        process = self.step_process
        return process - self.step_seconds if process is not None and self.step_seconds is not None else None

    @property
    def after_result(self) -> float | None:
        """The step's result -> task end: process exit, XCom push, OpenLineage, the final state."""
        return _between(self.result_at, self.end_date)

    @property
    def launch_seconds(self) -> float | None:
        """Task wall - the step's own seconds: task runner, subprocess, interpreter start and the CLI's imports."""
        if self.step_seconds is None or self.wall is None:
            return None
        return self.wall - self.step_seconds


@dataclass
class RunTiming:
    """One DAG run and its task instances."""

    dag_id: str
    run_id: str
    run_type: str
    partition: str | None
    state: str
    start_date: str | None
    end_date: str | None
    tasks: list[TaskTiming] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.dag_id.removeprefix(f"{USECASE}_")

    @property
    def wall(self) -> float | None:
        return _between(self.start_date, self.end_date)

    def ready_to_scheduled(self) -> list[float]:
        """Per task: the end of the last task that ended before it was scheduled -> its `scheduled_when`.

        The scheduler's reaction time to a finished upstream (its loop, `[scheduler] scheduler_idle_sleep_time`);
        the first task (nothing ended before it) is measured from the run's start.
        """
        ends = sorted(t for t in (parse_time(task.end_date) for task in self.tasks) if t is not None)
        run_start = parse_time(self.start_date)
        gaps = []
        for task in self.tasks:
            scheduled = parse_time(task.scheduled_when)
            if scheduled is None:
                continue
            before = [end for end in ends if end <= scheduled]
            since = before[-1] if before else run_start
            if since is not None:
                gaps.append((scheduled - since).total_seconds())
        return gaps

    @property
    def steps(self) -> list[TaskTiming]:
        return [task for task in self.tasks if task.is_step]

    @property
    def steps_wall(self) -> float:
        return sum(task.wall or 0.0 for task in self.steps)

    @property
    def steps_body(self) -> float:
        return sum(task.step_seconds or 0.0 for task in self.steps)

    @property
    def ratio_to_tasks(self) -> float | None:
        """Run wall / the sum of its step tasks' walls (parallel tasks can bring it under 1)."""
        wall = self.wall
        return wall / self.steps_wall if wall is not None and self.steps_wall > 0 else None

    @property
    def ratio_to_bodies(self) -> float | None:
        """Run wall / the sum of the steps' own seconds: everything Airflow and the step processes add."""
        wall = self.wall
        return wall / self.steps_body if wall is not None and self.steps_body > 0 else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunTiming:
        tasks = [TaskTiming(**task) for task in data.get("tasks", [])]
        return cls(**{**data, "tasks": tasks})


def log_marks(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """From a task log's structured events (the REST API's `content`): execute_at, result_at, dag_parse_ms.

    execute_at: the LocalStepOperator's "running: <argv>" line; result_at: the last line that is the step's JSON
    result (an object with a "status"); dag_parse_ms: the task runner's "Worker startup parse complete" figure.
    """
    marks: dict[str, Any] = {"execute_at": None, "result_at": None, "dag_parse_ms": None}
    for event in events:
        text, stamp = str(event.get("event", "")), event.get("timestamp")
        if text.startswith("running: ") and marks["execute_at"] is None:
            marks["execute_at"] = stamp
        elif text == "Worker startup parse complete" and "dag_file_parse_ms" in event:
            marks["dag_parse_ms"] = float(event["dag_file_parse_ms"])
        elif is_result(text):
            marks["result_at"] = stamp
    return marks


def is_result(line: str) -> bool:
    """Whether an output line is a step's JSON result (an object with a "status", `mlcycle.cli`)."""
    if not (line.startswith("{") and '"status"' in line):
        return False
    try:
        document = json.loads(line)
    except ValueError:
        return False  # a line that only looks like JSON: not the result
    return isinstance(document, dict) and "status" in document


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of a non-empty sequence: a value that was measured."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summary(values: Iterable[float | None]) -> dict[str, float] | None:
    """n, median, p95 and max of the measured values (None entries are left out); None when there are none."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None
    return {
        "n": len(measured),
        "median": statistics.median(measured),
        "p95": percentile(measured, 0.95),
        "max": max(measured),
    }


def latency_table(runs: Sequence[RunTiming]) -> dict[str, dict[str, dict[str, float] | None]]:
    """Per DAG family (and 'all'): summaries of upstream end (or run start) -> scheduled, scheduled -> queued and
    queued -> running over its tasks."""
    families = sorted({run.family for run in runs})
    table: dict[str, dict[str, dict[str, float] | None]] = {}
    for family in [*families, "all"]:
        tasks = [t for r in runs if family in ("all", r.family) for t in r.tasks if t.start_date is not None]
        table[family] = {
            "ready_to_scheduled": summary(
                g for r in runs if family in ("all", r.family) for g in r.ready_to_scheduled()
            ),
            "scheduled_to_queued": summary(t.scheduled_to_queued for t in tasks),
            "queued_to_running": summary(t.queued_to_running for t in tasks),
        }
    return table


def run_table(runs: Sequence[RunTiming]) -> dict[str, dict[str, Any]]:
    """Per DAG family: number of runs, summaries of the run wall and of the two ratios."""
    table: dict[str, dict[str, Any]] = {}
    for family in sorted({run.family for run in runs}):
        mine = [r for r in runs if r.family == family]
        table[family] = {
            "runs": len(mine),
            "wall": summary(r.wall for r in mine),
            "steps_wall": summary(r.steps_wall for r in mine),
            "steps_body": summary(r.steps_body for r in mine),
            "ratio_to_tasks": summary(r.ratio_to_tasks for r in mine),
            "ratio_to_bodies": summary(r.ratio_to_bodies for r in mine),
        }
    return table


def _median(values: Iterable[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def step_table(runs: Sequence[RunTiming]) -> dict[str, dict[str, Any]]:
    """Per (family, task id) of a step: median task wall, step body, launch cost, XCom bytes."""
    grouped: dict[str, list[TaskTiming]] = {}
    for run in runs:
        for task in run.steps:
            grouped.setdefault(f"{run.family}.{task.task_id}", []).append(task)
    return {
        key: {
            "n": len(tasks),
            "wall": statistics.median(t.wall or 0.0 for t in tasks),
            "body": statistics.median(t.step_seconds or 0.0 for t in tasks),
            "launch": statistics.median(t.launch_seconds or 0.0 for t in tasks),
            "before_execute": _median(t.before_execute for t in tasks),
            "dag_parse": _median(None if t.dag_parse_ms is None else t.dag_parse_ms / 1000 for t in tasks),
            "cli_start": _median(t.cli_start for t in tasks),
            "after_result": _median(t.after_result for t in tasks),
            "xcom_bytes": max(t.xcom_bytes or 0 for t in tasks),
        }
        for key, tasks in sorted(grouped.items())
    }


def fixed_share(runs: Sequence[RunTiming]) -> dict[str, float]:
    """Over all step tasks of `runs`: task walls, step bodies, launch cost and its share of the task walls."""
    steps = [t for run in runs for t in run.steps]
    walls = sum(t.wall or 0.0 for t in steps)
    launch = sum(t.launch_seconds or 0.0 for t in steps)
    return {
        "tasks": len(steps),
        "task_wall_seconds": walls,
        "step_body_seconds": sum(t.step_seconds or 0.0 for t in steps),
        "launch_seconds": launch,
        "launch_share": launch / walls if walls > 0 else 0.0,
    }


# --- rendering ----------------------------------------------------------------------------------------------------


def _fmt(stats: Mapping[str, float] | None, digits: int = 1) -> str:
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} / {stats['p95']:.{digits}f} / {stats['max']:.{digits}f}"


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(saved: Mapping[str, Any]) -> str:
    runs = [RunTiming.from_dict(r) for r in saved["runs"]]
    facts = saved["facts"]
    lines = [
        f"`{facts['command']}` — {facts['date']}, {facts['cpu']}, {facts['cores']} cores, "
        f"load average {facts['load_min']:.1f}-{facts['load_max']:.1f} (shared machine); "
        f"{facts['day_rows']:,} rows on a scored day; Airflow settings: {facts['airflow_settings'] or 'the stack defaults'}.",
        "",
        "| DAG | runs | run wall s (median / p95 / max) | run wall ÷ Σ step task walls | run wall ÷ Σ step bodies |",
        "|---|---|---|---|---|",
    ]
    for family, row in run_table(runs).items():
        lines.append(
            f"| {family} | {row['runs']} | {_fmt(row['wall'])} | {_fmt(row['ratio_to_tasks'], 2)} | "
            f"{_fmt(row['ratio_to_bodies'], 2)} |"
        )
    lines += [
        "",
        "Latencies per task, seconds (median / p95 / max): upstream end (or run start) → scheduled, scheduled → "
        "queued, queued → running (`start_date`: the task process has started).",
        "",
        "| DAG | upstream end → scheduled | scheduled → queued | queued → running |",
        "|---|---|---|---|",
    ]
    for family, row in latency_table(runs).items():
        lines.append(
            f"| {family} | {_fmt(row['ready_to_scheduled'], 2)} | {_fmt(row['scheduled_to_queued'], 2)} | "
            f"{_fmt(row['queued_to_running'], 2)} |"
        )
    lines += [
        "",
        "Per step task, medians in seconds: task wall = start -> execute (task process + DAG file parse) + step "
        "process (interpreter start and CLI imports + the step's own seconds) + after the result (exit, XCom, state).",
        "",
        "| step task | n | task wall | step body | launch (wall - body) | start -> execute | of it DAG parse | "
        "CLI start + imports | after result | XCom bytes (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in step_table(runs).items():
        lines.append(
            f"| {key} | {row['n']} | {row['wall']:.1f} | {row['body']:.1f} | {row['launch']:.1f} | "
            f"{_opt(row['before_execute'])} | {_opt(row['dag_parse'])} | {_opt(row['cli_start'])} | "
            f"{_opt(row['after_result'])} | {row['xcom_bytes']:,} |"
        )
    backfill = facts.get("backfill")
    if backfill:
        share = backfill["fixed"]
        lines += [
            "",
            f"Backfill of {backfill.get('label') or str(backfill['days']) + ' days (scoring + monitoring)'}: "
            f"**{backfill['wall_seconds']:,.0f} s wall**; "
            f"{share['tasks']} step tasks, {share['task_wall_seconds']:,.0f} s of task walls, of which "
            f"{share['launch_seconds']:,.0f} s ({share['launch_share']:.0%}) launch cost (task wall - the step's own "
            f"seconds) and {share['step_body_seconds']:,.0f} s inside the steps.",
        ]
    return "\n".join(lines) + "\n"


# --- the driver (the stack, the runs, the REST reads) -------------------------------------------------------------


def collect_run(client: Any, dag_id: str, run: Mapping[str, Any]) -> RunTiming:
    """A finished DAG run's task instances and its steps' XComs, through the REST API."""
    quoted = urllib.parse.quote(run["dag_run_id"], safe="")
    base = f"/api/v2/dags/{dag_id}/dagRuns/{quoted}"
    rows = client.request("GET", f"{base}/taskInstances", params={"limit": 100})["task_instances"]
    # Which tasks pushed a return value: listed first, so a missing XCom is never read from a 404.
    listed = client.request("GET", f"{base}/taskInstances/~/xcomEntries", params={"xcom_key": "return_value"})
    pushed = {entry["task_id"] for entry in listed["xcom_entries"]}
    tasks = []
    for row in rows:
        xcom, log = None, []
        if row["task_id"] in pushed:
            xcom = client.request("GET", f"{base}/taskInstances/{row['task_id']}/xcomEntries/return_value")["value"]
        if row.get("try_number"):
            path = f"{base}/taskInstances/{row['task_id']}/logs/{row['try_number']}"
            log = client.request("GET", path, params={"full_content": "true"})["content"]
        tasks.append(TaskTiming.from_row(row, xcom, log))
    return RunTiming(
        dag_id=dag_id,
        run_id=run["dag_run_id"],
        run_type=run["run_type"],
        partition=run.get("partition_key") or (run.get("conf") or {}).get("partition"),
        state=run["state"],
        start_date=run.get("start_date"),
        end_date=run.get("end_date"),
        tasks=sorted(tasks, key=lambda t: t.start_date or ""),
    )


# The runs a benchmark counts: its triggered training run, the backfill's scoring runs, the monitoring runs those start.
COUNTED_RUN_TYPES = {"training": ("manual",), "scoring": ("backfill",), "monitoring": ("asset_triggered",)}


def collect_finished(state_file: Path) -> list[RunTiming]:
    """Every finished run of the counted types on a running `make up` stack (its state.json), e.g. a backfill that
    was stopped before its end, or runs a person drove by hand."""
    from mlcycle.airflow_api import AirflowClient

    state = json.loads(state_file.read_text())
    credentials = state["credentials"]["airflow"]
    client = AirflowClient(
        state["env"]["AIRFLOW_API_URL"], username=credentials["user"], password=credentials["password"]
    )
    runs = []
    for family, run_types in COUNTED_RUN_TYPES.items():
        dag_id = f"{USECASE}_{family}"
        listed = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        for run in listed["dag_runs"]:
            if run["run_type"] in run_types and run["state"] in ("success", "failed"):
                runs.append(collect_run(client, dag_id, run))
    return runs


def _settings(pairs: Sequence[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("AIRFLOW__"):
            raise SystemExit(f"--airflow {pair!r}: expected AIRFLOW__SECTION__KEY=VALUE")
        settings[key] = value
    return settings


def _generate(env: Mapping[str, str], rows: int | None, first: dt.date, last: dt.date, log: Path) -> dict[str, int]:
    from mlcycle_dev.benchmarks.nightly import mlcycle_command

    argv = [*mlcycle_command(), "generate", "--usecase", USECASE, "--start", str(first), "--end", str(last)]
    argv += ["--rows", str(rows)] if rows else []
    with log.open("w") as out:
        done = subprocess.run(argv, env=dict(env), stdout=subprocess.PIPE, stderr=out, text=True, check=False)
        out.write(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"mlcycle generate exited with {done.returncode}; see {log}")
    per_day: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])["metrics"]["rows"]
    return per_day


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from mlcycle.backfill import run_backfills
    from mlcycle.config import USECASES_ENV
    from mlcycle.specs.names import DagFamily
    from mlcycle_dev.benchmarks.harness import cpu_name
    from mlcycle_dev.benchmarks.nightly import LoadSampler, scaled_usecases
    from mlcycle_dev.demo_airflow import DEMO_AIRFLOW_SETTINGS
    from mlcycle_dev.stack.local import LocalStack

    training_day = FIRST_DAY + dt.timedelta(days=WINDOW_DAYS - 1)
    first, last = training_day + dt.timedelta(days=1), training_day + dt.timedelta(days=args.days)
    settings = _settings(args.airflow)
    usecases = scaled_usecases(work, max(args.rows or 0, 10_000))
    # The demo's settings for a 2-core machine (parallelism 3, DAG files parsed once), then the knobs under test.
    extra_env = {**DEMO_AIRFLOW_SETTINGS, USECASES_ENV: str(usecases), **settings}
    if args.threads:
        extra_env |= {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    dag_ids = [f.dag_id(USECASE) for f in (DagFamily.TRAINING, DagFamily.SCORING, DagFamily.MONITORING)]
    facts: dict[str, Any] = {"airflow_settings": settings, "cpu": cpu_name(), "cores": os.cpu_count()}
    root = work / "stack"
    work.chmod(0o711)  # PostgreSQL runs as its own account when we are root: it must pass through to its folder
    with LoadSampler() as load, LocalStack(root, extra_env=extra_env, base_port=args.base_port) as stack:
        assert stack.airflow is not None
        client = stack.airflow
        print(f"  stack up: Airflow {client.base_url}; started in {stack.startup_seconds}", flush=True)
        env = {**os.environ, **stack.client_environment(), USECASES_ENV: str(usecases)}
        per_day = _generate(env, args.rows, FIRST_DAY, last, work / "generate.log")
        facts["day_rows"] = int(statistics.median(per_day[d.isoformat()] for d in (first, last)))
        client.wait_for_dags(dag_ids, timeout=300)
        print(f"  generated {sum(per_day.values()):,} rows", flush=True)

        training = dag_ids[0]
        client.unpause(training)
        run_id = client.trigger(training, conf={"partition": training_day.isoformat()})["dag_run_id"]
        started = time.monotonic()
        state = client.wait_for_run(training, run_id, timeout=args.timeout)
        facts["training"] = {"state": state, "wall_seconds": time.monotonic() - started}
        print(f"  training {training_day}: {state} in {facts['training']['wall_seconds']:.0f} s", flush=True)
        if state != "success":
            raise RuntimeError(f"training run {run_id} ended {state}: {client.task_states(training, run_id)}")

        started = time.monotonic()
        results = run_backfills(client, USECASE, first, last, ["scoring", "monitoring"], timeout=args.timeout)
        wall = time.monotonic() - started
        print(f"  backfill {first}..{last}: {wall:.0f} s", flush=True)

        runs = [collect_run(client, training, client.dag_run(training, run_id))]
        # Read again: the backfill's listing of a run may predate its end.
        backfilled = [
            collect_run(client, dag_id, client.dag_run(dag_id, run["dag_run_id"]))
            for dag_id, found in results.items()
            for run in found
        ]
        runs += backfilled
        facts["backfill"] = {"days": args.days, "wall_seconds": wall, "fixed": fixed_share(backfilled)}
        facts["states"] = {r.run_id: r.state for r in runs if r.state != "success"}
        facts["load_min"], facts["load_max"] = load.span()
    return {"facts": facts, "runs": [asdict(run) for run in runs]}


# --- the step process's exit, A/B (`--exit-cost N`) -----------------------------------------------------------------

EXIT_VARIANTS = ("main", "entrypoint")


def timed_step(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, float]:
    """Run a step; wall, CPU seconds, and result -> exit: from its JSON result line to the process's end."""
    started = time.perf_counter()
    child = subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    result_at = None
    for line in child.stdout:
        if is_result(line.strip()):
            result_at = time.perf_counter()
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.perf_counter()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if child.returncode != 0 or result_at is None:
        raise RuntimeError(f"{shlex.join(argv)} exited with {child.returncode} (result line seen: {bool(result_at)})")
    return {"wall": ended - started, "cpu": usage.ru_utime + usage.ru_stime, "result_to_exit": ended - result_at}


def exit_cost(repeat: int, work: Path) -> dict[str, Any]:
    """The validate step (GX + MLflow imported) through `mlcycle.cli.main` and `.entrypoint`, interleaved.

    `main` ends the process as before (the interpreter's normal shutdown); `entrypoint` is the `mlcycle` command
    since this benchmark's fix (frozen objects at exit). Each run gets fresh embedded stores (a local folder,
    MLflow on SQLite) with one generated and ingested day: a day validated once is not validated again.
    """
    from mlcycle.config import USECASES_ENV
    from mlcycle.settings import embedded_environment
    from mlcycle_dev.benchmarks.nightly import mlcycle_command, scaled_usecases

    usecases = str(scaled_usecases(work, 10_000))
    day = ["--usecase", USECASE, "--partition", FIRST_DAY.isoformat()]
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in EXIT_VARIANTS}
    for round_ in range(repeat):
        for variant in EXIT_VARIANTS:
            root = work / f"{variant}-{round_}"
            env = {**os.environ, **embedded_environment(root), USECASES_ENV: usecases}
            _generate(env, None, FIRST_DAY, FIRST_DAY, work / "generate.log")
            timed_step([*mlcycle_command(), "ingest", *day], env)
            code = f"import sys; from mlcycle.cli import {variant}; sys.argv[0] = 'mlcycle'; sys.exit({variant}())"
            runs[variant].append(timed_step([sys.executable, "-c", code, "validate", *day], env))
    return {
        variant: {key: statistics.median(r[key] for r in found) for key in ("wall", "cpu", "result_to_exit")}
        | {"n": len(found)}
        for variant, found in runs.items()
    }


def _span(runs: Sequence[RunTiming]) -> float:
    """First start -> last end over `runs` (0 without any)."""
    starts = [t for t in (parse_time(r.start_date) for r in runs) if t is not None]
    ends = [t for t in (parse_time(r.end_date) for r in runs) if t is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="base rows a day (default: the generator's)")
    parser.add_argument("--days", type=int, default=30, help="days of scoring + monitoring to backfill (default 30)")
    parser.add_argument("--base-port", type=int, default=18200, help="the stack's six ports start here")
    parser.add_argument("--airflow", action="append", default=[], metavar="KEY=VALUE", help="Airflow configuration")
    parser.add_argument("--threads", type=int, default=None, help="OMP/BLAS threads per step")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds a run or the backfill may take")
    parser.add_argument("--workdir", default=None, help="keep the stack's folder and logs here (default: temporary)")
    parser.add_argument("--json", default=None, help="write every figure to this file")
    parser.add_argument("--markdown", default=None, help="write the tables (markdown) to this file")
    parser.add_argument("--render", default=None, help="only print (and --markdown) the tables of this --json file")
    parser.add_argument(
        "--exit-cost", type=int, default=0, metavar="N", help="only the A/B of the step process's exit, N rounds"
    )
    parser.add_argument(
        "--collect", default=None, metavar="STATE_JSON", help="only read the finished runs of a running stack"
    )
    args = parser.parse_args(argv)
    if args.collect:
        from mlcycle_dev.benchmarks.harness import cpu_name

        runs = collect_finished(Path(args.collect))
        load = os.getloadavg()[0]
        facts: dict[str, Any] = {
            "command": f"python -m mlcycle_dev.benchmarks.orchestration --collect {args.collect}",
            "cpu": cpu_name(),
        }
        facts |= {"cores": os.cpu_count(), "load_min": load, "load_max": load, "airflow_settings": {}, "day_rows": 0}
        facts["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        counted = {family: sum(1 for r in runs if r.family == family) for family in ("scoring", "monitoring")}
        facts["backfill"] = {
            "label": f"{counted['scoring']} scoring + {counted['monitoring']} monitoring runs (finished ones, collected)",
            "days": counted["scoring"],
            "wall_seconds": _span([r for r in runs if r.family != "training"]),
            "fixed": fixed_share([r for r in runs if r.family != "training"]),
        }
        saved: dict[str, Any] = {"facts": facts, "runs": [asdict(run) for run in runs]}
        if args.json:
            Path(args.json).write_text(json.dumps(saved, indent=2))
        print(markdown(saved))
        return 0
    if args.exit_cost:
        with tempfile.TemporaryDirectory(prefix="mlcycle-bench-exit-") as tmp:
            load = os.getloadavg()[0]
            found = exit_cost(args.exit_cost, Path(tmp))
        print(f"validate, {args.exit_cost} rounds, medians (load average {load:.1f} -> {os.getloadavg()[0]:.1f}):")
        for variant, row in found.items():
            print(
                f"  mlcycle.cli.{variant:<10} wall {row['wall']:.2f} s, CPU {row['cpu']:.2f} s, "
                f"result -> exit {row['result_to_exit']:.2f} s"
            )
        return 0
    if args.render:
        saved = json.loads(Path(args.render).read_text())
    else:
        command = "python -m mlcycle_dev.benchmarks.orchestration " + shlex.join(sys.argv[1:] if argv is None else argv)
        print(f"{command}: load average now {os.getloadavg()[0]:.1f}", flush=True)
        work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="mlcycle-bench-orch-"))
        work.mkdir(parents=True, exist_ok=True)
        # SIGTERM (a time-out, `kill`) leaves through the stack's __exit__ like Ctrl-C: nothing is left running.
        signal.signal(signal.SIGTERM, _interrupt)
        saved = bench(args, work)
        saved["facts"] |= {"command": command, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        if args.json:
            Path(args.json).write_text(json.dumps(saved, indent=2))
    text = markdown(saved)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 1 if saved["facts"].get("states") else 0


if __name__ == "__main__":
    raise SystemExit(main())
