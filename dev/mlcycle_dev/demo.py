"""`make demo`: three weeks of YarnIt through a real Airflow scheduler, on the embedded default (SQLite, local files).

Timeline (fixed dates, so every run of the demo tells the same story):
- 2026-09-01 .. 2026-09-21 synthetic landing data; a heatwave (`covariate_shift`) from 2026-09-17, and a
  broken upstream export on 2026-09-16 (`schema_break`: `price` renamed, `device` dropped) that the data
  contract rejects and quarantines; the champion is untouched and the next day proceeds.
- `yarnit_training` for 2026-09-14 trains the first model; the gate promotes it (no champion yet).
- `yarnit_scoring` runs for every day 2026-09-15 .. 2026-09-21 (partition key = the day); each day's predictions
  partition makes the *scheduler* start `yarnit_monitoring` for that day (ADR 0010), except the quarantined day,
  which has no predictions.
- `yarnit_scoring` scores with @champion and shadow-scores with @challenger (once there is one);
  `yarnit_monitoring` reports data drift, prediction drift and, after the 1-day label delay, the
  champion's performance, checks freshness, and applies the retraining policy (`auto_retrain`).
- When the policy requests a retrain, the monitoring run emits an Airflow Asset event; the training DAG is
  scheduled on that Asset, so the *scheduler* starts the retraining run, with the event's partition key and
  reason. Later drifted days fall in the cooldown: they only alert. One more monitoring run of the first
  drifted day with the Param `retraining_mode=notify_only` shows that mode: an alert, no request.
- From 2026-09-15 an upstream change to the customer-history export counts each session's own order
  (`label_leak`: `days_since_last_purchase` is 0 on every purchase). Monitoring shows that one column drifting;
  the nightly `yarnit_training` of 2026-09-21, trained on those days, scores implausibly well, so the gate asks a
  person: the run stops at an Airflow approval, which the demo's reviewer answers through the REST API, as a
  reviewer's client would (`answer_approval`): reject, with a reason, and the champion stays.
- Alerts (task failures and policy notifications) go to a webhook the demo serves itself and are listed
  at the end, each with its runbook and rerun command.

How: the demo starts Airflow's own services for its duration (api-server, scheduler, dag-processor, triggerer;
LocalExecutor; settings for a 2-core machine in `demo_airflow.DEMO_AIRFLOW_SETTINGS`) and drives the story
through the REST API only: it triggers the first training and each day's scoring, and waits for the runs the
scheduler creates itself (monitoring, the retraining). Service logs: `$MLCYCLE_HOME/airflow/logs/services/`. Everything it
starts is stopped at the end, on failure and on Ctrl-C. `python -m mlcycle_dev.demo ui` starts the UIs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlcycle.retraining import request_asset_name
from mlcycle.settings import REPO_ROOT, embedded_environment, home
from mlcycle.specs.names import DagFamily
from mlcycle_dev.demo_airflow import DEMO_AIRFLOW_SETTINGS, RunRecord, StoryClient
from mlcycle_dev.demo_summary import AlertSink, champion_version, summary
from mlcycle_dev.stack.airflow import AirflowServices

USECASE = "yarnit"
START, END = dt.date(2026, 9, 1), dt.date(2026, 9, 21)
FIRST_TRAINING = dt.date(2026, 9, 14)
DRIFT_FROM = dt.date(2026, 9, 17)
BROKEN_DAY = dt.date(2026, 9, 16)
LEAK_FROM = dt.date(2026, 9, 15)
SCENARIOS = [f"covariate_shift:{DRIFT_FROM}:{END}", f"schema_break:{BROKEN_DAY}", f"label_leak:{LEAK_FROM}:{END}"]
TRAINING, SCORING, MONITORING = (
    f.dag_id(USECASE) for f in (DagFamily.TRAINING, DagFamily.SCORING, DagFamily.MONITORING)
)
# The schema break must be stopped by the scoring DAG's contract gate: that run is meant to fail.
EXPECTED_FAILURES = {(SCORING, str(BROKEN_DAY))}
# The API port of the demo's Airflow (default: a free one); `make ui` afterwards uses its own.
PORT_ENV = "MLCYCLE_DEMO_AIRFLOW_PORT"


def monitoring_of(story: StoryClient, day: dt.date) -> RunRecord:
    """The scheduler's monitoring run for `day`: scoring's predictions partition D starts it (ADR 0010)."""
    return story.scheduled_run(
        MONITORING,
        lambda run: run["run_type"] == "asset_triggered" and run.get("partition_key") == str(day),
        f"the scheduler's {MONITORING} run for partition {day}",
    )


# ---- THE ONE PLACE where the demo answers a pending approval, as a reviewer's client would ------------------
# ApprovalOperator.APPROVE / REJECT (airflow.providers.standard.operators.hitl); the form's reason field.
REVIEWER_ANSWER, REVIEWER_REJECTS = "Approve", "Reject"
REASON_FIELD = "comment"  # mlcycle.orchestration.approval.COMMENT (not imported: Airflow's side of the project)
LEAKAGE_FLAG = "possible leakage"


def answer_approval(airflow: AirflowServices, pending: dict[str, Any]) -> dict[str, Any]:
    """Answer a pending human-in-the-loop request through the REST API (`AirflowClient.respond`), as a reviewer
    who read its body would: a candidate flagged for possible leakage is rejected with the reason, any other
    review is approved."""
    ti = pending["task_instance"]
    leakage = LEAKAGE_FLAG in str(pending.get("body") or "")
    answer = REVIEWER_REJECTS if leakage else REVIEWER_ANSWER
    reason = (
        "days_since_last_purchase is 0 on every purchase since 2026-09-15 (the export counts the session's own "
        "order): the label leaks into a feature; keep the champion until the export is fixed"
        if leakage
        else "large but explained change: the data moved and the candidate holds on every slice"
    )
    _say(f"Approval requested in {ti['dag_id']}/{ti['task_id']}: {pending.get('subject')}")
    print(f"    the reviewer reads the decision record and answers {answer!r}: {reason}", flush=True)
    # The reason goes in the form's field where the request has one (mlcycle's review does); Airflow refuses an
    # answer that names a field its request does not define.
    form = {REASON_FIELD: reason} if REASON_FIELD in (pending.get("params") or {}) else {}
    return airflow.respond(ti["dag_id"], ti["dag_run_id"], ti["task_id"], [answer], form, map_index=ti["map_index"])


# ---- the story ----------------------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def tell_story(story: StoryClient) -> None:
    """The three weeks: the first training, then each day's scoring and monitoring, and what they cause."""
    _say(f"Training the first model: {TRAINING} for {FIRST_TRAINING}")
    story.run(TRAINING, FIRST_TRAINING, note="The demo's first model", partition_key=True)
    requests = request_asset_name(USECASE)
    answered = len(story.asset_events(requests))
    day = FIRST_TRAINING + dt.timedelta(days=1)
    while day <= END:
        _say(f"Day {day}: scoring and monitoring")
        before = champion_version()
        scoring = story.run(SCORING, day, partition_key=True)
        if scoring.failed:
            scoring.champion_before, scoring.champion_after = before, champion_version()
        if scoring.failed:
            # No predictions for the day, so no monitoring run: the scheduler starts one per predictions partition.
            day += dt.timedelta(days=1)
            continue
        monitoring_of(story, day)
        events = story.asset_events(requests)
        if len(events) > answered:
            event = events[-1]
            answered = len(events)
            _say(
                f"Retraining requested: Asset event #{event['id']} for {event['extra'].get('partition')} -> "
                f"waiting for the scheduler's {TRAINING} run"
            )
            story.scheduled_run(
                TRAINING,
                lambda run: run["run_type"] == "asset_triggered",
                f"the Asset-triggered {TRAINING} run for event #{event['id']}",
            )
        if day == DRIFT_FROM:
            show_notify_only(story, day, answered)
        day += dt.timedelta(days=1)
    show_review(story)


