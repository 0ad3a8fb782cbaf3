"""Failure alerts: the message names DAG, task, partition, reason and runbook; the webhook gets it, else the log."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from mlcycle.orchestration.alerts import RUNBOOKS, build_message, failure_message, runbook_url, send
from mlcycle.settings import REPO_ROOT


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _context(task_id: str, exception: Exception) -> dict[str, Any]:
    dag_run = SimpleNamespace(
        dag_id="yarnit_scoring", run_id="scheduled__2026-09-16", conf={}, logical_date=None, run_after=None
    )
    ti = SimpleNamespace(task_id=task_id, dag_id="yarnit_scoring", try_number=1, log_url="http://airflow/log")
    return {"dag_run": dag_run, "ti": ti, "params": {"partition": "2026-09-16"}, "exception": exception}


def test_every_alert_has_a_runbook_page() -> None:
    for name in RUNBOOKS:
        page = REPO_ROOT / "docs" / "runbooks" / f"{name}.md"
        assert page.is_file(), f"missing runbook {page}"
        assert "## Rerun" in page.read_text(), f"{page} must say how to rerun"


def test_failure_message_names_everything_an_on_call_needs() -> None:
    error = RuntimeError("mlcycle validate: rejected (not retried): [hard] table: columns missing ['price']\nTrace...")
    message = failure_message(_context("validate", error))
    assert message["alert"] == "data-rejected" and message["runbook"] == runbook_url("data-rejected")
    assert (message["dag_id"], message["task_id"], message["partition"]) == ("yarnit_scoring", "validate", "2026-09-16")
    assert message["reason"] == "mlcycle validate: rejected (not retried): [hard] table: columns missing ['price']"
    assert message["rerun"].startswith("mlcycle rerun --usecase yarnit --dag scoring --partition 2026-09-16")
    assert "yarnit_scoring.validate for 2026-09-16" in message["text"] and "runbook" in message["text"]
    assert failure_message(_context("freshness", error))["alert"] == "model-stale"
    assert failure_message(_context("score", error))["alert"] == "step-failed"


def test_send_posts_to_the_webhook(webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = webhook
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_TOKEN", "s3cret")
    monkeypatch.delenv("MLCYCLE_ALERT_FORMAT", raising=False)
    message = build_message(
        alert="drift-detected", dag_id="yarnit_monitoring", task_id="notify", run_id="r", partition="2026-09-17",
        reason="dataset drift", severity="warning",
    )  # fmt: skip
    assert send(message) is True
    assert received[0]["auth"] == "Bearer s3cret" and received[0]["alert"] == "drift-detected"


def test_send_falls_back_to_the_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    message = build_message(
        alert="step-failed", dag_id="yarnit_training", task_id="train", run_id="r", partition="2026-09-14",
        reason="OOMKilled",
    )  # fmt: skip
    monkeypatch.delenv("MLCYCLE_ALERT_WEBHOOK_URL", raising=False)
    with caplog.at_level(logging.ERROR):
        assert send(message) is False
    assert "ALERT" in caplog.text and "OOMKilled" in caplog.text
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert send(message) is False  # an unreachable webhook never raises; the log keeps the alert
    assert "OOMKilled" in caplog.text


def test_each_step_task_alerts_with_the_runbook_of_its_spec() -> None:
    from mlcycle.specs.names import Runbook

    assert failure_message(_context("freshness", RuntimeError("stale")))["alert"] == "model-stale"
    assert failure_message(_context("promote", RuntimeError("lost the CAS")))["alert"] == "promotion-rejected"
    assert failure_message(_context("score", RuntimeError("boom")))["alert"] == "step-failed"
    assert failure_message(_context("decide_retraining", RuntimeError("boom")))["alert"] == "step-failed"
    assert set(RUNBOOKS) == set(Runbook)


def test_dag_ids_are_built_and_parsed_by_one_enum() -> None:
    from mlcycle.specs.names import DagFamily, UnknownDagError, parse_dag_id

    assert DagFamily.SCORING.dag_id("yarn_it") == "yarn_it_scoring"
    assert parse_dag_id("yarn_it_scoring") == ("yarn_it", DagFamily.SCORING)
    with pytest.raises(UnknownDagError, match=r"'yarnit_scorin': 'scorin' is not a DAG family"):
        parse_dag_id("yarnit_scorin")
    with pytest.raises(UnknownDagError, match="expected one of"):
        DagFamily.parse("backfill")
    message = build_message(
        alert="step-failed", dag_id="yarn_it_training", task_id="train", run_id="r", partition="2026-09-16", reason="x"
    )
    assert message["usecase"] == "yarn_it" and "--dag training" in message["rerun"]


def test_the_alertmanager_format_posts_v2_alerts_that_never_ask_for_a_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    """H2: with MLCYCLE_ALERT_FORMAT=alertmanager, send() posts what Alertmanager's `POST /api/v2/alerts` accepts,
    and every alert mlcycle sends is labelled mlcycle_auto_rerun="false" (the route to the rerun receiver needs
    "true"), whatever the message says."""
    from support.alerting import ALERTMANAGER_API_PATH, alertmanager_v2_problems, recording_endpoint

    message = failure_message(_context("validate", RuntimeError("mlcycle validate: rejected: [hard] price < 0")))
    message["details"] = {"mlcycle_auto_rerun": "true"}  # nothing in a message can change the label
    with recording_endpoint() as alertmanager:
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", alertmanager.url + ALERTMANAGER_API_PATH)
        monkeypatch.setenv("MLCYCLE_ALERT_FORMAT", "alertmanager")
        assert send(message) is True
    (posted,) = alertmanager.on(ALERTMANAGER_API_PATH)
    assert alertmanager_v2_problems(posted) == []
    (alert,) = posted
    assert alert["labels"] == {
        "alertname": "data-rejected",
        "severity": "error",
        "usecase": "yarnit",
        "dag_id": "yarnit_scoring",
        "task_id": "validate",
        "partition": "2026-09-16",
        "run_id": "scheduled__2026-09-16",
        "mlcycle_auto_rerun": "false",
    }
    assert alert["annotations"]["runbook_url"] == runbook_url("data-rejected")
    assert alert["annotations"]["rerun_command"].startswith("mlcycle rerun --usecase yarnit --dag scoring")
    assert alert["annotations"]["description"] == "mlcycle validate: rejected: [hard] price < 0"
    assert alert["generatorURL"] == "http://airflow/log" and alert["startsAt"].endswith("Z")


def test_the_plain_webhook_format_stays_the_default(
    webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Teams without Alertmanager: MLCYCLE_ALERT_FORMAT unset or `webhook` posts the flat document (Slack `text`)."""
    url, received = webhook
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", url)
    monkeypatch.delenv("MLCYCLE_ALERT_FORMAT", raising=False)
    assert send(failure_message(_context("score", RuntimeError("boom")))) is True
    monkeypatch.setenv("MLCYCLE_ALERT_FORMAT", "webhook")
    assert send(failure_message(_context("score", RuntimeError("boom")))) is True
    assert [r["text"].startswith("[ERROR] step-failed: yarnit_scoring.score") for r in received] == [True, True]


