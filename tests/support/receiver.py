"""Test support for the alert receiver: a stand-in Airflow API server, a receiver on a port, raw HTTP clients.

`FakeAirflow` answers the few routes of Airflow 3's REST API that `mlcycle.airflow_api` calls, with real JWT-like
tokens it can expire on demand (no clocks: `expire_tokens()` makes every issued token answer 401, as an
expired JWT does). `running_receiver` serves an `AlertReceiver` on a loopback port in a thread, as
`mlcycle alert-receiver` does, with the limits a test chooses.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mlcycle.airflow_api import AirflowClient
from mlcycle.alert_receiver import AlertReceiver, make_server
from mlcycle.config import Retraining, get_usecase

TOKEN = "test-webhook-token"
USER, PASSWORD = "receiver", "receiver-password"


@dataclass
class FakeAirflow:
    """Airflow's API as the receiver sees it: tokens, DAG runs, the retraining Assets and their events."""

    usecases: tuple[str, ...] = ("yarnit",)
    tokens: dict[str, bool] = field(default_factory=dict)  # token -> still valid
    token_requests: int = 0
    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # dag_id -> run_id -> run
    events: list[dict[str, Any]] = field(default_factory=list)
    password: str = PASSWORD
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def assets(self) -> list[dict[str, Any]]:
        # The Asset the DAG factory declares (what the dag-processor would register), not a copy of its name.
        from mlcycle.orchestration.dags import retraining_asset

        declared = [retraining_asset(get_usecase(u)) for u in self.usecases]
        return [{"id": i + 1, "name": a.name, "uri": a.uri, "group": "asset"} for i, a in enumerate(declared)]

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (what happens when a JWT's `exp` passes)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, False)

    def issue_token(self) -> str:
        with self.lock:
            token = secrets.token_urlsafe(16)
            self.tokens[token] = True
            self.token_requests += 1
            return token

    def authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self.lock:
            return scheme == "Bearer" and self.tokens.get(token, False)

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: Any) -> tuple[int, Any]:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if (method, url.path) == ("POST", "/auth/token"):
            if body == {"username": USER, "password": self.password}:
                return 201, {"access_token": self.issue_token()}
            return 401, {"detail": "Invalid credentials"}
        if not self.authorized(headers.get("Authorization", "")):
            return 401, {"detail": "Invalid JWT token"}
        if (method, url.path) == ("GET", "/api/v2/dags"):
            return 200, {"dags": [], "total_entries": 0}
        if (method, url.path) == ("GET", "/api/v2/assets"):
            pattern = query.get("name_pattern", "")
            return 200, {"assets": [a for a in self.assets if pattern in a["name"]]}
        if url.path == "/api/v2/assets/events":
            return self._asset_events(method, query, body)
        if match := re.fullmatch(r"/api/v2/dags/([^/]+)/dagRuns", url.path):
            return self._trigger(match.group(1), body) if method == "POST" else (405, {})
        if method == "GET" and (match := re.fullmatch(r"/api/v2/dags/([^/]+)", url.path)):
            return 200, {"dag_id": match.group(1), "is_paused": True}
        return 404, {"detail": f"no route {method} {url.path}"}

    def _trigger(self, dag_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            runs = self.runs.setdefault(dag_id, {})
            run_id = body["dag_run_id"]
            if run_id in runs:
                return 409, {"detail": f"The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` already exists"}
            runs[run_id] = {"dag_id": dag_id, "dag_run_id": run_id, "state": "queued", "conf": body["conf"]}
            return 200, runs[run_id]

    def _asset_events(self, method: str, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            if method == "POST":
                asset = next(a for a in self.assets if a["id"] == body["asset_id"])
                event = {
                    "id": len(self.events) + 1,
                    "asset_id": asset["id"],
                    "name": asset["name"],
                    "uri": asset["uri"],
                    "extra": {**body.get("extra", {}), "from_rest_api": True},
                    "timestamp": f"2026-09-17T06:{len(self.events):02d}:00Z",
                }
                self.events.append(event)
                return 200, event
            wanted = [e for e in self.events if str(e["asset_id"]) == query.get("asset_id", str(e["asset_id"]))]
            if query.get("order_by") == "-timestamp":
                wanted.reverse()
            return 200, {"asset_events": wanted[: int(query.get("limit", 50))], "total_entries": len(wanted)}

    def event_extras(self, usecase: str = "yarnit") -> list[dict[str, Any]]:
        """The extras of the usecase's retraining requests, oldest first (what the monitoring DAG's inlet reads)."""
        with self.lock:
            asset_id = next(a["id"] for a in self.assets if a["name"].startswith(f"{usecase}_"))
            return [dict(e["extra"]) for e in self.events if e["asset_id"] == asset_id]


@contextmanager
def serving_fake_airflow(fake: FakeAirflow) -> Iterator[str]:
    """`fake` on a loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, document = fake.answer(self.command, self.path, dict(self.headers.items()), body)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the receiver's own log is what the tests read

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def client_of(airflow_url: str, **overrides: str) -> AirflowClient:
    """The receiver's Airflow client: user and password, as the chart configures it."""
    settings = {"username": USER, "password": PASSWORD, **overrides}
    return AirflowClient(airflow_url, timeout=10.0, **settings)


@contextmanager
def running_receiver(
    client: AirflowClient, policies: Mapping[str, Retraining] | None = None, **limits: Any
) -> Iterator[tuple[str, int]]:
    """An `AlertReceiver` served on a loopback port in a thread; yields (host, port). `limits`: ServerLimits."""
    receiver = AlertReceiver(client, TOKEN, policies or {"yarnit": Retraining()})
    if limits:
        from mlcycle.alert_receiver import ServerLimits

        server = make_server(receiver, "127.0.0.1", 0, ServerLimits(**limits))
    else:
        server = make_server(receiver, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def alert(fingerprint: str, starts_at: str = "2026-09-17T06:10:00Z", **labels: str) -> dict[str, Any]:
    """One firing Alertmanager alert for yarnit."""
    return {
        "status": "firing",
        "labels": {"alertname": "data-rejected", "usecase": "yarnit", **labels},
        "annotations": {"summary": "contract rejected 2026-09-16: price renamed"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager version-4 webhook message."""
    return {"version": "4", "status": "firing", "receiver": "mlcycle", "groupKey": "{}:{}", "alerts": list(alerts)}


def raw_request(
    address: tuple[str, int], head: bytes, body: bytes = b"", wait: float = 30.0, half_close: bool = False
) -> bytes:
    """Send `head` (request line + headers, CRLF-terminated) and `body` as given; return all bytes answered.

    The connection stays open for writing (as a slow or hostile client keeps it) unless `half_close`: the
    server must answer and close on its own. Bounded: that must happen within `wait` seconds, else TimeoutError.
    """
    with socket.create_connection(address, timeout=wait) as sock:
        try:
            sock.sendall(head + body)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking all we sent: its answer is still to be read
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # closing with our unread bytes in its buffer resets the connection, after the answer
        return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 for an empty answer: the server closed without one)."""
    if not answer:
        return 0
    return int(answer.split(b" ", 2)[1])


def json_of(answer: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return document


def post_head(length: str | None, token: str | None = TOKEN, extra: str = "") -> bytes:
    """The head of POST /alerts with the given Content-Length header value (None: no header)."""
    lines = ["POST /alerts HTTP/1.1", "Host: receiver", "Content-Type: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def post_alerts(address: tuple[str, int], document: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """A well-formed POST /alerts; (status, JSON answer)."""
    body = json.dumps(document).encode()
    answer = raw_request(address, post_head(str(len(body)), token), body)
    return status_of(answer), json_of(answer)
