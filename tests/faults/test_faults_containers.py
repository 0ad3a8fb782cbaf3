"""Fault drills in containers (issue 13, item 4): a step pod killed mid-commit, and a pod from an image that
lacks a module its step needs, each run through `podman kube play` under the restricted profile.

Both reuse the task image the container tests build (never rebuilt here) and skip, saying why, where no
container runtime can run it. Pods, secrets and the derived image are named `cfault-*` and removed after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlcycle.orchestration.kubernetes import RUN_AS_USER
from mlcycle.settings import embedded_environment
from mlcycle.storage.layout import CSV_FILE, SUCCESS, VERSIONS_FOLDER
from mlcycle.storage.partitions import Storage
from mlcycle_dev.containers.pods import PodRun
from mlcycle_dev.containers.runtime import Engine
from support.container_faults import Images, pod_outcome, session_images, step_pod

DAY = dt.date(2026, 9, 14)
#: Big enough that the pod's copy and hashing of it outlast the drill's look-up of the pod's PID and the few
#: milliseconds it takes to stop it. 128 MiB once sufficed, while a step's interpreter spent seconds in its exit;
#: since `mlcycle.cli.entrypoint` exits at once, an idle machine finished that ingest before the look-up.
BIG_LANDING_BYTES = 512 * 2**20


@pytest.fixture(scope="module")
def images() -> Images:
    return session_images()


@pytest.fixture(scope="module")
def engine(images: Images) -> Engine:
    return images.engine


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _chown(root: Path) -> None:
    """Give the storage root to the pods' user (uid 10001), as a volume's fsGroup would."""
    for path in [root, *root.rglob("*")]:
        os.chown(path, RUN_AS_USER, RUN_AS_USER, follow_symlinks=False)


def _land(storage: Storage, content: bytes | Path) -> str:
    """Commit a landing partition for DAY holding `content` as its CSV; its sha256."""
    uri = storage.partition_uri("yarnit", "landing", DAY)
    with storage.writer(uri, {"step": "generate"}) as staging:
        target = staging / CSV_FILE
        if isinstance(content, Path):
            os.link(content, target)
        else:
            target.write_bytes(content)
        return hashlib.sha256(target.read_bytes()).hexdigest()


def _big_file(path: Path) -> Path:
    block = hashlib.sha256(b"cfault").digest() * (2**20 // 32)  # 1 MiB, not all zeros
    with path.open("wb") as out:
        for _ in range(BIG_LANDING_BYTES // len(block)):
            out.write(block)
    return path


def _read_partition(storage: Storage, uri: str) -> tuple[str | None, str | None]:
    """(the manifest's digest, the sha256 of the CSV a reader gets) of the partition at `uri`, or (None, None)."""
    manifest = storage.manifest(uri)
    if manifest is None:
        return None, None
    with storage.local_copy(uri) as folder:
        return manifest["digest"], hashlib.sha256((folder / CSV_FILE).read_bytes()).hexdigest()


def test_step_pod_killed_mid_commit_leaves_the_previous_partition_whole_and_the_rerun_completes(
    engine: Engine, images: Images, home: Path
) -> None:
    """An ingest pod stopped the moment its new raw version appears and SIGKILLed with `podman kill` exits 137
    (retried, then alerted): readers still get the previous partition whole, the sweep removes the
    half-written version, and the same pod run again completes with the digest an uninterrupted run records
    (the sha256 of the landed file). Ingest touches no model: there is no champion to check here."""
    env = embedded_environment(home)
    storage = Storage(env["MLCYCLE_STORAGE_ROOT"])
    raw = storage.partition_uri("yarnit", "raw", DAY)
    versions = Path(raw).parent / VERSIONS_FOLDER / Path(raw).name
    step = step_pod("yarnit_training", "ingest", images, home)

    small = _land(storage, b"day,user,value\n2026-09-14,1,2\n")
    _chown(home)
    first = step.run()
    assert (first.exit_code, (first.xcom or {}).get("metrics", {}).get("digest")) == (0, small), first.logs[-1500:]
    assert _read_partition(storage, raw) == (small, small)
    live = os.readlink(raw)

    big = _land(storage, _big_file(home / "big.csv"))
    _chown(home)
    seen: dict[str, Any] = {}

    def kill_once_half_written(container: str) -> None:
        pid = int(engine.run("inspect", "--format", "{{.State.Pid}}", container).stdout)
        assert pid > 0, f"{container} ended before the drill could stop it"  # kill(0) would stop this group
        deadline = time.monotonic() + 300  # a bound for a stuck pod, not a timing assertion
        while time.monotonic() < deadline:
            staged = [p for p in versions.iterdir() if p.name != Path(live).name and not p.name.startswith(".")]
            if staged:
                # Stopped at once (podman's own start-up takes longer than the rest of the commit), then killed.
                os.kill(pid, signal.SIGSTOP)
                seen["staged"] = staged[0]
                seen["bytes"] = sum(f.stat().st_size for f in staged[0].rglob("*") if f.is_file())
                engine.run("kill", "--signal", "KILL", container)
                return
            time.sleep(0.005)
        pytest.fail(f"no new version of {raw} appeared")

    killed = step.run(while_running=kill_once_half_written)
    assert killed.exit_code == 137 and killed.xcom is None, killed.logs[-1500:]
    assert os.readlink(raw) == live, "the kill landed after the switch: the drill did not kill mid-commit"
    assert seen["staged"].is_dir() and not (seen["staged"] / SUCCESS).exists(), seen
    assert _read_partition(storage, raw) == (small, small)  # the previous partition, whole
    assert pod_outcome(step, killed) == "AirflowException"  # a kill is retried

    storage.sweep(raw, grace_seconds=0)
    assert sorted(p.name for p in versions.iterdir()) == [Path(live).name]

    rerun = step.run()
    assert (rerun.exit_code, (rerun.xcom or {}).get("metrics", {}).get("digest")) == (0, big), rerun.logs[-1500:]
    assert _read_partition(storage, raw) == (big, big)
    assert storage.manifest(raw)["files"][CSV_FILE]["sha256"] == big  # type: ignore[index]


def test_image_missing_a_module_fails_the_step_with_the_module_named_in_its_termination_log(
    engine: Engine, images: Images, home: Path
) -> None:
    """A validate pod from an image without great_expectations exits 1 (a retried error: the task fails and
    alerts once its retries are spent) and its termination log, mounted where the kubelet mounts it, names the
    missing module; no model is touched."""
    log = home.parent / "termination-log"
    log.write_text("")
    os.chown(log, RUN_AS_USER, RUN_AS_USER)
    home.mkdir()
    # A raw partition to validate: validate imports GX only once it has a day to check (a missing day fails first).
    env = {**os.environ, **embedded_environment(home)}
    cli = str(Path(sys.executable).parent / "mlcycle")
    day = ["--usecase", "yarnit"]
    subprocess.run(
        [cli, "generate", *day, "--start", str(DAY), "--end", str(DAY), "--rows", "300"], env=env, check=True
    )
    subprocess.run([cli, "ingest", *day, "--partition", str(DAY)], env=env, check=True, capture_output=True)
    _chown(home)
    with images.without_module("great_expectations") as derived:
        step = step_pod("yarnit_training", "validate", images, home, task_image=derived, termination_log=log)
        run: PodRun = step.run()
    assert run.exit_code == 1, run.logs[-1500:]
    assert log.read_text() == "error: ModuleNotFoundError: No module named 'great_expectations'", run.logs[-1500:]
    assert "great_expectations" in (run.xcom or {}).get("reason", "")
    assert pod_outcome(step, run) == "AirflowException"
