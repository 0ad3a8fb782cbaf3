"""A stand-in MLflow tracking server that fails on purpose: the boundary for MLflow fault tests.

It answers MLflow's REST paths with what a test chooses per request (401, 403, 500, a 404 saying the resource
does not exist, a success, or no answer within the client's timeout) and records every request, so a test can
assert what a step asked for and, above all, what it did NOT do (move an alias). `unreachable_uri()` gives a
loopback address where nothing listens. `mlflow_client_env()` makes MLflow's client give up at once: its own
retries (7, with exponential back-off) would otherwise make every fault test wait for minutes.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# MLflow's REST endpoint that moves an alias (POST) or reads it (GET .../alias?name=&alias=).
REGISTERED_MODELS = "/api/2.0/mlflow/registered-models/"
ALIAS_PATH = REGISTERED_MODELS + "alias"
# Seconds the client waits for an answer; the "slow" server never answers within it.
CLIENT_TIMEOUT_S = 2


@dataclass(frozen=True)
class Answer:
    status: int
    body: str = "{}"
    content_type: str = "application/json"
    hang: bool = False  # no answer until the server stops: a request timeout on the client's side


def error(code: str, status: int) -> Answer:
    """An answer MLflow's server itself would give: a JSON error document with its error code."""
    return Answer(status, json.dumps({"error_code": code, "message": f"fake MLflow says {code}"}))


# What an MLflow server behind basic auth answers (plain text, not JSON), and what it answers when it breaks.
UNAUTHENTICATED = Answer(401, "You are not authenticated. Please see the documentation.", "text/plain")
FORBIDDEN = Answer(403, "Permission denied", "text/plain")
INTERNAL = error("INTERNAL_ERROR", 500)
NOT_FOUND = error("RESOURCE_DOES_NOT_EXIST", 404)
SLOW = Answer(200, hang=True)
OK = Answer(200)

Rule = Callable[[str, str], Answer | None]  # (method, path) -> an answer, or None to let the next rule decide


@dataclass
class FakeMlflow:
    uri: str
    rules: list[Rule] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    default: Answer = INTERNAL

    def answer(self, method: str, path: str) -> Answer:
        self.requests.append((method, path))
        for rule in self.rules:
            found = rule(method, path)
            if found is not None:
                return found
        return self.default

    def alias_moves(self) -> list[tuple[str, str]]:
        """Requests that would move an alias (POST or DELETE on the alias endpoint)."""
        return [(m, p) for m, p in self.requests if p.startswith(ALIAS_PATH) and m in ("POST", "DELETE")]


@contextmanager
def fake_mlflow(default: Answer = INTERNAL, *rules: Rule) -> Iterator[FakeMlflow]:
    """Serve a FakeMlflow on a free loopback port until the block ends."""
    stop = threading.Event()
    server_box: list[FakeMlflow] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer = server_box[0].answer(self.command, self.path.split("?", 1)[0])
            if answer.hang:
                stop.wait(60)  # bounded: released when the test ends
                return
            body = answer.body.encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:  # quiet: requests are recorded instead
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    fake = FakeMlflow(f"http://127.0.0.1:{httpd.server_address[1]}", list(rules), default=default)
    server_box.append(fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def unreachable_uri() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago): connection refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def mlflow_client_env(tracking_uri: str) -> dict[str, str]:
    """Environment pointing MLflow's client at `tracking_uri`, failing fast: no client retries, a short timeout."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CLIENT_TIMEOUT_S),
    }


def only_reads_fail(prefix: str) -> Rule:
    """A rule: GETs under `prefix` get the server's default (failing) answer; every other request succeeds.

    The champion cannot be read, and the writes that would follow a wrong "no champion" would be accepted.
    """
    return lambda method, path: None if method == "GET" and path.startswith(prefix) else OK


def on(method: str, prefix: str, answer: Answer) -> Rule:
    """A rule: requests with this method whose path starts with `prefix` get `answer`."""
    return lambda m, p: answer if m == method and p.startswith(prefix) else None
