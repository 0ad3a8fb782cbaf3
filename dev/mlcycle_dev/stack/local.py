"""`make up` / `make down`: a production-like stack on one machine, on loopback only.

    PostgreSQL   databases airflow, mlflow, mlflow_auth            (the machine's own binaries)
    S3 API       moto server; buckets mlcycle-data, mlcycle-mlflow
    MLflow       tracking server on PostgreSQL, artifacts proxied to s3://mlcycle-mlflow, basic auth
    Airflow 3    api-server, scheduler, dag-processor, triggerer on PostgreSQL (LocalExecutor), the repo's DAGs

The DAG files are the same as everywhere else: the step processes inherit the services' environment, which
is where the storage root (`s3://mlcycle-data`), the S3 endpoint and keys, and the MLflow URI and pipeline
credentials are set. Every service runs in a session of its own (`ManagedProcess`), so it outlives the `up`
command; `up` writes what it started (PID + start time of each session, ports, credentials, the client
environment) to `<root>/state.json`, and `down`, in any later shell, stops exactly those sessions.

Each `up` is a new session: the previous session's databases and Airflow home are wiped first (moto keeps
objects in memory, so keeping PostgreSQL's rows without the artifacts they point to would be worse).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from mlcycle.airflow_api import AirflowClient
from mlcycle.settings import embedded_environment, home
from mlcycle_dev.stack import mlflow_server, postgres, s3
from mlcycle_dev.stack.airflow import _HEALTH_KEYS, _STOP_ORDER, COMPONENTS, AirflowServices, _parse_time
from mlcycle_dev.stack.mlflow_server import ADMIN, MlflowServer
from mlcycle_dev.stack.postgres import PostgresServer
from mlcycle_dev.stack.process import ManagedProcess, ServiceError, SessionRecord, free_ports, wait_until
from mlcycle_dev.stack.s3 import S3Server

DATA_BUCKET = "mlcycle-data"
MLFLOW_BUCKET = "mlcycle-mlflow"
DATABASES = ("airflow", "mlflow", "mlflow_auth")
PIPELINE_USER = "pipeline"
STATE_FILE = "state.json"
# `down` stops the users of a service before the service: Airflow (scheduler first), then MLflow, S3, PostgreSQL.
STOP_ORDER = (*_STOP_ORDER, "mlflow", "s3", "postgres")
# Restarting the S3 endpoint would empty it (moto keeps objects in memory).
RESTARTABLE = ("postgres", "mlflow", *COMPONENTS)


def default_root() -> Path:
    return home() / "stack"


def missing_reason() -> str | None:
    """Why the stack cannot start on this machine (a test skip names it), or None."""
    return postgres.missing_reason() or s3.missing_reason() or mlflow_server.missing_reason()


class LocalStack:
    """Start the whole stack into `root` (`start`), describe it (`state`), stop it (`stop`, in-process).

    `extra_env` is added to every service's environment (tests shorten Airflow's timeouts with it);
    `base_port` pins the six ports the stack listens on to base_port..base_port+5 (else free ports are picked);
    `task_retry_delay` installs an Airflow cluster policy that overrides every task's retry delay
    (tests: seconds instead of the DAGs' 2 minutes) -- configuration of the environment, not of the DAGs.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        components: Sequence[str] = COMPONENTS,
        extra_env: Mapping[str, str] | None = None,
        task_retry_delay: float | None = None,
        startup_timeout: float = 360.0,
        base_port: int | None = None,
    ) -> None:
        self.root = (root or default_root()).resolve()
        self.components = tuple(components)
        self.extra_env = dict(extra_env or {})
        self.task_retry_delay = task_retry_delay
        self.startup_timeout = startup_timeout
        self.logs = self.root / "logs"
        self.credentials = {
            "postgres_password": secrets.token_urlsafe(18),
            "s3_access_key": "mlcycle-" + secrets.token_hex(6),
            "s3_secret_key": secrets.token_urlsafe(24),
            "mlflow_admin_password": secrets.token_urlsafe(18),
            "mlflow_pipeline_password": secrets.token_urlsafe(18),
            "airflow_password": secrets.token_urlsafe(18),
        }
        # base_port: six consecutive ports (PostgreSQL, S3, MLflow, Airflow's API and its two log servers) for a
        # caller that must stay inside a port range; else the OS picks free ones.
        self.base_port = base_port
        pg_port, s3_port, mlflow_port = (
            free_ports(3) if base_port is None else [base_port, base_port + 1, base_port + 2]
        )
        self.postgres = PostgresServer(
            self.root / "pg", pg_port, self.credentials["postgres_password"], log_path=self.logs / "postgres.log"
        )
        self.s3 = S3Server(
            s3_port, self.credentials["s3_access_key"], self.credentials["s3_secret_key"], log_path=self.logs / "s3.log"
        )
        self.mlflow = MlflowServer(
            self.root / "mlflow",
            mlflow_port,
            backend_uri=self.postgres.url("mlflow"),
            auth_db_uri=self.postgres.url("mlflow_auth"),
            artifacts_destination=f"s3://{MLFLOW_BUCKET}",
            admin_password=self.credentials["mlflow_admin_password"],
            secret_key=secrets.token_urlsafe(32),
            log_path=self.logs / "mlflow.log",
        )
        self.airflow: AirflowServices | None = None
        self.startup_seconds: dict[str, float] = {}
        self.started_at = ""

    # --- environments -----------------------------------------------------------------------------------

    def client_environment(self) -> dict[str, str]:
        """What a shell needs to use the stack: `mlcycle` steps, MLflow and Airflow clients, boto3."""
        # No MLCYCLE_HOME: the shell keeps its own, so `make down` there still finds this stack (`<home>/stack`).
        env = {
            "MLCYCLE_STORAGE_ROOT": f"s3://{DATA_BUCKET}",
            # Empty: experiments take the server's default artifact root (mlflow-artifacts:/, proxied to S3).
            "MLCYCLE_ARTIFACT_ROOT": "",
            **self.s3.client_env(),
            "MLFLOW_TRACKING_URI": self.mlflow.url,
            "MLFLOW_TRACKING_USERNAME": PIPELINE_USER,
            "MLFLOW_TRACKING_PASSWORD": self.credentials["mlflow_pipeline_password"],
        }
        if self.airflow is not None:
            env |= {
                "AIRFLOW_API_URL": self.airflow.base_url,
                "AIRFLOW_USERNAME": self.airflow.username,
                "AIRFLOW_PASSWORD": self.airflow.password,
                # For `airflow ...` CLI commands against the same metadata DB and configuration.
                "AIRFLOW_HOME": str(self.airflow.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url("airflow"),
            }
        return env

    def _airflow_base_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **embedded_environment(self.root),
            **self.client_environment(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url("airflow"),
            **self.extra_env,
        }

    # --- life cycle -------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every service into a fresh session folder and wait until each is healthy.

        The state file is rewritten after each launch, so even an `up` that is itself killed half-way leaves
        `down` a record of everything it had started.
        """
        reason = missing_reason()
        if reason:
            raise ServiceError(reason)
        if running_services(self.root):
            raise ServiceError(f"a stack is already running from {self.root}: stop it first (make down)")
        _fresh_folder(self.root)
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.save_state()
        try:
            self.postgres.start(DATABASES)
            self.startup_seconds |= self.postgres.startup_seconds
            self.save_state()
            self.s3.start({**os.environ, **self.extra_env}, [DATA_BUCKET, MLFLOW_BUCKET])
            self.startup_seconds |= self.s3.startup_seconds
            # MLflow and Airflow start side by side: each spends most of its start-up importing and migrating.
            self.mlflow.launch({**os.environ, **self.s3.client_env(), **self.extra_env})
            self.save_state()
            # No components: the services a step pod talks to, without Airflow (tests run the steps themselves).
            if self.components:
                launched_at = self._launch_airflow()
                self.save_state()
                assert self.airflow is not None
                self.airflow.wait_healthy(self.startup_timeout, since=launched_at)
                self.startup_seconds |= {
                    ("airflow-db-migrate" if k == "db-migrate" else k): v
                    for k, v in self.airflow.startup_seconds.items()
                }
            self.mlflow.wait_healthy(self.startup_timeout)
            self.startup_seconds |= self.mlflow.startup_seconds
            self.mlflow.create_user(PIPELINE_USER, self.credentials["mlflow_pipeline_password"])
        except BaseException:
            self.stop()
            self.save_state()
            raise
        self.save_state()
        return self

    def _launch_airflow(self) -> dt.datetime:
        env = self._airflow_base_env()
        airflow_home = Path(env["AIRFLOW_HOME"])
        if self.task_retry_delay is not None:
            _write_retry_policy(airflow_home, self.task_retry_delay)
        base = self.base_port
        self.airflow = AirflowServices(
            env,
            self.components,
            port=None if base is None else base + 3,
            log_server_ports=None if base is None else [base + 4, base + 5],
            password=self.credentials["airflow_password"],
            startup_timeout=self.startup_timeout,
        )
        return self.airflow.launch()

    def stop(self, grace: float = 20.0) -> dict[str, list[int]]:
        """Stop what this object started (users first); return the PIDs that survived, per service."""
        survivors: dict[str, list[int]] = {}
        if self.airflow is not None:
            survivors |= self.airflow.stop(grace)
        for name, service in (("mlflow", self.mlflow), ("s3", self.s3), ("postgres", self.postgres)):
            left = service.stop(grace)
            if left:
                survivors[name] = left
        return survivors

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state ------------------------------------------------------------------------------------------

    def _processes(self) -> dict[str, ManagedProcess]:
        found = {
            name: service.process
            for name, service in (("postgres", self.postgres), ("s3", self.s3), ("mlflow", self.mlflow))
            if service.process is not None
        }
        if self.airflow is not None:
            found |= self.airflow.processes
        return found

    def state(self) -> dict[str, Any]:
        """Everything `down`, `status`, `restart` and a test need later, from any process (also mid-start)."""
        urls = {
            "postgres": f"postgresql://127.0.0.1:{self.postgres.port}",
            "s3": self.s3.url,
            "mlflow": self.mlflow.url,
        }
        if self.airflow is not None:
            urls["api-server"] = self.airflow.base_url
        services = {}
        for name, process in self._processes().items():
            if not process.running:
                continue  # stopped (a failed start): nothing to record
            services[name] = {
                "session": process.record().to_dict(),
                "url": urls.get(name, ""),
                # How to start it again (`restart`, from any shell): the command and its whole environment. No
                # secret more than the service's own /proc/<pid>/environ shows its owner; the file is 0600.
                "argv": process.argv,
                "env": process.env,
                "cwd": str(process.cwd) if process.cwd else None,
                "user": process.user,
                "stop_signal": int(process.stop_signal),
                "log_path": str(process.log_path),
            }
        credentials = {
            "postgres": {"user": postgres.SUPERUSER, "password": self.credentials["postgres_password"]},
            "mlflow_admin": {"user": ADMIN, "password": self.credentials["mlflow_admin_password"]},
            "mlflow_pipeline": {"user": PIPELINE_USER, "password": self.credentials["mlflow_pipeline_password"]},
            "s3": {"access_key": self.credentials["s3_access_key"], "secret_key": self.credentials["s3_secret_key"]},
        }
        if self.airflow is not None:
            credentials["airflow"] = {"user": self.airflow.username, "password": self.airflow.password}
        return {
            "root": str(self.root),
            "started_at": self.started_at,
            "services": services,
            "env": self.client_environment(),
            "credentials": credentials,
            "databases": {name: self.postgres.url(name) for name in DATABASES},
            "buckets": [DATA_BUCKET, MLFLOW_BUCKET],
            "startup_seconds": self.startup_seconds,
        }

    def save_state(self) -> Path:
        return save_state(self.root, self.state())


# --- working from the state file (any process) ---------------------------------------------------------------


def state_path(root: Path) -> Path:
    return root / STATE_FILE


def load_state(root: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(state_path(root).read_text())
    except FileNotFoundError:
        return None
    return loaded


def save_state(root: Path, state: Mapping[str, Any]) -> Path:
    path = state_path(root)
    temporary = path.with_suffix(".tmp")
    # Passwords inside: readable by this account only.
    temporary.touch(mode=0o600)
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(path)
    return path


def records(state: Mapping[str, Any]) -> dict[str, SessionRecord]:
    return {name: SessionRecord.from_dict(spec["session"]) for name, spec in state.get("services", {}).items()}


def running_services(root: Path) -> dict[str, list[int]]:
    """Recorded services with processes still alive: name -> PIDs."""
    state = load_state(root)
    if state is None:
        return {}
    alive = {name: record.members() for name, record in records(state).items()}
    return {name: pids for name, pids in alive.items() if pids}


def down(root: Path, grace: float = 20.0, say: Callable[[str], None] = print) -> dict[str, list[int]]:
    """Stop exactly the sessions `up` recorded under `root`; return the PIDs that survived (none, normally)."""
    state = load_state(root)
    if state is None:
        say(f"nothing to stop: no {state_path(root)}")
        return {}
    survivors: dict[str, list[int]] = {}
    recorded = records(state)
    for name in sorted(recorded, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1):
        record = recorded[name]
        pids = record.members()
        if not pids:
            say(f"  {name:<14} already stopped")
            continue
        started = time.monotonic()
        left = record.stop(grace)
        processes = f"{len(pids)} process{'es' if len(pids) > 1 else ''}"
        say(f"  {name:<14} stopped session {record.pid} ({processes}) in {time.monotonic() - started:.1f} s")
        if left:
            survivors[name] = left
            say(f"  {name:<14} SURVIVED: {left}")
    stopped = dict(state, stopped_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    save_state(root, stopped)
    return survivors


def stop_service(root: Path, name: str, grace: float = 20.0) -> list[int]:
    """Stop one recorded service (e.g. to prove a client survives its outage); returns survivors."""
    state = _require_state(root)
    return records(state)[name].stop(grace)


def start_service(root: Path, name: str, timeout: float = 240.0) -> float:
    """Start one recorded service again with its recorded command and settings; wait until healthy.

    Returns the seconds it took. The new session replaces the old one in the state file, so `down` stops it.
    """
    if name not in RESTARTABLE:
        raise ValueError(f"{name} cannot be restarted (choose from {', '.join(RESTARTABLE)})")
    state = _require_state(root)
    spec = state["services"][name]
    if records(state)[name].members():
        raise ServiceError(f"{name} is still running")
    started, since = time.monotonic(), dt.datetime.now(dt.UTC)
    process = ManagedProcess(
        name,
        spec["argv"],
        env=spec["env"],
        log_path=Path(spec["log_path"]),
        cwd=Path(spec["cwd"]) if spec.get("cwd") else None,
        stop_signal=int(spec.get("stop_signal", signal.SIGTERM)),
        user=spec.get("user"),
    ).start()
    state["services"][name]["session"] = process.record().to_dict()
    save_state(root, state)
    wait_until(lambda: service_healthy(state, name, since), timeout, f"{name} after a restart", processes=[process])
    return round(time.monotonic() - started, 1)


def restart_service(root: Path, name: str, grace: float = 20.0, timeout: float = 240.0) -> float:
    left = stop_service(root, name, grace)
    if left:
        raise ServiceError(f"{name}: processes {left} survived the stop")
    return start_service(root, name, timeout)


def service_healthy(state: Mapping[str, Any], name: str, since: dt.datetime | None = None) -> bool:
    """One service's health check, the same one `up` waited for."""
    env, url = state["env"], state["services"][name]["url"]
    if name == "postgres":
        import psycopg2

        credentials = state["credentials"]["postgres"]
        port = int(url.rsplit(":", 1)[1])
        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user=credentials["user"], password=credentials["password"], dbname="airflow"
        )
        connection.close()
        return True
    if name == "s3":
        return _http_ok(f"{url}/moto-api/")
    if name == "mlflow":
        return _http_ok(f"{url}/health")
    health = AirflowClient(env["AIRFLOW_API_URL"]).request("GET", "/api/v2/monitor/health", auth=False)
    if name == "api-server":
        return bool(health.get("metadatabase", {}).get("status") == "healthy")
    key = _HEALTH_KEYS[name]
    entry = health.get(key) or {}
    beat = entry.get(f"latest_{key}_heartbeat")
    fresh = since is None or (beat is not None and _parse_time(beat) >= since)
    return bool(entry.get("status") == "healthy" and fresh)


