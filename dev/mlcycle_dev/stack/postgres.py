"""A PostgreSQL server for one stack folder, from the machine's own binaries, on loopback only.

`initdb` once into `<root>` (a password-protected superuser, SCRAM on TCP, no Unix socket), then `postgres`
as a `ManagedProcess` and one database per client (`airflow`, `mlflow`, ...). PostgreSQL refuses to run as
root: when we are root (CI machines, containers) the server runs as the `postgres` account that the Debian
package creates, and its data folder is handed to that account.

Binaries are looked for on PATH, then in the Debian package's `/usr/lib/postgresql/<version>/bin`
(`apt-get install postgresql` puts them there, off PATH).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcycle_dev.stack.process import ManagedProcess, ServiceError, wait_until

BINARIES = ("initdb", "postgres")
SERVICE_ACCOUNT = "postgres"
SUPERUSER = "mlcycle"


def find_binaries() -> dict[str, str] | None:
    """Paths of `initdb` and `postgres` (same installation), or None when PostgreSQL is not installed."""
    on_path = {name: shutil.which(name) for name in BINARIES}
    if all(on_path.values()):
        return {name: str(path) for name, path in on_path.items()}
    # Debian/Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True):
        if all((folder / name).is_file() for name in BINARIES):
            return {name: str(folder / name) for name in BINARIES}
    return None


def _major(folder: Path) -> int:
    version = folder.parent.name
    return int(version) if version.isdigit() else 0


def missing_reason() -> str | None:
    """Why PostgreSQL cannot run here (for a test skip), or None when it can."""
    if find_binaries() is None:
        return (
            "PostgreSQL is not installed (no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin): "
            "apt-get install postgresql"
        )
    if os.geteuid() == 0 and _account() is None:
        return f"running as root and there is no {SERVICE_ACCOUNT!r} account to run PostgreSQL as"
    return None


def _account() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        return None


class PostgresServer:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port` with a password."""

    def __init__(self, data_dir: Path, port: int, password: str, *, log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.password = password
        self.log_path = log_path
        self.process: ManagedProcess | None = None
        self.startup_seconds: dict[str, float] = {}
        binaries = find_binaries()
        if binaries is None:
            raise ServiceError(missing_reason() or "PostgreSQL is not installed")
        self.binaries = binaries
        # Root: run as the `postgres` account (PostgreSQL exits at once when started as root).
        self.user = SERVICE_ACCOUNT if os.geteuid() == 0 else None

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of one database (psycopg2 spelled out: SQLAlchemy 2.1 maps plain postgresql:// to v3)."""
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, databases: Sequence[str], timeout: float = 120.0) -> PostgresServer:
        started = time.monotonic()
        self._initdb()
        self.startup_seconds["initdb"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        self.process = ManagedProcess(
            "postgres",
            [
                self.binaries["postgres"],
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                # No Unix socket: nothing outside this stack should find it, and /var/run/postgresql may not exist.
                "-c",
                "unix_socket_directories=",
                # Airflow's components, its task processes and MLflow each keep a connection pool.
                "-c",
                "max_connections=300",
                # A throw-away development cluster: durability against power loss buys nothing here.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            env=self._env(),
            log_path=self.log_path,
            cwd=self.data_dir,
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for every client to disconnect
            user=self.user,
        ).start()
        try:
            wait_until(self._ping, timeout, "PostgreSQL", processes=[self.process])
            self.create_databases(databases)
        except BaseException:
            self.process.stop()
            raise
        self.startup_seconds["postgres"] = round(time.monotonic() - started, 1)
        return self

    def stop(self, grace: float = 20.0) -> list[int]:
        return self.process.stop(grace) if self.process else []

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "LANG", "LC_ALL", "TZ")}
        env.setdefault("LANG", "C.UTF-8")
        return env

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        password_file = self.data_dir.parent / ".pg-password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        account = _account() if self.user else None
        if account is not None:
            _check_reachable(self.data_dir, account)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            done = subprocess.run(
                [
                    self.binaries["initdb"],
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                env=self._env(),
                cwd=self.data_dir,
                user=self.user,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ServiceError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def _connect(self, database: str = "postgres") -> Any:
        import psycopg2  # lazily: only the stack needs a PostgreSQL driver at import

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname=database, connect_timeout=5
        )

    def _ping(self) -> bool:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return bool(cursor.fetchone())
        finally:
            connection.close()

    def create_databases(self, names: Sequence[str]) -> None:
        """Create each database that does not exist yet (CREATE DATABASE cannot run inside a transaction)."""
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                for name in names:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cursor.fetchone() is None:
                        cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def describe(self) -> Mapping[str, Any]:
        return {"port": self.port, "user": SUPERUSER, "data_dir": str(self.data_dir)}


def _check_reachable(folder: Path, account: pwd.struct_passwd) -> None:
    """The service account must be able to reach `folder`: every parent needs execute permission for it."""
    for parent in folder.resolve().parents:
        mode = parent.stat().st_mode
        others_x = bool(mode & 0o001)
        owner_x = parent.stat().st_uid == account.pw_uid and bool(mode & 0o100)
        if not (others_x or owner_x):
            raise ServiceError(
                f"PostgreSQL runs as {account.pw_name!r} and cannot reach {folder}: {parent} is not searchable "
                f"by others (chmod o+x {parent}, or choose a stack folder elsewhere)"
            )
