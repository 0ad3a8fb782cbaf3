"""Alerts: one message per failed task (or policy notification), to Alertmanager or a webhook, else to the log.

Every alert names the DAG, the task, the partition, the one-line reason and the runbook page for it,
and ends with the command that reruns the day (`mlcycle rerun ...`): an alert should lead to a rerun,
not to an investigation of where things are.

Settings (per environment; helm/airflow-values.yaml in production):
- `MLCYCLE_ALERT_WEBHOOK_URL`: where alerts are POSTed; unset: the message is logged at ERROR level (the log
  fallback). Failures log this URL's scheme and host only: a Slack-style hook's path is its secret.
- `MLCYCLE_ALERT_FORMAT`: `alertmanager` (production: the URL is Alertmanager's `.../api/v2/alerts`, which routes
  the alert to people) or `webhook` (the default, for teams without Alertmanager: the flat JSON document with a
  Slack-compatible `text` field). docs/deploy.md, "Where alerts go".
- `MLCYCLE_ALERT_WEBHOOK_TOKEN`: optional bearer token for that URL.
- `MLCYCLE_RUNBOOK_BASE_URL`: where docs/runbooks/ is published.
A wrong format or a URL that is not http(s) fails the DAG import (FailureAlert checks them when built).

An alert from here never asks for an automatic rerun: in the Alertmanager format every alert carries the label
`mlcycle_auto_rerun="false"`, and only alerts labelled "true" are routed to mlcycle's alert receiver (which turns
alerts into reruns). A failure that reran itself could fail again, alert again and loop; a person decides.

Standard library and the parse-safe specs only (`mlcycle.specs`: the runbook of each step): this runs in
Airflow's task-failure callbacks.
"""

from __future__ import annotations

import datetime as dt
import enum
import http.client
import json
import logging
import os
import shlex
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.bases.notifier import BaseNotifier

from mlcycle.orchestration.macros import mlcycle_partition, mlcycle_result
from mlcycle.specs.catalog import runbook_for_task
from mlcycle.specs.names import AUTO_RERUN_LABEL, Runbook, Step, UnknownDagError, parse_dag_id
from mlcycle.specs.results import EvaluateResult

log = logging.getLogger(__name__)

WEBHOOK_URL_ENV = "MLCYCLE_ALERT_WEBHOOK_URL"
WEBHOOK_TOKEN_ENV = "MLCYCLE_ALERT_WEBHOOK_TOKEN"
FORMAT_ENV = "MLCYCLE_ALERT_FORMAT"
RUNBOOK_BASE_ENV = "MLCYCLE_RUNBOOK_BASE_URL"
DEFAULT_RUNBOOK_BASE = "https://github.com/mlcycle/mlcycle/blob/main/docs/runbooks"

# One runbook page per alert (docs/runbooks/<name>.md).
RUNBOOKS: dict[Runbook, str] = {
    Runbook.DATA_REJECTED: "A data contract rejected a partition; it is quarantined with its reason.",
    Runbook.STEP_FAILED: "A step failed after its retries (infrastructure, code or upstream services).",
    Runbook.MODEL_STALE: "The champion is older than its budget, or training has stopped.",
    Runbook.DRIFT_DETECTED: "The monitoring policy found drift or a performance drop.",
    Runbook.PROMOTION_REJECTED: "A promotion lost its compare-and-set or was refused.",
    Runbook.DATA_LATE: "The day's landing partition was not complete by the use case's data deadline.",
    Runbook.DEADLINE_MISSED: "A DAG run had not finished by the deadline of its day.",
    Runbook.COMPUTE_REGRESSION: "A candidate trains, predicts or scores worse than the champion beyond the factor.",
}
_WEBHOOK_TIMEOUT_S = 10
#: Fields of the message that become Alertmanager labels (what identifies the alert and groups it).
_LABEL_FIELDS = ("severity", "usecase", "dag_id", "task_id", "partition", "run_id")
#: How much of a refusing endpoint's answer the log keeps (Alertmanager explains a 400 in its body).
_ANSWER_CHARS = 300
_MALFORMED_URL = "<malformed URL>"


class AlertFormat(enum.StrEnum):
    ALERTMANAGER = "alertmanager"
    WEBHOOK = "webhook"


class AlertSettingsError(ValueError):
    """An alert setting has a value that cannot be used; the message names the variable and the value."""


def alert_format() -> AlertFormat:
    value = os.environ.get(FORMAT_ENV, "").strip() or AlertFormat.WEBHOOK
    try:
        return AlertFormat(value)
    except ValueError:
        raise AlertSettingsError(f"{FORMAT_ENV}={value!r} is not one of {[f.value for f in AlertFormat]}") from None


def check_settings() -> AlertFormat:
    """The configured format, after checking the alert settings; AlertSettingsError names a wrong one."""
    fmt = alert_format()
    url = os.environ.get(WEBHOOK_URL_ENV, "")
    if url and (urlsplit(url).scheme not in ("http", "https") or endpoint_for_log(url) == _MALFORMED_URL):
        raise AlertSettingsError(f"{WEBHOOK_URL_ENV} is not an http(s) URL (it starts {endpoint_for_log(url)!r})")
    return fmt