def test_an_unknown_alert_format_is_named_and_the_alert_is_kept_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/api/v2/alerts")
    monkeypatch.setenv("MLCYCLE_ALERT_FORMAT", "pagerduty")
    with caplog.at_level(logging.ERROR):
        assert send(failure_message(_context("score", RuntimeError("boom")))) is False
    assert "MLCYCLE_ALERT_FORMAT='pagerduty'" in caplog.text and "'alertmanager', 'webhook'" in caplog.text
    assert "boom" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/services/T0SECRET/B0SECRET/tokenSECRET",  # a Slack-style hook: the path is the secret
        "http://user:passSECRET@127.0.0.1:9/hookSECRET?key=querySECRET",
        "http://127.0.0.1:9/bad pathSECRET",  # urllib's own error would quote the path
    ],
)
def test_a_failed_webhook_logs_its_scheme_and_host_only(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """L4: the webhook URL can be a secret (Slack's token is its path): a failure logs scheme://host:port only."""
    monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", url)
    monkeypatch.delenv("MLCYCLE_ALERT_FORMAT", raising=False)
    with caplog.at_level(logging.DEBUG):
        assert send(failure_message(_context("score", RuntimeError("boom")))) is False
    assert "http://127.0.0.1:9" in caplog.text and "boom" in caplog.text
    assert "SECRET" not in caplog.text, caplog.text


def test_an_alert_refused_by_the_webhook_logs_the_status_and_the_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from support.alerting import ALERTMANAGER_API_PATH, recording_endpoint

    with recording_endpoint() as alertmanager:
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", alertmanager.url + ALERTMANAGER_API_PATH)
        monkeypatch.setenv("MLCYCLE_ALERT_FORMAT", "webhook")  # the wrong format for Alertmanager: refused
        with caplog.at_level(logging.ERROR):
            assert send(failure_message(_context("score", RuntimeError("boom")))) is False
    assert "HTTP 400" in caplog.text and "expected a list of alerts" in caplog.text
    assert ALERTMANAGER_API_PATH not in caplog.text


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("MLCYCLE_ALERT_FORMAT", "alertmanger", "MLCYCLE_ALERT_FORMAT='alertmanger'"),
        ("MLCYCLE_ALERT_WEBHOOK_URL", "alertmanager:9093/api/v2/alerts", "MLCYCLE_ALERT_WEBHOOK_URL"),
    ],
)
def test_a_wrong_alert_setting_fails_the_dag_import_naming_it(
    name: str, value: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task's FailureAlert is built when the DAG file is parsed: a typo there is an import error that names
    the setting, not an alert lost to the log at the first failure."""
    from mlcycle.orchestration.alerts import AlertSettingsError, FailureAlert

    monkeypatch.setenv(name, value)
    with pytest.raises(AlertSettingsError, match=re.escape(named)):
        FailureAlert()
