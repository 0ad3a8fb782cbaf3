"""Fault drills of the storage layer: commits interrupted, killed and raced, and a day re-delivered broken.

Each drill asserts what a person relies on afterwards: the previous partition is intact (or the new one is
there whole), nothing torn is ever read, a rerun completes, leftovers are swept, and a refusal that needs a
person ends in a failing exit (REJECTED), which Airflow turns into an alert.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.exitcodes import ExitCode
from mlcycle.storage import partitions
from mlcycle.storage.layout import DATA_FILE, SUCCESS, Dataset
from mlcycle.storage.partitions import Storage
from mlcycle.synthetic.yarnit import generate_day
from support.cli import run, step
from support.cli import usecase_root as root
from support.s3 import use_s3_endpoint
from support.storage_checks import commit_token, commit_validated_day, files_under, read_token

DAY = dt.date(2026, 9, 14)
#: This module's moto server (the storage helper's port range).
MOTO_PORT = 18517


# ------------------------------------------------------------------------------------------ S3


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A moto S3 server on a fixed port (so it can be stopped and started again) and a Storage on a bucket."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3
    from moto.server import ThreadedMotoServer

    url = f"http://127.0.0.1:{MOTO_PORT}"
    use_s3_endpoint(monkeypatch, url)
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False)]
    servers[0].start()
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="drills")

    def restart() -> None:
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False))
        servers[-1].start()  # moto keeps its buckets in this process: the data outlives the server

    yield {"storage": Storage("s3://drills/root"), "stop": lambda: servers[-1].stop(), "restart": restart}
    servers[-1].stop()


def test_s3_down_mid_commit_keeps_the_previous_partition_and_the_rerun_completes(
    moto_s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 stops answering after the new files are uploaded and before the manifest switch: the commit fails
    loudly, readers keep the previous partition whole, and the rerun commits and removes the orphan upload."""
    storage: Storage = moto_s3["storage"]
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "before")
    real_copy = partitions.pafs.copy_files

    def upload_then_lose_s3(source: str, destination: str, **kwargs: Any) -> None:
        real_copy(source, destination, **kwargs)
        if destination.endswith("/b.txt"):  # the last file of the new version is up; the switch comes next
            moto_s3["stop"]()

    monkeypatch.setattr(partitions.pafs, "copy_files", upload_then_lose_s3)
    with pytest.raises(OSError):
        commit_token(storage, uri, "after")
    monkeypatch.setattr(partitions.pafs, "copy_files", real_copy)
    moto_s3["restart"]()

    fresh = Storage(storage.root)  # a new client, as the next step's process would have
    assert read_token(fresh, uri) == "before", "the previous partition is intact"
    monkeypatch.setattr(partitions, "ORPHAN_SECONDS", 0)
    commit_token(fresh, uri, "after")
    assert read_token(fresh, uri) == "after"
    manifest = fresh.manifest(uri)
    assert manifest is not None
    filesystem, base = fresh._fs()
    keys = [i.path for i in filesystem.get_file_info(partitions.pafs.FileSelector(base, recursive=True)) if i.size]
    assert sorted(k.rsplit("/", 1)[-1] for k in keys) == ["_SUCCESS", "a.txt", "b.txt"], keys


# ------------------------------------------------------------------------------------- local disk

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from mlcycle.storage import partitions
    from support.storage_checks import commit_token

    root, uri, token = sys.argv[1:4]
    real_replace = os.replace

    def die_at_the_switch(source, destination, *args, **kwargs):
        if os.fspath(destination) == uri:  # the new version is complete; the pointer switch is next
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, destination, *args, **kwargs)

    os.replace = die_at_the_switch
    commit_token(partitions.Storage(root), uri, token)
    """
)

_WRITER = textwrap.dedent(
    """
    import sys
    from mlcycle.storage import partitions
    from support.storage_checks import commit_token

    root, uri, name, count = sys.argv[1:5]
    for n in range(int(count)):
        commit_token(partitions.Storage(root), uri, f"{name}-{n}")
    """
)


def _python(script: str, *args: str) -> subprocess.Popen[bytes]:
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env)


def test_local_writer_killed_mid_commit_leaves_the_old_partition_and_the_sweeper_cleans_up(tmp_path: Path) -> None:
    """A writer SIGKILLed after writing its version and before the switch: readers still get the old partition
    whole, the sweeper removes what the writer left, and the rerun commits."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "old")
    before = files_under(tmp_path)

    writer = _python(_KILLED_WRITER, str(tmp_path), uri, "new")
    assert writer.wait(timeout=120) == -signal.SIGKILL
    assert read_token(storage, uri) == "old", "readers see the old partition"
    assert len(files_under(tmp_path)) > len(before), "the killed writer left its version behind"

    storage.sweep(uri, grace_seconds=0)
    assert files_under(tmp_path) == before, "the sweeper removed what the killed writer left"
    commit_token(storage, uri, "rerun")
    assert read_token(storage, uri) == "rerun"


