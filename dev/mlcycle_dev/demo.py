"""`make demo`: three weeks of YarnIt through real Airflow, on the embedded default (SQLite, local files).

Timeline (fixed dates, so every run of the demo tells the same story):
- 2026-09-01 .. 2026-09-21 synthetic landing data; a heatwave (`covariate_shift`) from 2026-09-17, and a
  broken upstream export on 2026-09-16 (`schema_break`: `price` renamed, `device` dropped) that the data
  contract rejects and quarantines; the champion is untouched and the next day proceeds.
- `yarnit_training` for 2026-09-14 trains the first model; the gate promotes it (no champion yet).
- `yarnit_scoring` and `yarnit_monitoring` run for every day 2026-09-15 .. 2026-09-21.
- `yarnit_scoring` scores with @champion and shadow-scores with @challenger (once there is one);
  `yarnit_monitoring` reports data drift, prediction drift and, after the 1-day label delay, the
  champion's performance, checks freshness, and applies the retraining policy (`auto_retrain`).
- When the policy requests a retrain it emits an Airflow Asset event; the training DAG is scheduled on
  that Asset. Here the demo plays the scheduler's part and starts the training run for the Asset event
  (`airflow dags test` has no scheduler), passing the event along. Later drifted days fall in the
  cooldown: they only alert. One more monitoring run of the first drifted day with the Param
  `retraining_mode=notify_only` shows that mode: an alert, no retraining request.
- Alerts (task failures and policy notifications) go to a webhook the demo serves itself and are listed
  at the end, each with its runbook and rerun command.

DAG runs execute in-process through Airflow's own `dags test` code path, once per run, so the ~10 s
CLI start-up is paid once instead of per run. `python -m mlcycle_dev.demo ui` starts the UIs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlcycle.settings import REPO_ROOT, embedded_environment, home
from mlcycle.specs.names import DagFamily, ModelRole
from mlcycle.storage.layout import PERFORMANCE_FILE, REASON_FILE, SUMMARY_FILE, Dataset, role_sub

USECASE = "yarnit"
START, END = dt.date(2026, 9, 1), dt.date(2026, 9, 21)
FIRST_TRAINING = dt.date(2026, 9, 14)
DRIFT_FROM = dt.date(2026, 9, 17)
BROKEN_DAY = dt.date(2026, 9, 16)
SCENARIOS = [f"covariate_shift:{DRIFT_FROM}:{END}", f"schema_break:{BROKEN_DAY}"]
# The schema break must be stopped by the scoring DAG's contract gate: that run is meant to fail.
EXPECTED_FAILURES = {(DagFamily.SCORING.dag_id(USECASE), str(BROKEN_DAY))}


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True)


class AirflowRunner:
    """Runs DAG runs in this process through Airflow's `dags test` command code."""

    def __init__(self) -> None:
        from airflow.cli.commands import dag_command

        self._dag_command = dag_command
        self.runs: list[dict[str, Any]] = []

    def run(self, dag_id: str, day: dt.date, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        # A few minutes past midnight: distinct from the scheduled runs' logical dates of the same day.
        logical_date = dt.datetime(day.year, day.month, day.day, 0, 5, tzinfo=dt.UTC)
        if conf:
            logical_date += dt.timedelta(minutes=1 + len(self.runs))
        args = argparse.Namespace(
            dag_id=dag_id,
            logical_date=logical_date,
            conf=json.dumps(conf) if conf else None,
            use_executor=False,
            mark_success_pattern=None,
            bundle_name=None,
            dagfile_path=None,
            show_dagrun=False,
            imgcat_dagrun=False,
            save_dagrun=None,
        )
        started = time.perf_counter()
        failed = False
        try:
            self._dag_command.dag_test(args)
        except SystemExit:
            failed = True
        seconds = time.perf_counter() - started
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.logical_date == logical_date)
            ).all()
            ordered = sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date or 0, ti.task_id))
            states = {ti.task_id: str(ti.state) for ti in ordered}
            run_ids = {ti.run_id for ti in tis}
            decision = session.scalars(
                select(XComModel.value).where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id.in_(run_ids),
                    XComModel.task_id == "decide_retraining",
                    XComModel.key == "decision",
                )
            ).first()
        record = {
            "dag_id": dag_id,
            "partition": str(day),
            "seconds": round(seconds, 1),
            "failed": failed,
            "tasks": states,
            "retraining": XComModel.deserialize_value(SimpleNamespace(value=decision)) if decision else None,
        }
        self.runs.append(record)
        print(f"    {dag_id} {day}: {'FAILED' if failed else 'ok'} in {seconds:.0f}s  {states}", flush=True)
        return record


