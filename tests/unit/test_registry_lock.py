"""The registry lock is a lease (issue 12, H6), at both backends (a local folder and an S3 API).

A dead holder's lease expires and the next promotion proceeds; an empty or unreadable lock expires after its last
write plus the lease; release deletes only this holder's own record; a step killed with SIGTERM while holding the
lock leaves through `finally` and releases it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlcycle.registry import lock
from support.fake_mlflow import NOT_FOUND, OK, SLOW, fake_mlflow, mlflow_client_env, on
from support.registry_backends import BACKENDS, USECASE, holder_record, lease_backend

pytest.importorskip("moto.server", reason="moto[server] is not installed")

# Bounded waits for a correct answer (never a timing threshold): a wrong answer is a LockTimeout or a failed wait.
TAKE_OVER_WITHIN_S = 30.0


@pytest.mark.parametrize("kind", BACKENDS)
def test_release_leaves_a_lease_taken_over_by_another_holder(kind: str, tmp_path: Path, monkeypatch) -> None:
    with lease_backend(kind, tmp_path, monkeypatch) as (storage, lock_object):
        with lock.registry_lock(storage, USECASE, timeout=5):
            taken_over = holder_record("the-new-holder", lease_s=30)
            lock_object.write(taken_over)  # as if this holder's lease had expired and another had taken it
        assert lock_object.read() == taken_over, "release deleted a lock it no longer owned"


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_dead_holders_lease_expires_and_the_next_promotion_proceeds(kind: str, tmp_path: Path, monkeypatch) -> None:
    with lease_backend(kind, tmp_path, monkeypatch) as (storage, lock_object):
        lock_object.write(holder_record("killed-with-sigkill", lease_s=1))
        with lock.registry_lock(storage, USECASE, timeout=TAKE_OVER_WITHIN_S):
            held = json.loads(lock_object.read() or b"{}")
        assert held["id"] != "killed-with-sigkill" and held["pid"] == os.getpid()
        assert lock_object.read() is None, "released"


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"id": "no lease field"}'])
@pytest.mark.parametrize("kind", BACKENDS)
def test_an_empty_or_unreadable_lock_expires_after_its_last_write_plus_the_lease(
    kind: str, body: bytes, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(lock, "LEASE_SECONDS", 1.0, raising=False)
    with lease_backend(kind, tmp_path, monkeypatch) as (storage, lock_object):
        lock_object.write(body)
        if kind == "local":
            lock_object.age_back(3600)
        with lock.registry_lock(storage, USECASE, timeout=TAKE_OVER_WITHIN_S):
            assert json.loads(lock_object.read() or b"{}")["pid"] == os.getpid()


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_live_holders_lease_is_not_taken(kind: str, tmp_path: Path, monkeypatch) -> None:
    """The other side of expiry: a lease written just now, by a holder that renews, makes others wait."""
    with lease_backend(kind, tmp_path, monkeypatch) as (storage, lock_object):
        lock_object.write(holder_record("alive", lease_s=3600))
        with pytest.raises(lock.LockTimeout, match="alive"):
            with lock.registry_lock(storage, USECASE, timeout=1):
                pass
        assert json.loads(lock_object.read() or b"{}")["id"] == "alive"


def test_a_promote_killed_with_sigterm_releases_the_lock(mlcycle_env: dict[str, str], tmp_path: Path) -> None:
    """The step hangs inside the lock (MLflow does not answer its write); SIGTERM makes it leave through `finally`."""
    lock_file = Path(mlcycle_env["MLCYCLE_STORAGE_ROOT"]) / USECASE / "registry" / "champion.lock"
    with fake_mlflow(
        OK,
        on("GET", "/api/2.0/mlflow/registered-models/alias", NOT_FOUND),
        on("POST", "/api/2.0/mlflow/model-versions/set-tag", SLOW),
    ) as fake:
        env = {**mlcycle_env, **mlflow_client_env(fake.uri), "MLFLOW_HTTP_REQUEST_TIMEOUT": "120"}
        argv = [sys.executable, "-m", "mlcycle.cli", "promote", "--usecase", USECASE]
        argv += ["--partition", "2024-03-01", "--model-version", "2", "--approver", "a", "--reason", "test"]
        step = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120  # the step's imports take seconds on a loaded machine
            while not any(p.endswith("set-tag") for _, p in fake.requests):
                assert step.poll() is None, step.communicate()[0]
                assert time.monotonic() < deadline, "the step never reached its write inside the lock"
                time.sleep(0.1)
            assert lock_file.exists(), "the step is inside the lock"
            step.send_signal(signal.SIGTERM)
            output, _ = step.communicate(timeout=60)
        finally:
            if step.poll() is None:
                step.kill()
    assert step.returncode not in (0, 65, 99), output  # an error: Airflow retries, then alerts
    assert not lock_file.exists(), f"SIGTERM left the registry lock behind:\n{output[-2000:]}"
    assert fake.alias_moves() == []
