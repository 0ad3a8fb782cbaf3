"""An Alertmanager webhook receiver that turns firing alerts into DAG runs (`mlcycle alert-receiver`).

Alertmanager (`webhook_configs: [{url: http://.../alerts, http_config: {authorization: {credentials: ...}}}]`)
POSTs version-4 payloads. Each *firing* alert whose labels name a known use case becomes one manual run of
`<usecase>_<dag>` with the partition, a reason and the alert in the run's conf (see mlcycle.rerun) — except a
*training* alert, which becomes a retraining request (an event of the use case's retraining Asset, the one the
monitoring DAG's policy emits), so that the cooldown and the weekly budget count it and it passes them first.

- HTTP edge (it faces clients it does not know): the bearer token is checked before a byte of the body is read;
  the body needs a plain `Content-Length` (none: 411; negative, not a number or repeated differently: 400; over
  `MAX_BODY_BYTES`: 413); a whole request must arrive within `ServerLimits.request_timeout` (else 408), so a
  client that trickles bytes cannot hold a worker; a fixed pool of workers and a bounded queue serve the
  connections, and one that finds the queue full is answered 503 (Alertmanager retries) — never a thread per
  connection.
- Authentication: `Authorization: Bearer <MLCYCLE_WEBHOOK_TOKEN>` (compared in constant time); else 401.
- Validation: a malformed payload is refused whole (400, every problem named by its JSON path); nothing is
  triggered from a payload that is partly wrong.
- Deduplication: Alertmanager repeats an alert every `repeat_interval` (and every replica sends it). The run
  id is derived from a digest of the alert's name, fingerprint and start time (mlcycle.rerun.alert_run_id), so a
  repeat is refused by Airflow itself (409) even across receiver restarts; a retraining request carries that id
  in its event, and a repeat finds it there. A small in-memory cache saves the round trip.
- Airflow unreachable or refusing the receiver's credentials: 502, so Alertmanager retries later. The client
  renews its JWT when Airflow answers 401 (mlcycle.airflow_api).
- Probes: GET /healthz answers while the process serves (liveness); GET /readyz authenticates against Airflow
  and answers 503 when that fails (readiness: a bad credential takes the pod out of the Service).
- No loops: an alert labelled `mlcycle_auto_rerun` with any value but "true" is ignored (200, with the reason):
  mlcycle's own failure alerts carry "false", so even a misrouted one never reruns the failure.
- Logs: every value a client sent is logged with its control characters escaped (no forged log lines).

Labels read: `usecase` (required), `dag` (scoring | monitoring | training; default by alert name, see
ALERT_DAGS, else scoring), `partition` (YYYY-MM-DD; default the day before the alert started).
Standard library (http.server), the parse-safe specs and the retraining policy's guards only: it runs from the
task image, next to nothing else.
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import json
import logging
import os
import queue
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle.config import Retraining
from mlcycle.rerun import alert_run_id, rerun
from mlcycle.retraining import request_asset_name, request_guards, request_partitions
from mlcycle.specs.catalog import AlertReceiverOptions
from mlcycle.specs.names import AUTO_RERUN_LABEL, RERUNNABLE, DagFamily, Runbook

log = logging.getLogger(__name__)

TOKEN_ENV = "MLCYCLE_WEBHOOK_TOKEN"
MAX_BODY_BYTES = 1 << 20
# Retraining requests read back to find a repeat of an alert and to apply the cooldown and the weekly budget.
RETRAINING_HISTORY = 50
# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Our own alerts (orchestration/alerts.py) and the DAG that repairs what they report.
ALERT_DAGS: dict[str, DagFamily] = {
    Runbook.DATA_REJECTED: DagFamily.SCORING,
    Runbook.MODEL_STALE: DagFamily.TRAINING,
    Runbook.DRIFT_DETECTED: DagFamily.TRAINING,
}


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, limit: int = 300) -> str:
    """`value` for a log line: control characters escaped (a newline becomes `\\x0a`), at most `limit` long."""
    text = _CONTROL.sub(_escape, str(value))
    return text if len(text) <= limit else text[:limit] + "..."


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
    """Authenticates, validates, deduplicates and triggers; `handle` is the whole contract of one POST."""

    def __init__(
        self, client: AirflowClient, token: str, policies: Mapping[str, Retraining], remember: int = 10_000
    ) -> None:
        """`policies`: the retraining policy of every known use case, by name (the use cases alerts may name)."""
        if not token:
            raise ValueError(f"the receiver needs a bearer token ({TOKEN_ENV}): it refuses to run open")
        self.client = client
        self._token = token.encode()
        self.policies = dict(policies)
        self.usecases = sorted(self.policies)
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def authorized(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) of GET /readyz: can the receiver authenticate against Airflow now?"""
        try:
            self.client.check_access()
        except AirflowAPIError as exc:
            log.warning("not ready: %s", printable(exc))
            # Anyone may probe: the answer says what failed, the log says where (URLs, Airflow's words).
            what = "unreachable" if exc.status == 0 else f"HTTP {exc.status}"
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unready", "error": f"Airflow API check: {what}"}
        return HTTPStatus.OK, {"status": "ready", "usecases": self.usecases}

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one POST."""
        if not self.authorized(headers):
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
        allowed = alert["labels"].get(AUTO_RERUN_LABEL, "true")
        if allowed != "true":
            # A misrouted alert that says it must not be rerun (mlcycle's own failure alerts): a person acts on it.
            reason = f"labelled {AUTO_RERUN_LABEL}={allowed!r}, not 'true'"
            answer["ignored"].append({"alertname": alert["alertname"], "reason": reason})
            return
        alert_id = alert_run_id(str(alert["alertname"]), str(alert["fingerprint"]), str(alert["startsAt"]))
        dag_id = DagFamily(alert["dag"]).dag_id(alert["usecase"])
        with self._lock:
            if alert_id in self._seen:
                answer["duplicates"].append({"dag_id": dag_id, "run_id": self._seen[alert_id]})
                return
        summary = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
        reason = f"alert {alert['alertname']}" + (f": {summary}" if summary else "")
        context = {
            k: alert[k] for k in ("alertname", "fingerprint", "startsAt", "labels", "annotations", "generatorURL")
        }
        try:
            if alert["dag"] == DagFamily.TRAINING:
                self._request_retraining(alert, alert_id, dag_id, reason, context, answer)
            else:
                self._rerun(alert, alert_id, dag_id, reason, context, answer)
        except AirflowAPIError as exc:
            log.error("alert %s -> %s failed: %s", printable(alert["alertname"]), dag_id, printable(exc))
            answer["failed"].append({"dag_id": dag_id, "error": str(exc)[:500]})

    def _rerun(
        self,
        alert: dict[str, Any],
        run_id: str,
        dag_id: str,
        reason: str,
        context: dict[str, Any],
        answer: dict[str, list[Any]],
    ) -> None:
        try:
            run = rerun(
                self.client, alert["usecase"], alert["dag"], alert["partition"], reason, run_id=run_id, alert=context
            )
        except AirflowAPIError as exc:
            if exc.status != HTTPStatus.CONFLICT:
                raise
            # Airflow already has this run: the same alert, again.
            answer["duplicates"].append({"dag_id": dag_id, "run_id": run_id})
            self._remember_key(run_id, run_id)
            return
        self._remember_key(run_id, run["run_id"])
        answer["created"].append({**run, "partition": alert["partition"], "alertname": alert["alertname"]})
        log.info(
            "alert %s -> %s run %s for %s", printable(alert["alertname"]), dag_id, run["run_id"], alert["partition"]
        )

    def _request_retraining(
        self,
        alert: dict[str, Any],
        alert_id: str,
        dag_id: str,
        reason: str,
        context: dict[str, Any],
        answer: dict[str, list[Any]],
    ) -> None:
        """A retraining request through the use case's retraining Asset, if the policy's guards let it through."""
        usecase, partition = alert["usecase"], alert["partition"]
        asset = request_asset_name(usecase)
        asset_id = self.client.asset_id(asset)
        extras = [event.get("extra") or {} for event in self.client.asset_events(asset_id, RETRAINING_HISTORY)]
        if any(extra.get("alert_id") == alert_id for extra in extras):
            answer["duplicates"].append({"dag_id": dag_id, "asset": asset, "alert_id": alert_id})
            self._remember_key(alert_id, alert_id)
            return
        blocked = request_guards(self.policies[usecase], partition, request_partitions(extras))
        if blocked:
            answer["ignored"].append(
                {"alertname": alert["alertname"], "reason": "retraining policy", "blocked_by": blocked}
            )
            log.warning(
                "alert %s -> no retraining request for %s: %s", printable(alert["alertname"]), partition, blocked
            )
            return
        extra = {
            "partition": partition,
            "reason": reason,
            "triggers": [reason],
            "alert_id": alert_id,
            "alert": context,
        }
        # Keyed by the partition: the training DAG is partition-aware (ADR 0010) and gets no run for a keyless event.
        event = self.client.create_asset_event(asset_id, extra, partition_key=partition)
        self._remember_key(alert_id, alert_id)
        answer["created"].append(
            {
                "dag_id": dag_id,
                "asset": asset,
                "asset_event_id": event.get("id"),
                "alert_id": alert_id,
                "partition": partition,
                "alertname": alert["alertname"],
            }
        )
        log.info("alert %s -> retraining request %s for %s", printable(alert["alertname"]), asset, partition)

    def _remember_key(self, key: str, run_id: str) -> None:
        with self._lock:
            self._seen[key] = run_id
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)


@dataclass(frozen=True)
class ServerLimits:
    """What one client can take from the receiver: a worker for at most `request_timeout` seconds."""

    workers: int = 8  # requests served at once
    backlog: int = 16  # accepted connections waiting for a worker; beyond that: 503
    request_timeout: float = 10.0  # seconds for a whole request, headers and body: else 408
    write_timeout: float = 5.0  # seconds to hand an answer to a client that does not read it
    max_body: int = MAX_BODY_BYTES


class RequestRefused(Exception):
    """A request the receiver answers with an error before reading its body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def body_length(headers: Message, limit: int) -> int:
    """The body's length, from a single plain `Content-Length` of at most `limit`; else RequestRefused."""
    if headers.get("Transfer-Encoding") is not None:
        raise RequestRefused(
            HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not supported: send the body with a Content-Length"
        )
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        raise RequestRefused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
    if len(values) > 1:
        raise RequestRefused(HTTPStatus.BAD_REQUEST, f"conflicting Content-Length headers {sorted(values)[:4]}")
    (value,) = values
    # Digits only: int() would also take '+1', ' 1', '1_0' and other scripts' digits.
    if not re.fullmatch(r"[0-9]{1,19}", value):
        raise RequestRefused(
            HTTPStatus.BAD_REQUEST, f"Content-Length {printable(value, 40)!r} is not a non-negative integer"
        )
    length = int(value)
    if length > limit:
        raise RequestRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes (Content-Length {length})")
    return length


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes until a deadline for the whole request.

    A timeout per read alone lets a client that sends one byte just before each timeout hold a worker for ever.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise TimeoutError("the request deadline passed")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.expired = True
            raise