def show_review(story: StoryClient) -> None:
    """The nightly training of the last day learns the leak; the gate asks a person, who rejects it."""
    _say(f"Nightly training {TRAINING} for {END}: trained on days whose export leaks the label")
    before = champion_version()
    run = story.run(TRAINING, END, note="Nightly training on the leaky export", partition_key=True)
    if not run.approvals:
        raise DemoError(f"{TRAINING} {END} ({run.run_id}) asked for no review: the gate did not flag the leak")
    if champion_version() != before:
        raise DemoError(f"the rejected candidate of {run.run_id} replaced @champion v{before}")


def show_notify_only(story: StoryClient, day: dt.date, answered: int) -> None:
    """Monitor the first drifted day with the Param `retraining_mode=notify_only`: an alert, no Asset event."""
    _say(f"Again {day}, now under `notify_only` (monitoring DAG Param retraining_mode): alert only")
    run = story.run(MONITORING, day, conf={"retraining_mode": "notify_only"}, partition_key=True)
    story.runs.remove(run)  # the summary tells the policy's story; this run is shown here
    decision = run.retraining or {}
    print(f"    decision: {decision.get('decision')}: {decision.get('reason')}")
    if len(story.asset_events(request_asset_name(USECASE))) != answered or decision.get("decision") != "notify":
        raise DemoError(f"the notify_only run {run.run_id} did not just notify: {decision}")


