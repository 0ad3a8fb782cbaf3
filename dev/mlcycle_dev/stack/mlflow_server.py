"""The MLflow tracking server of the local stack: PostgreSQL backend, S3 artifacts, basic authentication on.

`mlflow server --app-name basic-auth` with
- runs, experiments and the model registry in PostgreSQL (`--backend-store-uri`);
- artifacts proxied by the server into an S3 bucket (`--serve-artifacts --artifacts-destination s3://...`):
  clients log and load artifacts through the server with their MLflow credentials only, as in production,
  and never need the bucket's keys;
- users and permissions in their own PostgreSQL database (`basic_auth.ini`'s `database_uri`), an admin
  created on first start, and a pipeline user made through the auth REST API for the steps.

Clients: `MLFLOW_TRACKING_URI=http://127.0.0.1:<port>` + `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlcycle_dev.stack.process import ManagedProcess, ServiceError, wait_until

ADMIN = "admin"


def missing_reason() -> str | None:
    """Why the authenticated MLflow server cannot run here (for a test skip), or None when it can."""
    if importlib.util.find_spec("flask_wtf") is None:
        # mlflow/server/auth/__init__.py imports it for CSRF protection of its sign-up form.
        return "MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]')"
    return None


class MlflowServer:
    """One `mlflow server` process with basic auth; `request` calls its REST API as a given user."""

    def __init__(
        self,
        home: Path,
        port: int,
        *,
        backend_uri: str,
        auth_db_uri: str,
        artifacts_destination: str,
        admin_password: str,
        secret_key: str,
        log_path: Path,
    ) -> None:
        self.home = home
        self.port = port
        self.backend_uri = backend_uri
        self.auth_db_uri = auth_db_uri
        self.artifacts_destination = artifacts_destination
        self.admin_password = admin_password
        self.secret_key = secret_key
        self.log_path = log_path
        self.process: ManagedProcess | None = None
        self.startup_seconds: dict[str, float] = {}
        self._launched_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_config_path(self) -> Path:
        return self.home / "basic_auth.ini"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            self.backend_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifacts_destination,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            # One worker is plenty for one machine's pipelines, and each worker is ~300 MB.
            "--workers",
            "1",
        ]

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        return {
            **base,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config_path),
            # The basic-auth app signs its CSRF tokens with it; one static key for every worker.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
            # Without this the server starts 7 job-runner processes (~2 GB) that nothing here uses.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_ENABLE_TELEMETRY": "false",
        }

    def write_auth_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.auth_config_path.write_text(
            "[mlflow]\n"
            # Every authenticated user may read; writing needs ownership or a grant (the creator gets MANAGE).
            "default_permission = READ\n"
            f"database_uri = {self.auth_db_uri}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {self.admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password hash costs ~1 s of CPU on a busy 2-core machine, and a training step makes
            # dozens of calls: cache successful checks. One worker, so a password change is seen at once.
            "auth_cache_ttl_seconds = 600\n"
        )
        self.auth_config_path.chmod(0o600)

    def launch(self, base_env: Mapping[str, str]) -> MlflowServer:
        """Start the process without waiting (the caller overlaps it with other services' starts)."""
        reason = missing_reason()
        if reason:
            raise ServiceError(reason)
        self.write_auth_config()
        self._launched_at = time.monotonic()
        self.process = ManagedProcess(
            "mlflow", self.argv(), env=self.environment(base_env), log_path=self.log_path, cwd=self.home
        ).start()
        return self

    def wait_healthy(self, timeout: float = 240.0) -> None:
        """`GET /health` answers (no login needed there) and the admin can log in (the auth DB is ready)."""
        assert self.process is not None, "launch() first"
        wait_until(
            lambda: self.health() and self.request("GET", "/api/2.0/mlflow/users/current", user=ADMIN) is not None,
            timeout,
            "the MLflow server",
            processes=[self.process],
        )
        self.startup_seconds["mlflow"] = round(time.monotonic() - self._launched_at, 1)

    def stop(self, grace: float = 20.0) -> list[int]:
        return self.process.stop(grace) if self.process else []

    # --- REST ------------------------------------------------------------------------------------------------

    def health(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
            return bool(response.status == 200)

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        user: str | None = ADMIN,
        password: str | None = None,
    ) -> Any:
        """Call the REST API as `user` (the admin by default; None: no credentials). Raises HTTPError."""
        return mlflow_request(
            self.url, method, path, body, user=user, password=self.admin_password if password is None else password
        )

    def create_user(self, username: str, password: str) -> None:
        """A non-admin user (idempotent: an existing user keeps its password)."""
        try:
            self.request("POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password})
        except urllib.error.HTTPError as error:
            if error.code not in (400, 409):  # RESOURCE_ALREADY_EXISTS
                raise


def mlflow_request(
    url: str,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    user: str | None = None,
    password: str = "",
    timeout: float = 30.0,
) -> Any:
    """One MLflow REST call with optional basic auth; returns the parsed JSON. Raises `urllib.error.HTTPError`."""
    headers = {"Accept": "application/json"}
    data = None
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if body is not None and method == "GET":
        path += "?" + urllib.parse.urlencode(body, doseq=True)
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text else {}
