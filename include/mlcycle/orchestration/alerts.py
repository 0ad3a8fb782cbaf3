"""Alerts: one message per failed task (or policy notification), to a webhook, else to the log.

Every alert names the DAG, the task, the partition, the one-line reason and the runbook page for it,
and ends with the command that reruns the day (`mlcycle rerun ...`): an alert should lead to a rerun,
not to an investigation of where things are.

Settings (per environment, from a Kubernetes Secret in production):
- `MLCYCLE_ALERT_WEBHOOK_URL`: POST target for the JSON message (Slack-compatible `text` field included);
  unset: the message is logged at ERROR level (the log fallback).
- `MLCYCLE_ALERT_WEBHOOK_TOKEN`: optional bearer token for that webhook.
- `MLCYCLE_RUNBOOK_BASE_URL`: where docs/runbooks/ is published.

Standard library and the parse-safe specs only (`mlcycle.specs`: the runbook of each step): this runs in
Airflow's task-failure callbacks.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import urllib.error
import urllib.request
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from mlcycle.orchestration.macros import mlcycle_partition
from mlcycle.specs.catalog import runbook_for_task
from mlcycle.specs.names import Runbook, UnknownDagError, parse_dag_id

log = logging.getLogger(__name__)

WEBHOOK_URL_ENV = "MLCYCLE_ALERT_WEBHOOK_URL"
WEBHOOK_TOKEN_ENV = "MLCYCLE_ALERT_WEBHOOK_TOKEN"
RUNBOOK_BASE_ENV = "MLCYCLE_RUNBOOK_BASE_URL"
DEFAULT_RUNBOOK_BASE = "https://github.com/mlcycle/mlcycle/blob/main/docs/runbooks"

# One runbook page per alert (docs/runbooks/<name>.md).
RUNBOOKS: dict[Runbook, str] = {
    Runbook.DATA_REJECTED: "A data contract rejected a partition; it is quarantined with its reason.",
    Runbook.STEP_FAILED: "A step failed after its retries (infrastructure, code or upstream services).",
    Runbook.MODEL_STALE: "The champion is older than its budget, or training has stopped.",
    Runbook.DRIFT_DETECTED: "The monitoring policy found drift or a performance drop.",
    Runbook.PROMOTION_REJECTED: "A promotion lost its compare-and-set or was refused.",
}
_WEBHOOK_TIMEOUT_S = 10


def runbook_url(name: str) -> str:
    base = os.environ.get(RUNBOOK_BASE_ENV, DEFAULT_RUNBOOK_BASE).rstrip("/")
    return f"{base}/{name}.md"


def rerun_command(usecase: str, family: str, partition: str, reason: str) -> str:
    return shlex.join(
        ["mlcycle", "rerun", "--usecase", usecase, "--dag", family, "--partition", partition, "--reason", reason]
    )


def build_message(
    *,
    alert: str,
    dag_id: str,
    task_id: str,
    run_id: str,
    partition: str,
    reason: str,
    severity: str = "error",
    try_number: int | None = None,
    log_url: str = "",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert document (pure: unit-tested; the same shape for the webhook and the log)."""
    reason = " ".join(reason.split())[:500]  # one line, bounded
    try:
        usecase, family = parse_dag_id(dag_id)
    except UnknownDagError:  # not one of ours: the alert must still go out, without a rerun command
        usecase, family = "", None
    runbook = runbook_url(alert)
    rerun = rerun_command(usecase, family, partition, f"after {alert}: <what was fixed>") if family else ""
    text = f"[{severity.upper()}] {alert}: {dag_id}.{task_id} for {partition}: {reason} | runbook: {runbook}"
    return {
        "text": text,
        "alert": alert,
        "severity": severity,
        "usecase": usecase,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "partition": partition,
        "reason": reason,
        "runbook": runbook,
        "rerun": rerun,
        "try_number": try_number,
        "log_url": log_url,
        "details": details or {},
    }


def send(message: dict[str, Any]) -> bool:
    """POST the message to the webhook; log it instead (or as well, on failure). Never raises."""
    url = os.environ.get(WEBHOOK_URL_ENV, "")
    if not url:
        log.error("ALERT (no %s set): %s", WEBHOOK_URL_ENV, json.dumps(message, sort_keys=True))
        return False
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(WEBHOOK_TOKEN_ENV, "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(message).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_S) as response:
            response.read()
        log.info("alert %s sent to the webhook", message["alert"])
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The alert must not be lost with the webhook: the task log keeps it.
        log.error("ALERT (webhook %s failed: %s): %s", url, exc, json.dumps(message, sort_keys=True))
        return False


def _partition(context: Any) -> str:
    try:
        return mlcycle_partition(context.get("dag_run"), context.get("params"))
    except Exception:  # an alert about a broken run must still go out
        return "unknown"


def failure_message(context: Any) -> dict[str, Any]:
    """The alert for a task that failed for good (retries exhausted, or REJECTED)."""
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", "") or ""
    exception = context.get("exception")
    reason = str(exception).strip().splitlines()[0] if exception else "task failed (no exception recorded)"
    dag_run = context.get("dag_run")
    return build_message(
        alert=runbook_for_task(task_id),
        dag_id=getattr(dag_run, "dag_id", "") or getattr(ti, "dag_id", ""),
        task_id=task_id,
        run_id=getattr(dag_run, "run_id", "") or "",
        partition=_partition(context),
        reason=reason,
        try_number=getattr(ti, "try_number", None),
        log_url=getattr(ti, "log_url", "") or "",
    )


class FailureAlert(BaseNotifier):
    """`on_failure_callback` of every mlcycle task: sends `failure_message(context)`."""

    def notify(self, context: Any) -> None:
        send(failure_message(context))