class DemoError(RuntimeError):
    """The story did not go as it must (a run that should pass failed, a mode did not hold)."""


def demo() -> int:
    env = _environment()
    os.environ.update(env)  # the summary reads the same stores (registry, storage) as the tasks
    root = home()
    if root.exists() and any(root.iterdir()):
        _say(f"Starting from a clean slate: removing {root}")
        import shutil

        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    _say(f"Generating YarnIt landing data {START}..{END} with {', '.join(SCENARIOS)}")
    scenario_args = [arg for spec in SCENARIOS for arg in ("--scenario", spec)]
    generate = [_bin("mlcycle"), "generate", "--usecase", USECASE, "--start", str(START), "--end", str(END)]
    subprocess.run([*generate, *scenario_args], check=True)

    sink = AlertSink()
    services_env = {**DEMO_AIRFLOW_SETTINGS, **os.environ, "MLCYCLE_ALERT_WEBHOOK_URL": sink.url}
    port = int(os.environ[PORT_ENV]) if os.environ.get(PORT_ENV) else None
    airflow = AirflowServices(services_env, port=port)
    # SIGTERM (CI, `kill`) ends the demo like Ctrl-C: through the `finally` below, which stops every service.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _say("Starting Airflow: api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite)")
        airflow.start()
        print(f"    healthy after {airflow.startup_seconds}s; Airflow UI {airflow.base_url}", flush=True)
        dag_ids = [TRAINING, SCORING, MONITORING]
        airflow.wait_for_dags(dag_ids, timeout=240)
        story = StoryClient(airflow, answer_approval)
        held = story.hold_back_todays_runs(dag_ids)
        if held:
            print(
                f"    held back the cron runs Airflow would start on unpausing (no data for them): {held}", flush=True
            )
        # Partition-keyed cron schedules (training, scoring: ADR 0010) cannot be held back that way (Airflow 3.3
        # dedupes scheduled runs by logical date, which they have none of): unpausing starts their latest cron
        # partition, a recent day the replay has no data for, and its wait fails with data-late, as it would in
        # production. Those alerts are listed at the end with the others.
        print(
            "    unpausing: the scheduler starts the latest cron partition of training and scoring (no data in "
            "this replay: each ends in a data-late alert, as in production)",
            flush=True,
        )
        for dag_id in dag_ids:
            airflow.unpause(dag_id)
        tell_story(story)
        summary(Path(os.environ["MLCYCLE_STORAGE_ROOT"]), story, sink.alerts)
    finally:
        _say("Stopping Airflow")
        left = airflow.stop()
        sink.close()
        if left:
            print(f"WARNING: processes still alive after SIGKILL: {left}")
    print(f"Demo wall time: {time.perf_counter() - started:.0f}s")
    outcomes = {(r.dag_id, r.partition): r.failed for r in story.runs}
    unexpected = [key for key, failed in outcomes.items() if failed != (key in EXPECTED_FAILURES)]
    if unexpected:
        print(f"UNEXPECTED outcomes (failed when it should pass, or the reverse): {unexpected}")
    return 1 if unexpected else 0


def _environment() -> dict[str, str]:
    """The embedded default, with this venv's bin/ first on PATH (`airflow standalone` spawns `airflow`)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**embedded_environment(), "PATH": path}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_group(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM a service's whole process group; SIGKILL what is still there after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader so the group can empty
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def ui() -> int:
    """Start Airflow (standalone: api-server, scheduler, dag-processor, triggerer) and the MLflow UI."""
    env = {**os.environ, **_environment()}
    mlflow_port = os.environ.get("MLFLOW_PORT", "5000")
    server = [
        _bin("mlflow"), "server",
        "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
        "--default-artifact-root", env["MLCYCLE_ARTIFACT_ROOT"],
        "--host", "127.0.0.1", "--port", mlflow_port,
    ]  # fmt: skip
    # Each service gets its own process group, so stopping it stops everything it spawned
    # (`airflow standalone` leaves its api-server, scheduler, ... orphaned when only it is signalled).
    processes = [
        subprocess.Popen([_bin("airflow"), "standalone"], env=env, start_new_session=True),
        subprocess.Popen(server, env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, start_new_session=True),
    ]
    print(
        f"Airflow UI: http://127.0.0.1:{env['AIRFLOW__API__PORT']} (user 'admin'; password in "
        f"{env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated)\n"
        f"MLflow UI:  http://127.0.0.1:{mlflow_port}\nCtrl-C stops both.",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            _stop_group(process)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle_dev.demo", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["run", "ui"], default="run")
    args = parser.parse_args(argv)
    os.chdir(REPO_ROOT)
    if args.command == "ui":
        return ui()
    try:
        return demo()
    except DemoError as error:
        print(f"DEMO FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