class AlertSink:
    """A local webhook (MLCYCLE_ALERT_WEBHOOK_URL) that keeps the alerts the DAG runs send."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.alerts = received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def champion_version() -> str | None:
    from mlcycle.config import get_usecase
    from mlcycle.registry.champion import current_champion

    return current_champion(get_usecase(USECASE))


def latest_retraining_event(after_id: int) -> dict[str, Any] | None:
    """The newest retraining-request Asset event emitted by the monitoring DAG (from Airflow's DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == f"{USECASE}_retraining_request", AssetEvent.id > after_id)
            .order_by(AssetEvent.id.desc())
        ).first()
        if event is None:
            return None
        return {
            "id": event.id,
            "extra": dict(event.extra or {}),
            "source": f"{event.source_dag_id}/{event.source_run_id}",
        }


def summary(storage_root: Path, runner: AirflowRunner, alerts: list[dict[str, Any]]) -> None:
    from mlcycle.config import get_usecase
    from mlcycle.registry.tracking import all_versions

    usecase = get_usecase(USECASE)
    _say("Summary")
    print(f"Registered model {usecase.registered_model_name!r}:")
    for version in all_versions(usecase):
        tags = version.tags
        print(
            f"  v{version.version}: aliases={version.aliases or '-'} partition={tags.get('mlcycle.partition')} "
            f"gate={tags.get('mlcycle.gate.decision', '-')}"
        )
        print(f"      gate: {tags.get('mlcycle.gate.reasons', '-')}")
        print(f"      trigger: {tags.get('mlcycle.trigger', '-')}")
    print("Drift verdicts (yarnit_monitoring) and retraining decisions:")
    decisions = {r["partition"]: r["retraining"] for r in runner.runs if r.get("retraining")}
    for folder in sorted((storage_root / USECASE / Dataset.MONITORING).glob("ds=*")):
        drift = json.loads((folder / SUMMARY_FILE).read_text())
        drifted = [c["column"] for c in drift["columns"] if c["drifted"]]
        verdict = "DATASET DRIFT" if drift["dataset_drift"] else "no drift"
        print(f"  {folder.name[3:]}: {verdict:13s} share={drift['drift_share']:.2f} drifted={drifted}")
        performance = json.loads((folder / PERFORMANCE_FILE).read_text())
        if performance["status"] == "computed":
            print(
                f"      performance of v{performance['model_version']} on {performance['partition']} (labels "
                f"arrived): {performance['metric']} {performance['value']:.4f} vs {performance['reference']:.4f} "
                f"at training time"
            )
        else:
            print(f"      performance: pending ({performance['reason']})")
        decision = decisions.get(folder.name[3:])
        if decision:
            action = {"retrain": "RETRAIN REQUESTED", "notify": "NOTIFY ONLY"}.get(decision["decision"], "nothing")
            print(f"      -> {action}: {decision['reason']}")
    print(f"Reports: {storage_root / USECASE / 'monitoring'}/ds=*/{{report,performance}}.html")
    shadow = sorted((storage_root / USECASE / Dataset.PREDICTIONS).glob(f"ds=*/{role_sub(ModelRole.CHALLENGER)}"))
    if shadow:
        days = ", ".join(p.parent.name[3:] for p in shadow)
        print(f"Shadow predictions of @challenger (kept apart, never served): {days}")
    print("Quarantined partitions (data contract):")
    for reason_file in sorted((storage_root / USECASE / Dataset.QUARANTINE).glob(f"ds=*/{REASON_FILE}")):
        reason = json.loads(reason_file.read_text())
        print(f"  {reason_file.parent.name[3:]}: {len(reason['failed'])} hard failures -> {reason_file}")
        for line in reason["failed"][:4]:
            print(f"      {line}")
    for run in runner.runs:
        if run.get("champion_before") is not None:
            print(
                f"Champion across the rejected {run['dag_id']} {run['partition']}: "
                f"v{run['champion_before']} before, v{run['champion_after']} after"
            )
    retrains = [
        r
        for r in runner.runs
        if r["dag_id"] == DagFamily.TRAINING.dag_id(USECASE) and r["partition"] != str(FIRST_TRAINING)
    ]
    for run in retrains:
        print(
            f"Retraining run caused by drift: {DagFamily.TRAINING.dag_id(USECASE)} for {run['partition']} -> {run['tasks']}"
        )
    if alerts:
        print(f"Alerts sent to the webhook ({len(alerts)}):")
        for alert in alerts:
            print(f"  {alert['text'][:220]}")
        print(f"  e.g. rerun: {alerts[0]['rerun']}")
    total = sum(r["seconds"] for r in runner.runs)
    print(f"{len(runner.runs)} DAG runs, {total:.0f}s of DAG time. Open the UIs with:  make ui")


