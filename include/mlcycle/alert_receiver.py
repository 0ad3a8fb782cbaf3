"""An Alertmanager webhook receiver that turns firing alerts into DAG runs (`mlcycle alert-receiver`).

Alertmanager (`webhook_configs: [{url: http://.../alerts, http_config: {authorization: {credentials: ...}}}]`)
POSTs version-4 payloads. Each *firing* alert whose labels name a known use case becomes one manual run of
`<usecase>_<dag>` with the partition, a reason and the alert in the run's conf (see mlcycle.rerun).

- Authentication: `Authorization: Bearer <MLCYCLE_WEBHOOK_TOKEN>` (compared in constant time); else 401.
- Validation: a malformed payload is refused whole (400, every problem named by its JSON path); nothing is
  triggered from a payload that is partly wrong.
- Deduplication: Alertmanager repeats an alert every `repeat_interval` (and every replica sends it). The run
  id is derived from the alert's fingerprint and start time, so a repeat is refused by Airflow itself (409)
  even across receiver restarts; a small in-memory cache saves the round trip.
- Airflow unreachable: 502, so Alertmanager retries later.

Labels read: `usecase` (required), `dag` (scoring | monitoring | training; default by alert name, see
ALERT_DAGS, else scoring), `partition` (YYYY-MM-DD; default the day before the alert started).
Standard library (http.server) and the parse-safe specs only: it runs from the task image, next to nothing else.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle.rerun import rerun, safe_run_id
from mlcycle.specs.catalog import AlertReceiverOptions
from mlcycle.specs.names import RERUNNABLE, DagFamily, Runbook

log = logging.getLogger(__name__)

TOKEN_ENV = "MLCYCLE_WEBHOOK_TOKEN"
MAX_BODY_BYTES = 1 << 20
# Our own alerts (orchestration/alerts.py) and the DAG that repairs what they report.
ALERT_DAGS: dict[str, DagFamily] = {
    Runbook.DATA_REJECTED: DagFamily.SCORING,
    Runbook.MODEL_STALE: DagFamily.TRAINING,
    Runbook.DRIFT_DETECTED: DagFamily.TRAINING,
}


class PayloadError(ValueError):
    """The payload is not a valid Alertmanager webhook message; `problems` names each issue by path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_alerts(payload: Any, usecases: Iterable[str]) -> list[dict[str, Any]]:
    """The alerts of a version-4 payload, validated; each with the DAG and partition it maps to."""
    known = set(usecases)
    if not isinstance(payload, dict):
        raise PayloadError([f"$: expected a JSON object, got {type(payload).__name__}"])
    problems: list[str] = []
    if payload.get("version") != "4":
        problems.append(f"$.version: expected '4' (Alertmanager webhook format), got {payload.get('version')!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError([*problems, "$.alerts: expected a non-empty list"])
    parsed = []
    for index, alert in enumerate(alerts):
        where = f"$.alerts[{index}]"
        if not isinstance(alert, dict):
            problems.append(f"{where}: expected an object")
            continue
        labels = alert.get("labels")
        if not isinstance(labels, dict):
            problems.append(f"{where}.labels: expected an object")
            continue
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            problems.append(f"{where}.status: expected 'firing' or 'resolved', got {status!r}")
        name = labels.get("alertname")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.labels.alertname: missing")
        usecase = labels.get("usecase")
        if usecase not in known:
            problems.append(f"{where}.labels.usecase: {usecase!r} is not a known use case {sorted(known)}")
        family = labels.get("dag") or ALERT_DAGS.get(str(name), DagFamily.SCORING)
        if family not in RERUNNABLE:
            problems.append(f"{where}.labels.dag: {family!r} is not one of {[f.value for f in RERUNNABLE]}")
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            problems.append(f"{where}.fingerprint: missing")
        try:
            started = _parse_time(str(alert.get("startsAt")))
            if started.tzinfo is None:
                raise ValueError("no time zone")
        except ValueError as exc:
            problems.append(f"{where}.startsAt: not an RFC 3339 time ({alert.get('startsAt')!r}: {exc})")
            continue
        partition = labels.get("partition") or (started.date() - dt.timedelta(days=1)).isoformat()
        try:
            partition = dt.date.fromisoformat(str(partition)).isoformat()
        except ValueError:
            problems.append(f"{where}.labels.partition: {partition!r} is not a YYYY-MM-DD date")
        annotations = alert.get("annotations") if isinstance(alert.get("annotations"), dict) else {}
        parsed.append(
            {
                "status": status,
                "alertname": name,
                "usecase": usecase,
                "dag": str(family),
                "partition": partition,
                "fingerprint": fingerprint,
                "startsAt": alert.get("startsAt"),
                "labels": labels,
                "annotations": annotations,
                "generatorURL": alert.get("generatorURL", ""),
            }
        )
    if problems:
        raise PayloadError(problems)
    return parsed


class AlertReceiver:
    """Authenticates, validates, deduplicates and triggers; `handle` is the whole HTTP contract."""

    def __init__(self, client: AirflowClient, token: str, usecases: Iterable[str], remember: int = 10_000) -> None:
        if not token:
            raise ValueError(f"the receiver needs a bearer token ({TOKEN_ENV}): it refuses to run open")
        self.client = client
        self._token = token.encode()
        self.usecases = sorted(usecases)
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token)

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one POST."""
        if not self._authorized(headers):
            return HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"}
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"}
        try:
            alerts = parse_alerts(payload, self.usecases)
        except PayloadError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": "not a valid Alertmanager payload", "problems": exc.problems}
        answer: dict[str, list[Any]] = {"created": [], "duplicates": [], "ignored": [], "failed": []}
        for alert in alerts:
            self._trigger(alert, answer)
        status = HTTPStatus.BAD_GATEWAY if answer["failed"] else HTTPStatus.OK
        return status, answer

    def _trigger(self, alert: dict[str, Any], answer: dict[str, list[Any]]) -> None:
        if alert["status"] != "firing":
            answer["ignored"].append({"alertname": alert["alertname"], "reason": "resolved"})
            return
        key = f"{alert['fingerprint']}@{alert['startsAt']}"
        run_id = safe_run_id("alert", str(alert["alertname"]), str(alert["fingerprint"]), str(alert["startsAt"]))
        dag_id = DagFamily(alert["dag"]).dag_id(alert["usecase"])
        with self._lock:
            if key in self._seen:
                answer["duplicates"].append({"dag_id": dag_id, "run_id": self._seen[key]})
                return
        summary = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
        reason = f"alert {alert['alertname']}" + (f": {summary}" if summary else "")
        context = {
            k: alert[k] for k in ("alertname", "fingerprint", "startsAt", "labels", "annotations", "generatorURL")
        }
        try:
            run = rerun(
                self.client, alert["usecase"], alert["dag"], alert["partition"], reason, run_id=run_id, alert=context
            )
        except AirflowAPIError as exc:
            if exc.status == HTTPStatus.CONFLICT:  # Airflow already has this run: the same alert, again
                answer["duplicates"].append({"dag_id": dag_id, "run_id": run_id})
                self._remember_key(key, run_id)
            else:
                log.error("alert %s -> %s failed: %s", alert["alertname"], dag_id, exc)
                answer["failed"].append({"dag_id": dag_id, "error": str(exc)[:500]})
            return
        self._remember_key(key, run["run_id"])
        answer["created"].append({**run, "partition": alert["partition"], "alertname": alert["alertname"]})
        log.info("alert %s -> %s run %s for %s", alert["alertname"], dag_id, run["run_id"], alert["partition"])

    def _remember_key(self, key: str, run_id: str) -> None:
        with self._lock:
            self._seen[key] = run_id
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)


def make_server(receiver: AlertReceiver, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for `receiver`: POST /alerts (or /), GET /healthz."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "mlcycle-alert-receiver"

        def _send(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(HTTPStatus.OK, {"status": "ok", "usecases": receiver.usecases})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self.path not in ("/", "/alerts"):
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}; POST /alerts"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            status, document = receiver.handle(dict(self.headers.items()), self.rfile.read(length))
            self._send(status, document)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((host, port), Handler)


def main(options: AlertReceiverOptions) -> int:
    """`mlcycle alert-receiver`: serve until interrupted."""
    from mlcycle.config import discover_usecases

    receiver = AlertReceiver(
        AirflowClient.from_env(), os.environ.get(TOKEN_ENV, ""), [u.name for u in discover_usecases()]
    )
    server = make_server(receiver, options.host, options.port)
    log.info("alert receiver on http://%s:%d/alerts for use cases %s", options.host, options.port, receiver.usecases)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