def test_concurrent_writer_processes_and_readers_never_see_a_missing_or_mixed_partition(tmp_path: Path) -> None:
    """Two writer processes replace a partition over and over while readers read it: every read finds it
    committed and whole, and after the sweep only the live version is left."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "first")
    writers = [_python(_WRITER, str(tmp_path), uri, name, "25") for name in ("p", "q")]
    problems: list[str] = []
    reads = [0]

    def read_while_writing() -> None:
        while any(w.poll() is None for w in writers):
            try:
                if storage.manifest(uri) is None:
                    problems.append("missing")
                read_token(storage, uri)
                reads[0] += 1
            except (OSError, AssertionError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=read_while_writing) for _ in range(2)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    assert [w.wait() for w in writers] == [0, 0]
    assert not problems, f"{len(problems)} bad reads of {reads[0]}, e.g. {problems[:3]}"
    assert read_token(storage, uri) in {"p-24", "q-24"}
    storage.sweep(uri, grace_seconds=0)
    live = Path(os.path.realpath(uri)).relative_to(tmp_path).as_posix()
    assert files_under(tmp_path) == sorted(f"{live}/{n}" for n in ("_SUCCESS", "a.txt", "b.txt"))


# ------------------------------------------------------------------------------------ re-delivery

LAST = dt.date(2026, 9, 8)
FIRST = LAST - dt.timedelta(days=6)


def test_redelivered_day_rejected_withdraws_its_validated_data_and_features_leaves_it_out(
    mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A validated day is re-delivered with data that breaks the contract: validate exits REJECTED (an alert),
    the old validated partition is withdrawn, and features trains without that day."""
    window = ("--start", str(FIRST), "--end", str(LAST), "--rows", "900")
    assert run(capsys, "generate", "--usecase", "yarnit", *window)[0] == ExitCode.OK
    for name in ("ingest", "validate"):
        code, result = step(capsys, name, LAST, "--lookback", "7")
        assert code == ExitCode.OK, result
    redelivered = LAST - dt.timedelta(days=2)
    storage = Storage(mlcycle_env["MLCYCLE_STORAGE_ROOT"])
    validated = storage.partition_uri("yarnit", Dataset.VALIDATED, redelivered)
    assert storage.exists(validated)

    landing = root(mlcycle_env) / "landing" / f"ds={redelivered}"
    if landing.is_symlink():
        landing.unlink()
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir()
    broken = generate_day(redelivered, base_rows=900).drop(columns=["price"])  # a required column is gone
    broken.to_parquet(landing / DATA_FILE, index=False)
    (landing / SUCCESS).write_text(json.dumps({"producer": "re-delivery"}))
    assert step(capsys, "ingest", redelivered)[0] == ExitCode.OK
    code, result = step(capsys, "validate", redelivered)

    assert code == ExitCode.REJECTED, result
    assert not storage.exists(validated), "the validated data of the earlier delivery is withdrawn"
    assert storage.exists(storage.partition_uri("yarnit", Dataset.QUARANTINE, redelivered))
    code, result = step(capsys, "features", LAST)
    assert code == ExitCode.OK, result
    assert str(redelivered) in result["metrics"]["missing_days"], result
    features = storage.manifest(storage.partition_uri("yarnit", Dataset.FEATURES, LAST))
    assert features is not None and all(str(redelivered) not in days for days in features["days"].values())


def test_unreadable_storage_fails_features_instead_of_reading_as_a_missing_day(
    mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A validated day that cannot be read (a file where its folder should be) fails the step with the path
    (an error: retried, then alerted) instead of being trained around as a missing day."""
    storage = Storage(mlcycle_env["MLCYCLE_STORAGE_ROOT"])
    days = [LAST - dt.timedelta(days=n) for n in range(5, -1, -1)]
    for day in days:
        commit_validated_day(storage, day, raw_digest=f"sha-{day}", validated_from=f"sha-{day}")
    broken = storage.partition_uri("yarnit", Dataset.VALIDATED, days[0] - dt.timedelta(days=1))
    Path(broken).write_text("not a partition folder")

    code, result = step(capsys, "features", LAST)
    assert code == ExitCode.ERROR, result
    assert "NotADirectoryError" in result["reason"] and broken in result["reason"], result["reason"]
    assert not storage.exists(storage.partition_uri("yarnit", Dataset.FEATURES, LAST)), "nothing committed"
