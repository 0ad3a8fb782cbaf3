"""Long-running local services as child processes that can always be stopped completely (standard library only).

A service such as `airflow scheduler` forks workers, and Airflow's task supervisor moves every task runner into a
process group of its own (`setpgid`, see airflow/sdk/execution_time/supervisor.py), so signalling the service's
process group alone can leave task processes behind. Each `ManagedProcess` therefore starts its command in a new
*session* (`setsid`): `setpgid` keeps the session, so on Linux the session id read from /proc names every process
the service ever started, whatever group it moved to. Only a process that calls `setsid` itself escapes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

T = TypeVar("T")

_PROC = Path("/proc")


class ServiceError(RuntimeError):
    """A managed service failed to start, died, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it; another process could still take it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free TCP ports: all are held open while the OS picks, so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ('' if it does not exist yet)."""
    try:
        with path.open("rb") as file:
            # Logs can grow to megabytes: read only the end.
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def session_members(sid: int) -> list[int]:
    """PIDs of the live (not zombie) processes of session `sid`, read from /proc (Linux)."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we were looking
            continue
        # Fields after the command name, which may itself hold spaces and parentheses: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None if gone or a zombie.

    A PID alone does not name a process for long: once it exits the number is handed out again. The pair
    (pid, start ticks) does, which is what lets `down` in a later shell stop exactly what `up` started.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class ManagedProcess:
    """One service command in its own session, logging to a file; `stop()` leaves none of its processes behind.

    Usage::

        with ManagedProcess("sleeper", ["sleep", "60"], env=os.environ, log_path=Path("s.log")) as service:
            wait_until(lambda: service.running, 10, "sleeper", processes=[service])
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        # The signal that asks the service to shut down cleanly: SIGTERM for most, SIGINT for PostgreSQL (its
        # SIGTERM is a "smart" shutdown that waits for every client to disconnect).
        self.stop_signal = stop_signal
        # Run as this account (needs root): PostgreSQL refuses to run as root.
        self.user = user
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stopped = False

    def start(self) -> Self:
        if self._popen is not None:
            raise ServiceError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"==> {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self._popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # setsid: pid == process group id == session id, so the whole tree can be found and signalled.
            start_new_session=True,
            user=self.user,
        )
        return self

    def record(self) -> SessionRecord:
        """What another process needs to find and stop this service later (`python -m mlcycle_dev.stack down`)."""
        ticks = start_ticks(self.pid)
        if ticks is None:
            raise ServiceError(f"{self.name} (pid {self.pid}) is not running")
        return SessionRecord(self.name, self.pid, ticks, int(self.stop_signal), str(self.log_path))

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise ServiceError(f"{self.name} is not started")
        return self._popen.pid

    @property
    def running(self) -> bool:
        """Whether the service's main process is still alive (its children are not considered)."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def members(self) -> list[int]:
        """Live PIDs of everything this service started (its session; its process group where /proc is absent)."""
        if self._popen is None:
            return []
        self._popen.poll()  # reap the main process if it ended, so it does not count as a zombie member
        if _PROC.is_dir():
            return session_members(self._popen.pid)
        try:
            os.killpg(self._popen.pid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [self._popen.pid]

    def stop(self, grace: float = 20.0) -> list[int]:
        """SIGTERM the service, SIGKILL whatever is left after `grace` seconds; return PIDs that survived even that.

        The main process group gets `stop_signal` first (SIGTERM unless the service wants another), so Airflow
        components shut down their own workers cleanly; stragglers in other groups of the session get SIGTERM once
        the main process has exited, and everything still there at the deadline gets SIGKILL.
        """
        if self._popen is None:
            return []
        if self._stopped:
            # Signal nothing twice: once the service is gone, its PID (= group id) may belong to someone else.
            return self.members()
        self._stopped = True
        deadline = time.monotonic() + grace
        self._signal_group(self.stop_signal)
        _poll(lambda: not self.running, deadline)
        self._signal_members(signal.SIGTERM)
        _poll(lambda: not self.members(), max(deadline, time.monotonic() + 2.0))
        if self.members():
            self._signal_group(signal.SIGKILL)
            self._signal_members(signal.SIGKILL)
            _poll(lambda: not self.members(), time.monotonic() + 5.0)
        survivors = self.members()
        if self._log is not None:
            self._log.close()
        return survivors

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _signal_members(self, signum: int) -> None:
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid {self._popen.pid}, returncode {self.returncode}"
        return f"ManagedProcess({self.name!r}, {state})"


@dataclass(frozen=True)
class SessionRecord:
    """A service started by another process, as written to a state file: enough to find and stop all of it.

    The leader's PID is also its session id. While any process of the session lives, Linux does not hand that
    number out again (it is still in use as a session id), so "members of session `pid`" are ours; once the
    leader is gone and a *new* process holds the number, its start time differs and nothing is signalled.
    """

    name: str
    pid: int
    start_ticks: int
    stop_signal: int = int(signal.SIGTERM)
    log_path: str = ""

    def _leader_is_ours(self) -> bool:
        ticks = start_ticks(self.pid)
        return ticks is None or ticks == self.start_ticks

    @property
    def running(self) -> bool:
        """Whether the recorded leader process itself is still alive."""
        return start_ticks(self.pid) == self.start_ticks

    def members(self) -> list[int]:
        """Live PIDs of the recorded session ([] once it is gone or its PID belongs to someone else)."""
        return session_members(self.pid) if self._leader_is_ours() else []

    def stop(self, grace: float = 20.0) -> list[int]:
        """Like `ManagedProcess.stop`, for a service this process did not start; returns the survivors."""
        if not self._leader_is_ours():
            return []
        deadline = time.monotonic() + grace
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, self.stop_signal)
        _poll(lambda: not self.running, deadline)
        for signum, wait in ((signal.SIGTERM, max(deadline - time.monotonic(), 2.0)), (signal.SIGKILL, 5.0)):
            members = self.members()
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
            _poll(lambda: not self.members(), time.monotonic() + wait)
        return self.members()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SessionRecord:
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            start_ticks=int(str(data["start_ticks"])),
            stop_signal=int(str(data.get("stop_signal", int(signal.SIGTERM)))),
            log_path=str(data.get("log_path", "")),
        )


def _poll(done: Callable[[], bool], deadline: float, interval: float = 0.2) -> bool:
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    processes: Iterable[ManagedProcess] = (),
    interval: float = 0.5,
) -> T:
    """Call `check` until it returns something truthy, and return that.

    An exception from `check` counts as "not yet" (a service that is still starting refuses connections). On
    timeout, or as soon as one of `processes` exits, raise `ServiceError` naming `what`, the last exception
    and the end of each process's log, so a failed start explains itself.
    """
    watched = list(processes)
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except Exception as error:  # the service is not ready yet: remember why, for the message
            last_error, result = error, None
        if result:
            return result
        dead = [p for p in watched if p.returncode is not None]
        if dead or time.monotonic() >= deadline:
            reason = (
                ", ".join(f"{p.name} exited with code {p.returncode}" for p in dead)
                if dead
                else f"not ready after {timeout:.0f}s"
            )
            raise ServiceError(_explain(what, reason, last_error, dead or watched))
        time.sleep(interval)


def _explain(what: str, reason: str, error: BaseException | None, processes: Iterable[ManagedProcess]) -> str:
    parts = [f"{what}: {reason}"]
    if error is not None:
        parts.append(f"last check error: {type(error).__name__}: {error}")
    for process in processes:
        parts.append(f"--- last lines of {process.name} ({process.log_path}) ---\n{process.log_tail(30)}")
    return "\n".join(parts)