class BoundedHTTPServer(HTTPServer):
    """An HTTPServer with a fixed pool of worker threads and a bounded queue of accepted connections.

    The accepting thread only queues connections; one that finds the queue full is answered 503 at once and
    closed, so a flood of connections costs a bounded number of threads and sockets.
    """

    # The listen backlog: connections wait here only until the accepting thread takes them (it never blocks).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limits: ServerLimits) -> None:
        self.limits = limits
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=limits.backlog)
        super().__init__(address, handler)
        self._workers = [
            threading.Thread(target=self._work, name=f"alert-receiver-worker-{n}", daemon=True)
            for n in range(limits.workers)
        ]
        for worker in self._workers:
            worker.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            self._refuse(request)
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps({"error": "receiver busy: too many connections, retry later"}).encode()
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(self.limits.write_timeout)
            request.sendall(head.encode() + body)
        except OSError as exc:
            # The client went away or does not read: it gets no answer, and the socket is closed either way.
            log.info("could not answer 503 to a refused connection: %s", exc)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        while True:  # connections still waiting are closed unanswered: the server is going away
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()


def make_server(receiver: AlertReceiver, host: str, port: int, limits: ServerLimits | None = None) -> BoundedHTTPServer:
    """An HTTP server for `receiver`: POST /alerts (or /), GET /healthz (liveness), GET /readyz (readiness)."""
    bounds = limits or ServerLimits()

    class Handler(BaseHTTPRequestHandler):
        server_version = "mlcycle-alert-receiver"
        answered = False

        def setup(self) -> None:
            super().setup()
            self.deadline = _DeadlineReader(self.connection, time.monotonic() + bounds.request_timeout)
            self.rfile.close()
            self.rfile = io.BufferedReader(self.deadline)

        def handle(self) -> None:
            super().handle()
            # http.server closes a connection whose request line or headers time out without a word: say why.
            if self.deadline.expired and not self.answered:
                self._send(HTTPStatus.REQUEST_TIMEOUT, {"error": "request not received in time"})

        def send_response(self, code: int, message: str | None = None) -> None:
            self.answered = True
            super().send_response(code, message)

        def _send(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.connection.settimeout(bounds.write_timeout)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError as exc:
                # The client went away or stopped reading: nobody is left to answer; the socket is closed next.
                log.info("%s: answer %d not delivered: %s", self.address_string(), status, exc)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(HTTPStatus.OK, {"status": "ok", "usecases": receiver.usecases})
            elif self.path == "/readyz":
                self._send(*receiver.readiness())
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path[:200]}"})

        def do_POST(self) -> None:
            if self.path not in ("/", "/alerts"):
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path[:200]}; POST /alerts"})
                return
            headers = dict(self.headers.items())
            # The token first: a client without it gets nothing read, however large its body says it is.
            if not receiver.authorized(headers):
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
                return
            try:
                length = body_length(self.headers, bounds.max_body)
                body = self.rfile.read(length)
            except RequestRefused as exc:
                self._send(exc.status, {"error": str(exc)})
                return
            except TimeoutError:
                self._send(HTTPStatus.REQUEST_TIMEOUT, {"error": "request not received in time"})
                return
            if len(body) < length:
                self._send(HTTPStatus.BAD_REQUEST, {"error": f"body ended after {len(body)} of {length} bytes"})
                return
            self._send(*receiver.handle(headers, body))

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), printable(format % args))

    return BoundedHTTPServer((host, port), Handler, bounds)


def main(options: AlertReceiverOptions) -> int:
    """`mlcycle alert-receiver`: serve until interrupted."""
    from mlcycle.config import discover_usecases

    receiver = AlertReceiver(
        AirflowClient.from_env(),
        os.environ.get(TOKEN_ENV, ""),
        {usecase.name: usecase.retraining for usecase in discover_usecases()},
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
