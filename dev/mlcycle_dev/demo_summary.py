"""The demo's ending: what the three weeks produced, and who started what (the scheduler or the demo).

It reads what the steps wrote (the registry's tags, the storage root's monitoring summaries and quarantine
reasons) and what Airflow recorded (the runs and Asset events the `StoryClient` collected over REST).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlcycle.retraining import request_asset_name
from mlcycle.specs.names import DagFamily, ModelRole, Step
from mlcycle.storage.layout import PERFORMANCE_FILE, REASON_FILE, SUMMARY_FILE, Dataset, role_sub
from mlcycle.tags import Tag
from mlcycle_dev.demo_airflow import RunRecord, StoryClient

USECASE = "yarnit"


class AlertSink:
    """A local webhook (MLCYCLE_ALERT_WEBHOOK_URL) that keeps the alerts the DAG runs send."""

    def __init__(self) -> None:
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


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def summary(storage_root: Path, story: StoryClient, alerts: list[dict[str, Any]]) -> None:
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
        review = {k: tags[k] for k in (Tag.REVIEW, Tag.REVIEWED_BY, Tag.REVIEW_REASON, Tag.APPROVER) if k in tags}
        if review:
            print(f"      review: {review}")
    _drift_verdicts(storage_root, story.runs)
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
    for run in story.runs:
        if run.champion_before is not None:
            print(
                f"Champion across the rejected {run.dag_id} {run.partition}: "
                f"v{run.champion_before} before, v{run.champion_after} after"
            )
    _scheduler_runs(story.runs)
    _approvals(story.runs)
    _retraining_evidence(storage_root, story)
    if alerts:
        print(f"Alerts sent to the webhook ({len(alerts)}):")
        for alert in alerts:
            print(f"  {alert['text'][:220]}")
        print(f"  e.g. rerun: {alerts[0]['rerun']}")
    total = sum(r.seconds for r in story.runs)
    by_whom = sum(1 for r in story.runs if r.run_type != "manual")
    print(
        f"{len(story.runs)} DAG runs ({by_whom} created by the scheduler), {total:.0f}s from trigger to finish. "
        "Open the UIs with:  make ui"
    )


def _drift_verdicts(storage_root: Path, runs: list[RunRecord]) -> None:
    print(f"Drift verdicts ({DagFamily.MONITORING.dag_id(USECASE)}) and retraining decisions:")
    decisions = {r.partition: r.retraining for r in runs if r.retraining}
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


def _scheduler_runs(runs: list[RunRecord]) -> None:
    """The runs Airflow's scheduler created on its own (not triggered by the demo)."""
    scheduled = [r for r in runs if r.run_type != "manual"]
    print(f"Runs the scheduler created itself ({len(scheduled)}):")
    for run in scheduled:
        events = ", ".join(
            f"Asset event #{e['id']} of {e.get('name') or e.get('uri')} from {e.get('source_dag_id')}/"
            f"{e.get('source_run_id')} (partition key {e.get('partition_key') or (e.get('extra') or {}).get('partition')})"
            for e in run.consumed_events
        )
        print(
            f"  {run.dag_id} {run.run_id}: run type {run.run_type}, triggered by {run.triggered_by}, "
            f"partition {run.partition} (partition key {run.partition_key or '-'}) -> {run.state}"
        )
        if events:
            print(f"      consumed {events}")


def _approvals(runs: list[RunRecord]) -> None:
    answered = [(r, a) for r in runs for a in r.approvals]
    if not answered:
        print("Approvals: none requested (no gate decision asked for a human review)")
        return
    print(f"Approvals answered through the REST API ({len(answered)}):")
    for run, approval in answered:
        request, answer = approval["request"], approval["answer"]
        print(
            f"  {run.dag_id} {run.run_id} task {request['task_instance']['task_id']}: {request.get('subject')} -> "
            f"{answer.get('chosen_options')} by {(answer.get('responded_by') or {}).get('name')} "
            f"at {answer.get('responded_at')}"
        )
        reason = (answer.get("params_input") or {}).get("comment")
        if reason:
            print(f"      reason: {reason}")
        flagged = [line[2:] for line in str(request.get("body") or "").splitlines() if line.startswith("- ")]
        if flagged:
            print(f"      the gate asked because: {'; '.join(flagged)}")


def _retraining_evidence(storage_root: Path, story: StoryClient) -> None:
    """Each retraining request, from the drift that caused it to the gate decision on the model it caused."""
    events = story.asset_events(request_asset_name(USECASE))
    consumers = {e["id"]: r for r in story.runs for e in r.consumed_events}
    for event in events:
        extra = event.get("extra") or {}
        partition = extra.get("partition")
        print(f"Drift-triggered retrain, step by step (partition {partition}):")
        summary_file = storage_root / USECASE / Dataset.MONITORING / f"ds={partition}" / SUMMARY_FILE
        drift = json.loads(summary_file.read_text())
        print(
            f"  1. {DagFamily.MONITORING.dag_id(USECASE)} measured drift on {partition}: share "
            f"{drift['drift_share']:.2f} >= {drift['drift_share_threshold']:.2f} ({summary_file})"
        )
        for column in drift["columns"]:
            if column["drifted"]:
                print(
                    f"       {column['column']:24s} {column['stattest']:10s} score {column['score']} "
                    f"(threshold {column['threshold']})"
                )
        print(
            f"  2. its policy emitted Asset event #{event['id']} ({event.get('name')}) at {event.get('timestamp')} "
            f"from {event.get('source_dag_id')}/{event.get('source_run_id')}: {extra.get('reason')}"
        )
        run = consumers.get(event["id"])
        if run is None:
            print("  3. NO training run consumed this event")
            continue
        print(f"  3. the scheduler started {run.dag_id} {run.run_id} ({run.run_type}) -> {run.state}")
        evaluate = story.xcom(run.dag_id, run.run_id, Step.EVALUATE.value, "return_value") or {}
        metrics = evaluate.get("metrics") or {}
        print(
            f"  4. gate decision on v{metrics.get('candidate_version')}: {metrics.get('decision')} "
            f"(reasons on the version's tags above; record {(evaluate.get('outputs') or {}).get('decision')})"
        )