def demo() -> int:
    env = _environment()
    os.environ.update({**env, **_quiet()})
    root = home()
    storage_root = Path(env["MLCYCLE_STORAGE_ROOT"])
    if root.exists() and any(root.iterdir()):
        _say(f"Starting from a clean slate: removing {root}")
        import shutil

        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    _say(f"Generating YarnIt landing data {START}..{END} with {', '.join(SCENARIOS)}")
    scenario_args = [arg for spec in SCENARIOS for arg in ("--scenario", spec)]
    _run([_bin("mlcycle"), "generate", "--usecase", USECASE, "--start", str(START), "--end", str(END), *scenario_args])
    _say("Initialising Airflow's metadata database (SQLite)")
    _run([_bin("airflow"), "db", "migrate"])

    sink = AlertSink()
    os.environ["MLCYCLE_ALERT_WEBHOOK_URL"] = sink.url
    runner = AirflowRunner()
    _say(f"Training the first model: {DagFamily.TRAINING.dag_id(USECASE)} for {FIRST_TRAINING}")
    runner.run(DagFamily.TRAINING.dag_id(USECASE), FIRST_TRAINING)

    last_event = 0
    day = FIRST_TRAINING + dt.timedelta(days=1)
    while day <= END:
        _say(f"Day {day}: scoring and monitoring")
        before = champion_version()
        scoring = runner.run(DagFamily.SCORING.dag_id(USECASE), day)
        if scoring["failed"]:
            scoring.update(champion_before=before, champion_after=champion_version())
        if day == DRIFT_FROM and not notify_only_shown(runner, day, last_event):
            return 1
        runner.run(DagFamily.MONITORING.dag_id(USECASE), day)
        event = latest_retraining_event(last_event)
        if event is not None:
            last_event = event["id"]
            reason = f"Asset event #{event['id']} from {event['source']}: {event['extra'].get('reason')}"
            _say(f"Retraining requested -> {DagFamily.TRAINING.dag_id(USECASE)} for {event['extra']['partition']}")
            runner.run(
                DagFamily.TRAINING.dag_id(USECASE),
                dt.date.fromisoformat(event["extra"]["partition"]),
                conf={"partition": event["extra"]["partition"], "reason": reason},
            )
        day += dt.timedelta(days=1)

    summary(storage_root, runner, sink.alerts)
    sink.close()
    print(f"Demo wall time: {time.perf_counter() - started:.0f}s")
    outcomes = {(r["dag_id"], r["partition"]): r["failed"] for r in runner.runs}
    unexpected = [key for key, failed in outcomes.items() if failed != (key in EXPECTED_FAILURES)]
    if unexpected:
        print(f"UNEXPECTED outcomes (failed when it should pass, or the reverse): {unexpected}")
    return 1 if unexpected else 0


def notify_only_shown(runner: AirflowRunner, day: dt.date, last_event: int) -> bool:
    """Monitor the first drifted day with the Param `retraining_mode=notify_only`: an alert, no Asset event."""
    _say(f"First, {day} under `notify_only` (monitoring DAG Param retraining_mode): alert only")
    run = runner.run(DagFamily.MONITORING.dag_id(USECASE), day, conf={"retraining_mode": "notify_only"})
    runner.runs.remove(run)  # the summary tells the scheduled story; this run is shown here
    decision = run["retraining"] or {}
    print(f"    decision: {decision.get('decision')}: {decision.get('reason')}")
    if latest_retraining_event(last_event) is not None or decision.get("decision") != "notify":
        print("UNEXPECTED: the notify_only run did not just notify")
        return False
    _say(f"Then {day} under the use case's policy (auto_retrain)")
    return True


def _environment() -> dict[str, str]:
    """The embedded default, with this venv's bin/ first on PATH (`airflow standalone` spawns `airflow`)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**embedded_environment(), "PATH": path}


def _quiet() -> dict[str, str]:
    # `dags test` streams every task log line; the demo shows one line per DAG run instead.
    # MLCYCLE_DEMO_VERBOSE=1 brings the full Airflow and step logs back.
    if os.environ.get("MLCYCLE_DEMO_VERBOSE"):
        return {}
    return {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}


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
    return demo() if args.command == "run" else ui()


if __name__ == "__main__":
    raise SystemExit(main())
