"""Airflow 3's services for one isolated environment, and a small REST client for them (standard library only).

Usage (a test, or `make up` with PostgreSQL once `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` is in `env`)::

    env = {**os.environ, **embedded_environment(tmp_path)}
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as af:
        af.wait_for_dags(["yarnit_training"], timeout=120)
        af.unpause("yarnit_training")
        run_id = af.trigger("yarnit_training", conf={"partition": "2026-09-08"})["dag_run_id"]
        assert af.wait_for_run("yarnit_training", run_id, timeout=600) == "success"
        # A client under test (e.g. `mlcycle rerun`) gets af.base_url, af.username, af.password; af.env is the
        # services' environment (same AIRFLOW_HOME, DB and JWT secret) for `airflow` CLI calls.

Entering the context runs `airflow db migrate`, starts each component as a `ManagedProcess` (logs under
`$AIRFLOW_HOME/logs/services/<component>.log`) and waits until `/api/v2/monitor/health` reports every started
component healthy; leaving it stops them all. Everything the services need to agree on (API URL, JWT secret,
the user and its password) is decided here and written into `env`; the caller's own settings win for the rest.

Things that bite: DAGs start paused (a triggered run or a backfill waits until `unpause`); unpausing a scheduled
DAG also lets the scheduler create its latest scheduled run; `[core] dag_discovery_safe_mode` skips DAG files that
do not contain both "airflow" and "dag"; components must include the api-server (readiness goes through it).
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle_dev.stack.process import ManagedProcess, ServiceError, free_ports, tail, wait_until

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# `/api/v2/monitor/health` key for each component that heartbeats (airflow/api/common/airflow_health.py).
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
_FINISHED_RUN_STATES = ("success", "failed")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# Test-friendly tuning, used only where the caller's env does not set the key (airflow/config_templates/config.yml).
TUNING_DEFAULTS = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    # Airflow's default of 32 starts 32 LocalExecutor workers; these machines have 2 cores.
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # [dag_processor] refresh_interval (was [scheduler] dag_dir_list_interval): how often the DAGs folder is
    # listed. The default, 300 s, would leave a DAG file that a test adds after start-up unseen for 5 minutes.
    # Existing files are re-parsed every [dag_processor] min_file_process_interval (30 s), left as it is.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
}
# Stop order: the scheduler first, so running tasks are ended while the execution API still answers them.
_STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server")


class AirflowServices(AirflowClient):
    """Airflow's api-server, scheduler, dag-processor and triggerer for one AIRFLOW_HOME; a REST client of them."""

    def __init__(
        self,
        env: Mapping[str, str],
        components: Sequence[str] = COMPONENTS,
        *,
        port: int | None = None,
        log_server_ports: Sequence[int] | None = None,
        host: str = "127.0.0.1",
        username: str = "admin",
        password: str | None = None,
        startup_timeout: float = 240.0,
    ) -> None:
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown Airflow components {sorted(unknown)}; expected a subset of {COMPONENTS}")
        if "api-server" not in components:
            # Readiness and the REST client both go through the API.
            raise ValueError("components must include 'api-server'")
        if "AIRFLOW_HOME" not in env:
            raise ValueError("env must set AIRFLOW_HOME: the services must not share ~/airflow")
        self.components = tuple(components)
        self.host = host
        # One call, so the API and the two log-server ports are distinct.
        ports = [p for p in free_ports(3, host) if p != port]
        self.port = port or ports.pop()
        # Given ports (a caller confined to a port range): the worker's and the triggerer's log servers.
        self._log_server_ports = list(log_server_ports or ports[:2])
        if len(self._log_server_ports) != 2:
            raise ValueError(f"log_server_ports: expected 2 ports (worker, triggerer), got {log_server_ports}")
        self.startup_timeout = startup_timeout
        self.home = Path(env["AIRFLOW_HOME"])
        self.logs_dir = self.home / "logs" / "services"
        super().__init__(
            f"http://{host}:{self.port}", username=username, password=password or f"admin-{secrets.token_urlsafe(12)}"
        )
        self.env = self._service_environment(env)
        self.processes: dict[str, ManagedProcess] = {}
        # Seconds from launch until each component was first seen healthy (filled in by wait_healthy).
        self.startup_seconds: dict[str, float] = {}
        self._launched_at = 0.0

    # --- configuration -------------------------------------------------------------------------------------

    def _service_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {**TUNING_DEFAULTS, **base}
        bin_dir = str(Path(sys.executable).parent)
        # Task processes and steps call `airflow` / `mlcycle` by name: this interpreter's tools come first.
        env["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", os.defpath)])
        env.setdefault("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
        env.update(
            {
                # [api] host/port/base_url: the api-server's bind address and the URL it advertises.
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                # [core] execution_api_server_url: where the scheduler's task workers report task state. The
                # default derives from base_url but falls back to port 8080 (airflow/executors/base_executor.py).
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # [api_auth] jwt_secret: the scheduler signs task tokens, the api-server checks them; one secret
                # for all, rather than relying on the one `airflow.cfg` got when it was first written.
                # 64 random bytes: shorter HS512 keys make PyJWT warn on every token (RFC 7518, 3.2).
                "AIRFLOW__API_AUTH__JWT_SECRET": base.get("AIRFLOW__API_AUTH__JWT_SECRET") or secrets.token_urlsafe(64),
                # [logging] worker_log_server_port / trigger_log_server_port: the scheduler and the triggerer
                # serve task logs on fixed ports (8793, 8794) by default, which collide with a second stack or
                # a running `make ui`; the api-server reads the same keys to fetch logs from them.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._log_server_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._log_server_ports[1]),
                # [core] simple_auth_manager_users / simple_auth_manager_passwords_file: a known user whose
                # password we write ourselves (airflow/api_fastapi/auth/managers/simple/simple_auth_manager.py
                # only generates passwords for users missing from that file).
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            }
        )
        return env

    @property
    def passwords_file(self) -> Path:
        return self.home / "mlcycle_stack_passwords.json"

    def _write_passwords(self) -> None:
        self.passwords_file.parent.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(jsonlib.dumps({self.username: self.password}) + "\n")
        self.passwords_file.chmod(0o600)

    # --- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Migrate the metadata DB, start the components, wait until they are healthy."""
        launched_at = self.launch()
        try:
            self.wait_healthy(self.startup_timeout, since=launched_at)
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> dt.datetime:
        """Migrate the metadata DB and start the components without waiting for them; return when they started.

        `start()` is `launch()` + `wait_healthy()`; a caller that records the processes before waiting (so an
        interrupted start can still be cleaned up) or waits for other services meanwhile calls the two itself.
        """
        if self.processes:
            raise ServiceError("AirflowServices already started")
        self._write_passwords()
        started = time.monotonic()
        self.migrate()
        self.startup_seconds["db-migrate"] = round(time.monotonic() - started, 1)
        self._launched_at = time.monotonic()
        launched_at_utc = dt.datetime.now(dt.UTC)
        try:
            for component in self.components:
                self.processes[component] = ManagedProcess(
                    component,
                    [self._airflow(), component],
                    env=self.env,
                    log_path=self.logs_dir / f"{component}.log",
                    cwd=self.home,
                ).start()
        except BaseException:
            self.stop()
            raise
        return launched_at_utc

    def migrate(self, timeout: float = 300.0) -> None:
        """`airflow db migrate` (idempotent); its output goes to logs/services/db-migrate.log."""
        log_path = self.logs_dir / "db-migrate.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            done = subprocess.run(
                [self._airflow(), "db", "migrate"],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise ServiceError(f"airflow db migrate exited with {done.returncode}:\n{tail(log_path, 30)}")

    def stop(self, grace: float = 20.0) -> dict[str, list[int]]:
        """Stop every component (the API server last); return the PIDs that survived even SIGKILL, if any."""
        survivors: dict[str, list[int]] = {}
        for name in sorted(self.processes, key=_STOP_ORDER.index):
            left = self.processes[name].stop(grace)
            if left:
                survivors[name] = left
        return survivors

    def members(self) -> list[int]:
        """Live PIDs of every process the components started (for checks that nothing is left)."""
        return [pid for process in self.processes.values() for pid in process.members()]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _airflow(self) -> str:
        beside = Path(sys.executable).parent / "airflow"
        found = str(beside) if beside.exists() else shutil.which("airflow", path=self.env.get("PATH"))
        if not found:
            raise ServiceError("the `airflow` command was not found beside this Python or on PATH")
        return found

    # --- readiness -----------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """`GET /api/v2/monitor/health` (no login needed)."""
        result: dict[str, Any] = self.request("GET", "/api/v2/monitor/health", auth=False)
        return result

    def wait_healthy(self, timeout: float, since: dt.datetime | None = None) -> None:
        """Wait until the API answers and every started component heartbeats (after `since`, when given).

        `since` guards against a reused database whose job table still shows a recent heartbeat of an
        earlier, stopped scheduler.
        """

        def all_healthy() -> bool:
            health = self.health()
            self._note_started("api-server")
            ready = health.get("metadatabase", {}).get("status") == "healthy"
            for component in self.components:
                if component in _HEALTH_KEYS and self._heartbeat_ok(health, component, since):
                    self._note_started(component)
                elif component in _HEALTH_KEYS:
                    ready = False
            return ready

        wait_until(all_healthy, timeout, "Airflow services", processes=self.processes.values())

    @staticmethod
    def _heartbeat_ok(health: Mapping[str, Any], component: str, since: dt.datetime | None) -> bool:
        key = _HEALTH_KEYS[component]
        entry = health.get(key) or {}
        if entry.get("status") != "healthy":
            return False
        beat = entry.get(f"latest_{key}_heartbeat")
        return since is None or (beat is not None and _parse_time(beat) >= since)

    def _note_started(self, component: str) -> None:
        self.startup_seconds.setdefault(component, round(time.monotonic() - self._launched_at, 1))

    def dag_ids(self) -> set[str]:
        """Ids of the DAGs the dag-processor has parsed and serialized (`GET /api/v2/dags`, all pages)."""
        found: set[str] = set()
        while True:
            page = self.request("GET", "/api/v2/dags", params={"limit": 100, "offset": len(found)})
            found.update(dag["dag_id"] for dag in page["dags"])
            if not page["dags"] or len(found) >= page["total_entries"]:
                return found

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120.0) -> None:
        """Wait until every DAG in `dag_ids` is serialized (triggering needs that)."""
        wanted = set(dag_ids)
        try:
            wait_until(
                lambda: wanted <= self.dag_ids(),
                timeout,
                f"DAGs {sorted(wanted)} to be parsed",
                processes=[p for n, p in self.processes.items() if n in ("api-server", "dag-processor")],
            )
        except ServiceError as error:
            # A DAG file that fails to import is the usual cause: show Airflow's own record of why.
            raise ServiceError(f"{error}\n{self.import_errors()}") from None

    def import_errors(self) -> str:
        """The dag-processor's import errors (`GET /api/v2/importErrors`), as text for error messages."""
        try:
            errors = self.request("GET", "/api/v2/importErrors", params={"limit": 20})["import_errors"]
        except (OSError, AirflowAPIError) as error:
            return f"(import errors unavailable: {error})"
        if not errors:
            return "(no DAG import errors recorded)"
        return "\n".join(f"--- import error in {e['filename']} ---\n{e['stack_trace'][-3000:]}" for e in errors)

    # --- REST (the client methods come from AirflowClient) ------------------------------------------------

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> str:
        """Wait until the run is `success` or `failed`; return that state."""
        last: dict[str, str] = {}

        def finished() -> str | None:
            last["state"] = self.dag_run(dag_id, run_id)["state"]
            return last["state"] if last["state"] in _FINISHED_RUN_STATES else None

        try:
            return wait_until(finished, timeout, f"DAG run {dag_id}/{run_id}", processes=self._scheduling())
        except ServiceError as error:
            raise ServiceError(
                f"{error}\nrun state {last.get('state')}, tasks {self._safe_tasks(dag_id, run_id)}"
            ) from None

    def wait_for_backfill(self, backfill_id: int, timeout: float = 600.0, poll: float = 0.5) -> list[dict[str, Any]]:
        """Like the client's, but fails at once (with the logs) if the scheduler or the api-server dies."""
        path = f"/api/v2/backfills/{backfill_id}"

        def completed() -> dict[str, Any] | None:
            backfill: dict[str, Any] = self.request("GET", path)
            return backfill if backfill.get("completed_at") else None

        try:
            backfill = wait_until(
                completed, timeout, f"backfill {backfill_id}", processes=self._scheduling(), interval=poll
            )
        except ServiceError as error:
            raise ServiceError(f"{error}\n{self._paused_hint(path)}") from None
        return self.backfill_runs(backfill)

    def _scheduling(self) -> list[ManagedProcess]:
        return [p for n, p in self.processes.items() if n in ("api-server", "scheduler")]

    def _paused_hint(self, backfill_path: str) -> str:
        try:
            dag_id = self.request("GET", backfill_path)["dag_id"]
            paused = self.request("GET", f"/api/v2/dags/{dag_id}")["is_paused"]
        except (OSError, AirflowAPIError) as error:
            return f"(DAG state unavailable: {error})"
        return f"(DAG {dag_id} is_paused={paused}; the scheduler runs no backfill of a paused DAG)"

    def _safe_tasks(self, dag_id: str, run_id: str) -> dict[str, str | None] | str:
        try:
            return self.task_states(dag_id, run_id)
        except (OSError, AirflowAPIError) as error:
            return f"unavailable ({error})"


def _parse_time(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
