"""Where mlcycle's alerts go, for tests: endpoints that record what they are sent, a stand-in for Alertmanager's
`POST /api/v2/alerts` that checks the payload the way Alertmanager's API does, and a real Alertmanager (the
Debian package `prometheus-alertmanager`) started with the routing of docs/alertmanager-example.yml.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from mlcycle.settings import REPO_ROOT
from mlcycle_dev.stack.process import ManagedProcess, wait_until

ALERTMANAGER_API_PATH = "/api/v2/alerts"
ROUTING_EXAMPLE = REPO_ROOT / "docs" / "alertmanager-example.yml"
#: This helper's own ports (tests that start services use fixed ranges so parallel sessions do not collide).
PORTS = range(18200, 18300)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_POSTABLE_ALERT_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def alertmanager_v2_problems(payload: Any) -> list[str]:
    """What Alertmanager's `POST /api/v2/alerts` would refuse in `payload` (its `postableAlerts` schema), by path."""
    if not isinstance(payload, list):
        return [f"$: expected a list of alerts, got {type(payload).__name__}"]
    if not payload:
        return ["$: expected at least one alert"]
    problems: list[str] = []
    for index, alert in enumerate(payload):
        where = f"$[{index}]"
        if not isinstance(alert, dict):
            problems.append(f"{where}: expected an object")
            continue
        problems += [
            f"{where}.{key}: not a field of postableAlert" for key in sorted(set(alert) - _POSTABLE_ALERT_KEYS)
        ]
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels:
            problems.append(f"{where}.labels: expected a non-empty object")
            labels = {}
        for name, value in labels.items():
            if not _LABEL_NAME.match(name):
                problems.append(f"{where}.labels: {name!r} is not a valid label name")
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.labels.{name}: expected a non-empty string, got {value!r}")
        if not labels.get("alertname"):
            problems.append(f"{where}.labels.alertname: missing")
        annotations = alert.get("annotations", {})
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            problems.append(f"{where}.annotations: expected an object of strings")
        for key in ("startsAt", "endsAt"):
            if key in alert:
                try:
                    if dt.datetime.fromisoformat(str(alert[key]).replace("Z", "+00:00")).tzinfo is None:
                        problems.append(f"{where}.{key}: no time zone")
                except ValueError:
                    problems.append(f"{where}.{key}: not an RFC 3339 time: {alert[key]!r}")
        generator = alert.get("generatorURL", "")
        if generator and not re.match(r"^https?://", str(generator)):
            problems.append(f"{where}.generatorURL: not an absolute URL: {generator!r}")
    return problems


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingEndpoint:
    """An HTTP endpoint on loopback that records every POST; `/api/v2/alerts` answers like Alertmanager's API."""

    received: list[Received] = field(default_factory=list)
    url: str = ""

    def on(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path == path]


@contextmanager
def recording_endpoint() -> Iterator[RecordingEndpoint]:
    endpoint = RecordingEndpoint()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            with lock:
                endpoint.received.append(Received(self.path, dict(self.headers.items()), body))
            status, answer = 200, b""
            if self.path == ALERTMANAGER_API_PATH:
                problems = alertmanager_v2_problems(body)
                if problems:
                    status, answer = 400, json.dumps({"code": 400, "message": "; ".join(problems)}).encode()
            elif self.path not in ("/pager", "/rerun", "/hook"):
                status, answer = 404, b"no such path"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port_of_ours() -> int:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def alertmanager_binary() -> str | None:
    """The Alertmanager of the Debian package (`apt-get install prometheus-alertmanager`), if installed."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def routing_config(pager_url: str, rerun_url: str) -> dict[str, Any]:
    """docs/alertmanager-example.yml with its receivers' endpoints swapped for local ones and its waits cut to
    zero (the route tree, the matchers and the receiver kinds stay as documented)."""
    config: dict[str, Any] = yaml.safe_load(ROUTING_EXAMPLE.read_text())
    route = config["route"]
    route.update({"group_wait": "0s", "group_interval": "1s"})
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            slack.pop("api_url_file", None)
            slack["api_url"] = pager_url
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = rerun_url
            hook["http_config"] = {"authorization": {"credentials": "test-token"}}
    return config


@contextmanager
def running_alertmanager(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """A real Alertmanager on one of our ports with `config`; yields its base URL, stops it on exit."""
    binary = alertmanager_binary()
    if binary is None:
        raise RuntimeError("prometheus-alertmanager is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port_of_ours()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
    process = ManagedProcess("alertmanager", argv, env={}, log_path=workdir / "alertmanager.log", cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    with process:

        def ready() -> bool:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response:
                return bool(response.status == 200)

        wait_until(ready, 60, "Alertmanager to be ready", processes=[process])
        yield base


def post_alerts(base_url: str, alerts: list[dict[str, Any]]) -> None:
    """POST alerts to Alertmanager's API directly (as Prometheus would)."""
    request = urllib.request.Request(
        f"{base_url}{ALERTMANAGER_API_PATH}",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
