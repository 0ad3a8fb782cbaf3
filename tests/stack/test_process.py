"""ManagedProcess stops a whole process tree, and wait_until explains a failed start (seconds, no Airflow)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from mlcycle_dev.stack.process import ManagedProcess, ServiceError, free_port, free_ports, start_ticks, wait_until

# A "service" whose tree holds what made plain process-group kills leak in Airflow: a child in the same group, a
# child that moved to its own group (as Airflow's task runners do) and a child that ignores SIGTERM.
TREE = """
import os, signal, subprocess, sys, time
pids = [os.getpid()]
pids.append(subprocess.Popen(["sleep", "300"]).pid)
pids.append(subprocess.Popen(["sleep", "300"], process_group=0).pid)
pids.append(subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring', flush=True); time.sleep(300)"]).pid)
open(sys.argv[1], "w").write(" ".join(map(str, pids)))
print("tree started", flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    return start_ticks(pid) is not None


def test_stop_ends_every_process_of_the_service(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    service = ManagedProcess(
        "tree", [sys.executable, "-c", TREE, str(pid_file)], env=dict(os.environ), log_path=tmp_path / "tree.log"
    ).start()
    pids = wait_until(lambda: pid_file.read_text() if pid_file.exists() else None, 30, "tree", processes=[service])
    started = [int(pid) for pid in pids.split()]
    wait_until(lambda: "ignoring" in service.log_tail(), 30, "the SIGTERM-ignoring child", processes=[service])
    assert set(started) <= set(service.members()), "members() sees children outside the main process group"

    survivors = service.stop(grace=2.0)

    assert survivors == []
    assert [pid for pid in started if _alive(pid)] == []
    assert service.members() == []
    assert "tree started" in (tmp_path / "tree.log").read_text()


def test_stop_is_safe_before_start_and_twice(tmp_path: Path) -> None:
    service = ManagedProcess("sleeper", ["sleep", "30"], env=dict(os.environ), log_path=tmp_path / "s.log")
    assert service.stop() == []
    service.start()
    assert service.running
    assert service.stop(grace=5) == []
    assert service.stop(grace=5) == []
    assert not service.running


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([None, ConnectionRefusedError("not yet"), 0, "ready"])

    def check() -> str | None:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]

    assert wait_until(check, 10, "thing", interval=0.01) == "ready"


def test_wait_until_timeout_names_the_service_the_last_error_and_its_log(tmp_path: Path) -> None:
    with ManagedProcess(
        "chatty",
        ["sh", "-c", "echo line-one; echo line-two; sleep 30"],
        env=dict(os.environ),
        log_path=tmp_path / "c.log",
    ) as service:
        wait_until(lambda: "line-two" in service.log_tail(), 10, "chatty log")

        def refuse() -> bool:
            raise ConnectionRefusedError("port closed")

        with pytest.raises(ServiceError) as caught:
            wait_until(refuse, 0.5, "chatty API", processes=[service], interval=0.1)
    message = str(caught.value)
    assert "chatty API: not ready after" in message
    assert "ConnectionRefusedError: port closed" in message
    assert "line-one\nline-two" in message


def test_wait_until_fails_fast_when_the_service_exits(tmp_path: Path) -> None:
    service = ManagedProcess(
        "crasher", ["sh", "-c", "echo 'bad config' >&2; exit 3"], env=dict(os.environ), log_path=tmp_path / "x.log"
    ).start()
    # "exited with code 3" rather than "not ready after 120s": it stopped waiting when the process ended.
    with pytest.raises(ServiceError, match=r"crasher exited with code 3(.|\n)*bad config"):
        wait_until(lambda: False, 120, "crasher", processes=[service], interval=0.1)
    service.stop()


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
