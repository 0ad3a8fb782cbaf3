"""Partitions on an S3 API (moto, in a thread): committed whole, replaced whole, never read torn.

S3 has no rename, so a commit uploads a new version under its own prefix and switches `_SUCCESS` to it with
one PUT. These tests interrupt that sequence at each point and read the partition as another step would.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyarrow import fs as pafs

from mlcycle.storage import partitions
from mlcycle.storage.layout import DATA_PREFIX, SUCCESS
from mlcycle.storage.partitions import Storage
from mlcycle_dev.stack.process import free_port
from support.s3 import use_s3_endpoint

pytest.importorskip("moto.server", reason="moto[server] is not installed")

BUCKET = "mlcycle-test"
DAY = dt.date(2026, 9, 14)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    yield url
    server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A boto3 client of a fresh bucket; the environment points Storage at the same endpoint."""
    import boto3

    use_s3_endpoint(monkeypatch, endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"{BUCKET}-{request.node.name.replace('_', '-')[:40].lower()}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    yield client


def _storage(s3: Any) -> Storage:
    return Storage(f"s3://{s3.bucket}/root")


def _keys(s3: Any) -> list[str]:
    """The bucket's objects, without the empty `folder/` markers pyarrow leaves to emulate directories."""
    listed = s3.list_objects_v2(Bucket=s3.bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))


def _commit(storage: Storage, uri: str, text: str, name: str = "data.txt") -> None:
    with storage.writer(uri, {"step": "test", "text": text}) as staging:
        (staging / name).write_text(text)
        (staging / "sub").mkdir()
        (staging / "sub" / "more.txt").write_text(text.upper())


def _read(storage: Storage, uri: str) -> dict[str, str]:
    with storage.local_copy(uri) as folder:
        return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_a_commit_is_read_back_whole(s3: Any) -> None:
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    assert uri == f"s3://{s3.bucket}/root/uc/raw/ds=2026-09-14"
    assert storage.manifest(uri) is None and not storage.exists(uri)

    _commit(storage, uri, "one")

    manifest = storage.manifest(uri)
    assert manifest is not None and manifest["text"] == "one" and manifest["uri"] == uri
    assert set(manifest["files"]) == {"data.txt", "sub/more.txt"}
    files = _read(storage, uri)
    assert files["data.txt"] == "one" and files["sub/more.txt"] == "ONE"
    assert json.loads(files[SUCCESS])["files"] == manifest["files"]
    assert storage.list_partitions("uc", "raw") == [DAY]
    prefix = manifest[DATA_PREFIX]
    assert _keys(s3) == sorted(
        [f"root/uc/raw/ds=2026-09-14/{SUCCESS}"]
        + [f"root/uc/raw/ds=2026-09-14/{prefix}/{name}" for name in ("data.txt", "sub/more.txt")]
    )


def test_a_rewrite_replaces_the_partition_and_leaves_one_version(s3: Any) -> None:
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    _commit(storage, uri, "one")
    _commit(storage, uri, "two")

    assert _read(storage, uri)["data.txt"] == "two"
    prefixes = {key.split("/_v/")[1].split("/")[0] for key in _keys(s3) if "/_v/" in key}
    assert len(prefixes) == 1, _keys(s3)