def endpoint_for_log(url: str) -> str:
    """`scheme://host[:port]` of `url`: what a log may show of a webhook URL (its path, query and user part can be
    secrets, e.g. a Slack hook's token)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return _MALFORMED_URL
    if not parts.scheme or not parts.hostname:
        return _MALFORMED_URL
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")


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


def alertmanager_alerts(message: dict[str, Any], now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The message as the body of Alertmanager's `POST /api/v2/alerts` (a list of postable alerts).

    No `endsAt`: a failure is an event, and Alertmanager resolves it after its `resolve_timeout`.
    """
    labels = {"alertname": str(message["alert"])}
    labels |= {name: str(message[name]) for name in _LABEL_FIELDS if message.get(name)}
    # Last, so that nothing in the message can set it: a failure alert never becomes an automatic rerun.
    labels[AUTO_RERUN_LABEL] = "false"
    annotations = {
        "summary": message["text"],
        "description": message["reason"],
        "runbook_url": message["runbook"],
        "rerun_command": message["rerun"],
        "log_url": message["log_url"],
        "try_number": "" if message.get("try_number") is None else str(message["try_number"]),
        "details": json.dumps(message["details"], sort_keys=True, default=str) if message.get("details") else "",
    }
    started = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if str(message.get("log_url", "")).startswith(("http://", "https://")):
        alert["generatorURL"] = message["log_url"]
    return [alert]


def send(message: dict[str, Any]) -> bool:
    """POST the message to the alert URL in the configured format; log it instead (or as well, on failure).

    Never raises: it runs in failure callbacks, where an exception would only hide the task's own failure.
    """
    url = os.environ.get(WEBHOOK_URL_ENV, "")
    document = json.dumps(message, sort_keys=True, default=str)
    if not url:
        log.error("ALERT (no %s set): %s", WEBHOOK_URL_ENV, document)
        return False
    endpoint = endpoint_for_log(url)
    try:
        fmt = check_settings()
    except AlertSettingsError as exc:
        log.error("ALERT (not sent: %s): %s", exc, document)
        return False
    body: Any = alertmanager_alerts(message) if fmt is AlertFormat.ALERTMANAGER else message
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(WEBHOOK_TOKEN_ENV, "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body, default=str).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(_ANSWER_CHARS).decode("utf-8", errors="replace")
        except OSError:  # the answer's body is a courtesy: the status alone says it was refused
            answer = ""
        failure = f"HTTP {exc.code} {exc.reason}: {' '.join(answer.split())}"
    except (urllib.error.URLError, OSError) as exc:
        failure = str(getattr(exc, "reason", None) or exc)
    except (ValueError, http.client.HTTPException) as exc:
        # A URL urllib cannot use, or an answer that is not HTTP (http.client.InvalidURL is no ValueError).
        failure = f"{type(exc).__name__}: {exc}"
    else:
        log.info("alert %s sent to %s (%s)", message["alert"], endpoint, fmt)
        return True
    # The alert must not be lost with the webhook: the task log keeps it. Only scheme and host of the URL.
    log.error("ALERT (%s at %s failed: %s): %s", fmt, endpoint, _without(failure, url), document)
    return False


def _without(text: str, url: str) -> str:
    """`text` with any part of `url` beyond its host removed (an error message may quote it)."""
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query, parts.netloc.rpartition("@")[0]):
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return text


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
    # A task that can fail in more than one way (the landing wait: late data, a bad marker) raises exceptions
    # that name their runbook; any other failure links its step's.
    named = getattr(exception, "runbook", None)
    return build_message(
        alert=named if isinstance(named, Runbook) else runbook_for_task(task_id),
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

    def __init__(self) -> None:
        super().__init__()
        # Built when a DAG file is parsed: a wrong alert setting fails the import, naming the setting, rather than
        # sending the first real failure's alert nowhere.
        check_settings()

    def notify(self, context: Any) -> None:
        send(failure_message(context))


def compute_regression_message(
    result: EvaluateResult, *, dag_id: str, task_id: str, run_id: str, log_url: str = ""
) -> dict[str, Any] | None:
    """The `compute-regression` alert for an evaluate result that reports computing-performance regressions
    (one alert for all of them: they are one candidate's one evaluation); None when it reports none."""
    metrics = result.metrics
    comparison = metrics.compute
    if not comparison.regressions:
        return None
    figures = "; ".join(
        f"{r.figure} {r.candidate:.4g} vs {r.champion:.4g} ({r.worse_by:.1f}x worse)" for r in comparison.regressions
    )
    consequence = (
        "the gate rejected it (compute_regression: hard)"
        if comparison.mode == "hard"
        else f"it still goes through the gate (compute_regression: soft; the gate decided {metrics.decision})"
    )
    return build_message(
        alert=Runbook.COMPUTE_REGRESSION,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        partition=result.partition,
        reason=f"version {metrics.candidate_version} is worse than champion version {metrics.champion_version} "
        f"beyond the factor {comparison.factor}: {figures}; {consequence}",
        severity="warning",
        log_url=log_url,
        details={
            "candidate_version": metrics.candidate_version,
            "champion_version": metrics.champion_version,
            "decision": metrics.decision,
            "factor": comparison.factor,
            "mode": comparison.mode,
            "regressions": [r.model_dump() for r in comparison.regressions],
        },
    )


class ComputeRegressionAlert(BaseNotifier):
    """`on_success_callback` of the training DAG's evaluate task: sends `compute-regression` when its result
    reports computing-performance regressions against the champion (Airflow runs it after the result's XCom
    is pushed), nothing otherwise."""

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        result = mlcycle_result(ti, Step.EVALUATE.value)
        assert isinstance(result, EvaluateResult)  # mlcycle_result validates into the step's result model
        dag_run = context.get("dag_run")
        message = compute_regression_message(
            result,
            dag_id=getattr(dag_run, "dag_id", "") or getattr(ti, "dag_id", ""),
            task_id=getattr(ti, "task_id", "") or Step.EVALUATE.value,
            run_id=getattr(dag_run, "run_id", "") or "",
            log_url=getattr(ti, "log_url", "") or "",
        )
        if message is None:
            log.info("evaluate found no computing-performance regression: no %s alert", Runbook.COMPUTE_REGRESSION)
            return
        send(message)