def status(root: Path) -> dict[str, str]:
    """Each recorded service: `healthy`, `running (unhealthy)` or `stopped`."""
    state = load_state(root)
    if state is None:
        return {}
    result = {}
    for name, record in records(state).items():
        if not record.members():
            result[name] = "stopped"
            continue
        try:
            healthy = service_healthy(state, name)
        except Exception:  # a health probe that cannot connect means "not healthy", whatever the error
            healthy = False
        result[name] = "healthy" if healthy else "running (unhealthy)"
    return result


def _require_state(root: Path) -> dict[str, Any]:
    state = load_state(root)
    if state is None:
        raise ServiceError(f"no stack recorded under {root} (make up first)")
    return state


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(response.status == 200)


def _fresh_folder(root: Path) -> None:
    """Wipe the previous session, keep nothing but an empty, private-but-traversable folder."""
    if root.exists():
        if any(root.iterdir()) and not state_path(root).exists():
            # Only ever wipe a folder a previous `up` made: a mistyped --root must not cost anyone their files.
            raise ServiceError(f"{root} is not empty and holds no {STATE_FILE}: choose an empty or new folder")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    # 0711: others may pass through (PostgreSQL's own account must reach its data folder below) but not list.
    root.chmod(0o711)


def _write_retry_policy(airflow_home: Path, seconds: float) -> None:
    config = airflow_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "airflow_local_settings.py").write_text(
        '"""Cluster policy written by mlcycle_dev.stack (task_retry_delay): one retry delay for every task."""\n\n'
        "import datetime\n\n\n"
        "def task_policy(task):\n"
        f"    task.retry_delay = datetime.timedelta(seconds={seconds!r})\n"
    )


__all__ = [
    "DATA_BUCKET",
    "MLFLOW_BUCKET",
    "LocalStack",
    "default_root",
    "down",
    "load_state",
    "missing_reason",
    "restart_service",
    "running_services",
    "start_service",
    "status",
    "stop_service",
]
