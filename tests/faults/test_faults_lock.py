"""Fault drills: promotions killed while holding the registry lease, and promotions racing for it.

Each drill asserts that @champion is intact or consistent (exactly one winner), that no lock is left behind
(or that it expires), and that a killed step fails as an error (Airflow retries it, then alerts).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import get_usecase
from mlcycle.registry import champion
from support.cli import step
from support.fake_mlflow import ALIAS_PATH, NOT_FOUND, OK, SLOW, FakeMlflow, fake_mlflow, mlflow_client_env, on
from support.registry_backends import USECASE, LockObject, lease_backend
from support.registry_drills import assert_retried_then_alerted, champion_now, registry_with_champion

pytest.importorskip("moto.server", reason="moto[server] is not installed")

DAY = dt.date(2024, 3, 1)
PROMOTE_V2 = ["promote", "--usecase", USECASE, "--partition", DAY.isoformat(), "--model-version", "2"]
PROMOTE_V2 += ["--approver", "a", "--reason", "drill"]
# Bounded waits for the right state (never a timing threshold): the step pays its imports first.
REACH_S = 120.0


@pytest.fixture
def hanging_mlflow() -> Iterator[FakeMlflow]:
    """An MLflow where @champion is absent and the first write of a promotion (a version tag) never answers:
    a promote that reaches it is inside the registry lease, and stays there."""
    with fake_mlflow(
        OK, on("GET", ALIAS_PATH, NOT_FOUND), on("POST", "/api/2.0/mlflow/model-versions/set-tag", SLOW)
    ) as fake:
        yield fake


def _wait_inside_the_lease(fake: FakeMlflow, process: Any, lock_object: LockObject) -> None:
    deadline = time.monotonic() + REACH_S
    while not any(path.endswith("set-tag") for _, path in fake.requests):
        assert process is None or process.poll() is None, "the step ended before reaching its write"
        assert time.monotonic() < deadline, "the step never reached its write inside the lease"
        time.sleep(0.1)
    assert lock_object.read() is not None, "the step holds the lease"


def _no_partitions(root: Path) -> None:
    written = list(root.rglob("ds=*")) if root.exists() else []
    assert written == [], f"torn or unexpected partitions: {written}"


def test_promote_sigterm_while_holding_the_lock_on_s3_releases_it(
    mlcycle_env: dict[str, str], hanging_mlflow: FakeMlflow, tmp_path: Path, monkeypatch
) -> None:
    """A promote SIGTERM-ed inside the lease (S3 root) exits as an error, deletes its lease and moves no alias."""
    with lease_backend("s3", tmp_path, monkeypatch) as (storage, lock_object):
        env = {**mlcycle_env, **mlflow_client_env(hanging_mlflow.uri), "MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
        env["MLCYCLE_STORAGE_ROOT"] = storage.root
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
        argv = [sys.executable, "-m", "mlcycle.cli", *PROMOTE_V2]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_inside_the_lease(hanging_mlflow, process, lock_object)
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
        assert_retried_then_alerted(process.returncode, None)
        assert lock_object.read() is None, "the SIGTERM-ed promote left its lease"
    assert hanging_mlflow.alias_moves() == [], "@champion moved"


def test_promote_sigkilled_holding_the_lock_expires_and_the_next_promote_proceeds(
    mlcycle_env: dict[str, str], capsys
) -> None:
    """A holder SIGKILL-ed inside the lease cannot release it; its lease expires and the next promote wins cleanly."""
    registry_with_champion(versions=2, champion="1")
    holder = (
        "import sys, time\n"
        "from mlcycle.registry.lock import registry_lock\n"
        "from mlcycle.storage.partitions import Storage\n"
        "with registry_lock(Storage(sys.argv[1]), 'yarnit', lease_s=2):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    root = mlcycle_env["MLCYCLE_STORAGE_ROOT"]
    process = subprocess.Popen([sys.executable, "-c", holder, root], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    lock_file = Path(root) / USECASE / "registry" / "champion.lock"
    assert lock_file.exists(), "SIGKILL leaves the lease behind (nothing can release it)"
    code, result = step(capsys, "promote", DAY, *PROMOTE_V2[5:])
    assert code == 0, result
    assert champion_now() == "2"
    assert not lock_file.exists(), "the next promote released the lease it took over"


def test_two_promotions_racing_on_s3_exactly_one_wins(mlcycle_env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    """Two promotions from champion v1 (to v2 and v3) race under the S3 lease: one wins, one is refused, no lock left."""
    registry_with_champion(versions=3, champion="1")
    usecase = get_usecase(USECASE)
    real_check = champion.current_champion

    def slow_check(u: Any) -> str | None:  # widen the window between check and set, as a slow network would
        seen = real_check(u)
        time.sleep(0.5)
        return seen

    monkeypatch.setattr(champion, "current_champion", slow_check)
    outcomes: list[str] = []
    with lease_backend("s3", tmp_path, monkeypatch) as (storage, lock_object):
        start = threading.Barrier(2)

        def promote(version: str) -> None:
            start.wait()
            try:
                champion.compare_and_set(storage, usecase, version, "1", {"mlcycle.promoted_by": "drill"})
                outcomes.append(f"won:{version}")
            except champion.ChampionChanged:
                outcomes.append(f"lost:{version}")

        threads = [threading.Thread(target=promote, args=(v,)) for v in ("2", "3")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert lock_object.read() is None, "the lease was released"
    winners = [o.split(":")[1] for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and len(outcomes) == 2, outcomes
    assert champion_now() == winners[0]
    assert real_check(usecase) == winners[0]


def test_worker_sigterm_mid_step_leaves_no_lock_and_no_torn_partition(
    mlcycle_env: dict[str, str], hanging_mlflow: FakeMlflow, tmp_path: Path, monkeypatch
) -> None:
    """The local launcher killed mid-step (on_kill: SIGTERM to the step) fails the task for a retry; no lock is left."""
    from airflow.sdk.exceptions import AirflowException

    from mlcycle.orchestration.operators import LocalStepOperator

    root = Path(mlcycle_env["MLCYCLE_STORAGE_ROOT"])
    lock_object = LockObject(str(root / USECASE / "registry" / "champion.lock"))
    env = {**mlflow_client_env(hanging_mlflow.uri), "MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
    operator = LocalStepOperator(task_id="promote", cmds=["mlcycle"], arguments=PROMOTE_V2, env_vars=env)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute(context={})
        except BaseException as exc:  # the task's outcome, read below
            raised.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait_inside_the_lease(hanging_mlflow, None, lock_object)
        operator.on_kill()
    finally:
        worker.join(timeout=REACH_S)
    assert not worker.is_alive()
    assert len(raised) == 1 and type(raised[0]) is AirflowException, raised  # retried, then alerted
    assert lock_object.read() is None, "the killed step left the registry lease"
    _no_partitions(root)
    assert hanging_mlflow.alias_moves() == [], "@champion moved"