def test_a_writer_killed_mid_upload_leaves_the_old_version_readable(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    _commit(storage, uri, "old")
    before = storage.manifest(uri)
    assert before is not None
    real_copy = pafs.copy_files
    seen: list[dict[str, str]] = []

    def upload_then_die(source: str, destination: str, **kwargs: Any) -> None:
        real_copy(source, destination, **kwargs)
        if "destination_filesystem" in kwargs:  # an upload (reads pass a source_filesystem)
            # A reader between two uploads of the new version still gets the old one, whole.
            seen.append(_read(Storage(storage.root), uri))
            raise KeyboardInterrupt("killed mid-upload")  # what Ctrl-C does; SIGKILL stops the same way

    monkeypatch.setattr(partitions.pafs, "copy_files", upload_then_die)
    with pytest.raises(KeyboardInterrupt):
        _commit(storage, uri, "new")
    monkeypatch.setattr(partitions.pafs, "copy_files", real_copy)

    assert seen and seen[0]["data.txt"] == "old" and seen[0]["sub/more.txt"] == "OLD"
    assert storage.manifest(uri) == before
    assert _read(storage, uri)["data.txt"] == "old"
    orphans = {k.split("/_v/")[1].split("/")[0] for k in _keys(s3) if "/_v/" in k} - {
        str(before[DATA_PREFIX]).split("/")[1]
    }
    assert len(orphans) == 1, "the interrupted upload is left unreferenced"

    # The retry commits; the orphan goes once it is old enough (here: at once).
    monkeypatch.setattr(partitions, "ORPHAN_SECONDS", 0)
    _commit(storage, uri, "retried")
    assert _read(storage, uri)["data.txt"] == "retried"
    prefixes = {k.split("/_v/")[1].split("/")[0] for k in _keys(s3) if "/_v/" in k}
    assert len(prefixes) == 1, _keys(s3)


def test_a_recent_unreferenced_upload_is_left_alone(s3: Any) -> None:
    """Another writer may be uploading it right now: only old orphans are removed."""
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    s3.put_object(Bucket=s3.bucket, Key="root/uc/raw/ds=2026-09-14/_v/busy-writer/data.txt", Body=b"in flight")
    _commit(storage, uri, "one")
    assert "root/uc/raw/ds=2026-09-14/_v/busy-writer/data.txt" in _keys(s3)


def test_an_error_inside_the_writer_commits_nothing(s3: Any) -> None:
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    with pytest.raises(RuntimeError), storage.writer(uri, {}) as staging:
        (staging / "data.txt").write_text("half")
        raise RuntimeError("crash before the commit")
    assert storage.manifest(uri) is None
    assert _keys(s3) == []
    with pytest.raises(FileNotFoundError):
        _read(storage, uri)


def test_partitions_committed_before_versioned_prefixes_are_read_and_replaced(s3: Any) -> None:
    storage = _storage(s3)
    uri = storage.partition_uri("uc", "raw", DAY)
    key = "root/uc/raw/ds=2026-09-14"
    s3.put_object(Bucket=s3.bucket, Key=f"{key}/data.txt", Body=b"flat")
    manifest = {"uri": uri, "files": {"data.txt": {"bytes": 4, "sha256": "x"}}}
    s3.put_object(Bucket=s3.bucket, Key=f"{key}/{SUCCESS}", Body=json.dumps(manifest).encode())

    assert _read(storage, uri)["data.txt"] == "flat"
    _commit(storage, uri, "versioned")
    assert _read(storage, uri)["data.txt"] == "versioned"
    assert f"{key}/data.txt" not in _keys(s3)


def test_move_and_delete(s3: Any) -> None:
    storage = _storage(s3)
    source = storage.partition_uri("uc", "raw", DAY)
    target = storage.partition_uri("uc", "quarantine", DAY)
    _commit(storage, source, "bad")
    storage.move(source, target)
    assert storage.manifest(source) is None
    assert _read(storage, target)["data.txt"] == "bad"
    assert not [k for k in _keys(s3) if "/raw/" in k]
    storage.delete(target)
    assert storage.manifest(target) is None
    assert _keys(s3) == []


def test_an_unreachable_endpoint_is_an_error_not_an_absent_partition(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    storage = _storage(s3)
    with pytest.raises(OSError) as raised:
        storage.manifest(storage.partition_uri("uc", "raw", DAY))
    assert not isinstance(raised.value, FileNotFoundError)


def test_the_local_staging_folder_is_removed_after_the_upload(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 commits stage in a local temporary folder (TMPDIR), which is gone afterwards."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    storage = _storage(s3)
    _commit(storage, storage.partition_uri("uc", "raw", DAY), "x")
    assert list(tmp_path.iterdir()) == []
