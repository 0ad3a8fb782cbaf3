"""AirflowServices without Airflow: the environment it gives the services, and its REST client against a fake API."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlcycle.airflow_api import AirflowAPIError
from mlcycle.airflow_api import iso as _iso
from mlcycle.settings import embedded_environment
from mlcycle_dev.stack.airflow import AirflowServices


def _services(tmp_path: Path, **kwargs: Any) -> AirflowServices:
    return AirflowServices({"PATH": "/usr/bin", **embedded_environment(tmp_path)}, **kwargs)


def test_the_services_agree_on_one_url_one_secret_and_one_user(tmp_path: Path) -> None:
    services = _services(tmp_path, username="tester", password="s3cret")
    env = services.env
    assert env["AIRFLOW__API__PORT"] == str(services.port) != "8080", "the chosen port beats embedded_environment's"
    assert env["AIRFLOW__API__BASE_URL"] == services.base_url == f"http://127.0.0.1:{services.port}"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{services.base_url}/execution/"
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "tester:admin"
    ports = {services.port, int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"])}
    ports.add(int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]))
    assert len(ports) == 3
    services._write_passwords()
    assert json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text()) == {
        "tester": "s3cret"
    }


def test_the_callers_settings_win_for_everything_else(tmp_path: Path) -> None:
    base = {
        **embedded_environment(tmp_path),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API_AUTH__JWT_SECRET": "shared-with-another-client",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@127.0.0.1:5432/airflow",
    }
    env = AirflowServices(base, port=18080).env
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "shared-with-another-client"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] == "5"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_components_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="webserver"):
        _services(tmp_path, components=("api-server", "webserver"))
    with pytest.raises(ValueError, match="api-server"):
        _services(tmp_path, components=("scheduler",))
    with pytest.raises(ValueError, match="AIRFLOW_HOME"):
        AirflowServices({"PATH": "/usr/bin"})


def test_heartbeats_older_than_the_start_do_not_count() -> None:
    start = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)
    fresh = {"scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-11-23T04:00:03.5+00:00"}}
    stale = {"scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-11-23T03:59:50+00:00"}}
    assert AirflowServices._heartbeat_ok(fresh, "scheduler", start)
    assert not AirflowServices._heartbeat_ok(stale, "scheduler", start)
    assert not AirflowServices._heartbeat_ok({"scheduler": {"status": "unhealthy"}}, "scheduler", None)


def test_dates_are_sent_timezone_aware() -> None:
    assert _iso(dt.date(2026, 9, 1)) == "2026-09-01T00:00:00+00:00"
    assert _iso(dt.datetime(2026, 9, 1, 6)) == "2026-09-01T06:00:00+00:00"
    assert _iso("2026-09-01") == "2026-09-01"
    assert _iso(None) is None


class FakeAirflow(BaseHTTPRequestHandler):
    """Answers like Airflow's API for the few routes the client uses, and records every request."""

    requests: list[tuple[str, str, dict[str, str], Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, dict(self.headers), body))
        if self.path == "/auth/token":
            ok = body == {"username": "admin", "password": "pw"}
            self._send(201 if ok else 401, {"access_token": "tok-1"} if ok else {"detail": "Invalid credentials"})
        elif self.headers.get("Authorization") != "Bearer tok-1":
            self._send(401, {"detail": "Not authenticated"})
        elif self.path.startswith("/api/v2/dags/missing"):
            self._send(404, {"detail": "The Dag with dag_id: `missing` was not found"})
        elif self.path == "/api/v2/backfills":
            # Airflow's answer when SQLite is locked by another writer, then success.
            locked = sum(r[1] == self.path for r in self.requests) == 1
            self._send(503 if locked else 200, {"detail": "Database is locked."} if locked else {"id": 7, **body})
        elif self.command == "POST" and self.path.endswith("/dagRuns"):
            self._send(200, {"dag_run_id": body.get("dag_run_id") or "manual__x", "state": "queued"})
        else:
            self._send(200, {})

    do_GET = do_POST = do_PATCH = _answer

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[AirflowServices]:
    FakeAirflow.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _services(tmp_path, port=server.server_address[1], password="pw")
    server.shutdown()
    server.server_close()


def test_the_client_logs_in_once_and_sends_json(fake_api: AirflowServices) -> None:
    assert fake_api.trigger("stack_smoke", conf={"a": 1}, run_id="r1")["dag_run_id"] == "r1"
    assert fake_api.trigger("stack_smoke")["dag_run_id"] == "manual__x"
    fake_api.unpause("stack_smoke")

    logins = [r for r in FakeAirflow.requests if r[1] == "/auth/token"]
    assert len(logins) == 1, "the token is cached"
    posts = [r[3] for r in FakeAirflow.requests if r[0] == "POST" and r[1].endswith("/dagRuns")]
    # logical_date has no default in Airflow's TriggerDAGRunPostBody: null must be sent explicitly.
    assert posts == [{"conf": {"a": 1}, "logical_date": None, "dag_run_id": "r1"}, {"conf": {}, "logical_date": None}]
    patch = next(r for r in FakeAirflow.requests if r[0] == "PATCH")
    assert patch[1] == "/api/v2/dags/stack_smoke?update_mask=is_paused"
    assert patch[3] == {"is_paused": False}


def test_errors_carry_the_status_and_the_servers_words(fake_api: AirflowServices) -> None:
    with pytest.raises(AirflowAPIError) as caught:
        fake_api.request("GET", "/api/v2/dags/missing")
    assert caught.value.status == 404
    assert "was not found" in caught.value.body
    assert "GET /api/v2/dags/missing -> HTTP 404" in str(caught.value)
    with pytest.raises(AirflowAPIError) as anonymous:
        fake_api.request("GET", "/api/v2/dags", auth=False)
    assert anonymous.value.status == 401


def test_a_backfill_is_retried_while_sqlite_is_locked(fake_api: AirflowServices) -> None:
    backfill = fake_api.create_backfill("stack_daily", dt.date(2026, 9, 1), dt.date(2026, 9, 3))

    assert backfill["id"] == 7
    sent = [r[3] for r in FakeAirflow.requests if r[1] == "/api/v2/backfills"]
    assert len(sent) == 2
    assert sent[1] == {
        "dag_id": "stack_daily",
        "from_date": "2026-09-01T00:00:00+00:00",
        "to_date": "2026-09-03T00:00:00+00:00",
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
        "dag_run_conf": {},
        "run_backwards": False,
    }
