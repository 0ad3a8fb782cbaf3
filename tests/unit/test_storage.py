"""Partitions are committed atomically: never half-written, replaced whole, listed only when complete."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pytest

from mlcycle.storage import layout, partitions
from mlcycle.storage.layout import SUCCESS, Dataset
from mlcycle.storage.partitions import Storage, parse_partition
from support.storage_checks import commit_token, files_under, read_token

DAY = dt.date(2026, 9, 14)


def test_commit_writes_files_and_manifest(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    with storage.writer(uri, {"step": "test"}) as staging:
        (staging / "data.txt").write_text("hello")
    manifest = storage.manifest(uri)
    assert manifest is not None and manifest["step"] == "test"
    assert manifest["files"]["data.txt"]["bytes"] == 5
    assert (Path(uri) / "data.txt").read_text() == "hello"
    assert storage.list_partitions("uc", "raw") == [DAY]


def test_failure_inside_the_writer_leaves_nothing(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    with pytest.raises(RuntimeError), storage.writer(uri, {}) as staging:
        (staging / "data.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert storage.manifest(uri) is None
    assert not Path(uri).exists()
    assert files_under(tmp_path / "uc" / "raw") == []  # no staging left behind


def test_failed_rewrite_keeps_the_previous_partition(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    with storage.writer(uri, {"version": 1}) as staging:
        (staging / "data.txt").write_text("v1")
    with pytest.raises(RuntimeError), storage.writer(uri, {"version": 2}) as staging:
        (staging / "data.txt").write_text("v2")
        raise RuntimeError
    assert (Path(uri) / "data.txt").read_text() == "v1"
    with storage.writer(uri, {"version": 2}) as staging:
        (staging / "other.txt").write_text("v2")
    assert not (Path(uri) / "data.txt").exists(), "a rewrite replaces the partition whole"
    assert storage.manifest(uri)["version"] == 2


def test_uncommitted_partitions_are_invisible(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    torn = tmp_path / "uc" / "raw" / "ds=2026-09-13"
    torn.mkdir(parents=True)
    (torn / "data.parquet").write_text("torn")
    assert storage.list_partitions("uc", "raw") == []
    with pytest.raises(FileNotFoundError, match=SUCCESS), storage.local_copy(str(torn)):
        pass


def test_move_and_delete(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    source, target = storage.partition_uri("uc", "raw", DAY), storage.partition_uri("uc", "quarantine", DAY)
    with storage.writer(source, {}) as staging:
        (staging / "x").write_text("x")
    storage.move(source, target)
    assert storage.exists(target) and not storage.exists(source)
    storage.delete(target)
    assert not storage.exists(target)


def test_bad_partition_is_named() -> None:
    with pytest.raises(ValueError, match="'2026-13-01' is not a date"):
        parse_partition("2026-13-01")


def test_layout_spells_the_on_disk_paths() -> None:
    """The layout is a contract with every reader of the storage root (backfill, the demo, people): spelled out."""
    assert layout.partition_uri("s3://b/p/", "uc", Dataset.PREDICTIONS, DAY, layout.role_sub("champion")) == (
        "s3://b/p/uc/predictions/ds=2026-09-14/role=champion"
    )
    assert Storage("/data").partition_uri("uc", Dataset.VALIDATED, DAY) == "/data/uc/validated/ds=2026-09-14"
    assert layout.dataset_uri("/data", "uc", Dataset.LANDING) == "/data/uc/landing"
    assert layout.champion_lock_uri("/data/", "uc") == "/data/uc/registry/champion.lock"
    assert [layout.split_file(s) for s in layout.SPLITS] == ["train.parquet", "valid.parquet", "test.parquet"]
    assert layout.partition_of_folder(layout.partition_folder(DAY)) == DAY.isoformat()
    assert layout.partition_of_folder(".staging-x") is None


def test_landed_file_prefers_parquet_and_raw_file_follows_the_manifest(tmp_path: Path) -> None:
    assert layout.landed_file(tmp_path) is None
    (tmp_path / "data.csv").write_text("a\n1\n")
    assert layout.landed_file(tmp_path) == (tmp_path / "data.csv", "csv")
    (tmp_path / layout.DATA_FILE).write_bytes(b"")
    assert layout.landed_file(tmp_path) == (tmp_path / "data.parquet", "parquet")
    assert layout.raw_file(tmp_path, {"format": "csv", "file": "data.csv"}) == (tmp_path / "data.csv", "csv")
    assert layout.raw_file(tmp_path, {}) == (tmp_path / "data.parquet", "parquet"), "older manifests: Parquet"


# ---- M1: one atomic switch per commit; readers hold an immutable version; a sweeper removes leftovers


def test_concurrent_readers_and_writers_never_see_a_missing_or_mixed_partition(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "w0-0")
    problems: list[str] = []
    writing = threading.Event()
    writing.set()

    def write(writer: int) -> None:
        try:
            for n in range(40):
                commit_token(storage, uri, f"w{writer}-{n}")
        except Exception as exc:  # a failed commit is a finding of this test, reported below
            problems.append(f"writer {writer}: {type(exc).__name__}: {exc}")

    def read() -> None:
        while writing.is_set():
            try:
                if storage.manifest(uri) is None:
                    problems.append("the committed partition was missing")
                read_token(storage, uri)
            except (OSError, AssertionError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    writers = [threading.Thread(target=write, args=(w,)) for w in (1, 2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in readers:
        thread.join()
    assert not problems, f"{len(problems)} bad reads, e.g. {problems[:3]}"
    assert read_token(storage, uri) in {"w1-39", "w2-39"}, "the last commit wins whole"

    storage.sweep(uri, grace_seconds=0)
    dataset = tmp_path / "uc" / "raw"
    live = Path(os.path.realpath(uri)).relative_to(dataset).as_posix()
    assert files_under(dataset) == sorted(f"{live}/{n}" for n in ("a.txt", "b.txt", SUCCESS)), "only the live version"


def test_local_copy_is_not_changed_by_a_later_commit(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "v1")
    with storage.local_copy(uri) as folder:
        commit_token(storage, uri, "v2")
        assert (folder / "a.txt").read_text() == "v1", "the reader keeps the version it resolved"
        assert json.loads((folder / SUCCESS).read_text())["token"] == "v1"
    assert read_token(storage, uri) == "v2"


def test_the_sweeper_keeps_the_live_version_and_recent_leftovers(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "v1")
    commit_token(storage, uri, "v2")
    versions = tmp_path / "uc" / "raw" / layout.VERSIONS_FOLDER / f"ds={DAY}"
    assert len(list(versions.iterdir())) == 2, "a replaced version stays for readers that may still hold it"
    storage.sweep(uri)  # default grace: the replaced version is too recent to remove
    assert len(list(versions.iterdir())) == 2
    storage.sweep(uri, grace_seconds=0)
    assert [p.name for p in versions.iterdir()] == [Path(os.readlink(uri)).name]
    assert read_token(storage, uri) == "v2"


def test_a_commit_sweeps_what_a_killed_writer_left_on_another_day(tmp_path: Path) -> None:
    """Days are rarely rewritten: the next commit of any day in the dataset removes old leftovers."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "v1")
    versions = tmp_path / "uc" / "raw" / layout.VERSIONS_FOLDER / f"ds={DAY}"
    abandoned, recent = versions / "killed-writer", versions / "busy-writer"
    for folder in (abandoned, recent):
        folder.mkdir()
        (folder / "a.txt").write_text("half")
    hours_ago = time.time() - 2 * partitions.ORPHAN_SECONDS
    for path in (abandoned / "a.txt", abandoned, versions, Path(uri)):
        os.utime(path, (hours_ago, hours_ago), follow_symlinks=False)

    commit_token(storage, storage.partition_uri("uc", "raw", DAY + dt.timedelta(days=1)), "next day")
    assert not abandoned.exists(), "an old leftover is swept by a commit of another day"
    assert recent.exists(), "a writer may still be busy with a recent one"
    assert read_token(storage, uri) == "v1"


def test_partitions_of_the_earlier_layout_are_read_and_replaced(tmp_path: Path) -> None:
    """Data committed by earlier versions (files directly in ds=D/) stays readable and is replaced atomically."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    old = Path(uri)
    old.mkdir(parents=True)
    for name in ("a.txt", "b.txt"):
        (old / name).write_text("legacy")
    (old / SUCCESS).write_text(json.dumps({"token": "legacy", "files": {"a.txt": {}, "b.txt": {}}}))
    with storage.local_copy(uri) as folder:
        commit_token(storage, uri, "new")
        assert (folder / "a.txt").read_text() == "legacy", "a reader of the old layout is not switched mid-read"
    assert read_token(storage, uri) == "new"
    storage.sweep(uri, grace_seconds=0)
    dataset = tmp_path / "uc" / "raw"
    live = Path(os.path.realpath(uri)).relative_to(dataset).as_posix()
    assert files_under(dataset) == sorted(f"{live}/{n}" for n in ("a.txt", "b.txt", SUCCESS)), "the old folder is swept"


def test_the_earlier_layout_is_replaced_where_the_kernel_cannot_exchange_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without renameat2 the swap falls back to two renames, and the result is the same."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    Path(uri).mkdir(parents=True)
    (Path(uri) / SUCCESS).write_text("{}")
    monkeypatch.setattr(partitions.ctypes, "CDLL", lambda *args, **kwargs: object())
    commit_token(storage, uri, "new")
    assert Path(uri).is_symlink() and read_token(storage, uri) == "new"
    storage.sweep(uri, grace_seconds=0)
    assert len(files_under(tmp_path)) == 3


def test_delete_withdraws_atomically_and_the_sweeper_removes_the_files(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "v1")
    storage.delete(uri)
    assert not storage.exists(uri) and not Path(uri).exists()
    storage.sweep(uri, grace_seconds=0)
    assert files_under(tmp_path / "uc" / "raw") == []
    commit_token(storage, uri, "v2")
    assert read_token(storage, uri) == "v2"


# ---- L5: only a missing file means "absent"


def test_an_unreadable_partition_is_an_error_not_absent(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    Path(uri).parent.mkdir(parents=True)
    Path(uri).write_text("a file where the partition folder should be")
    with pytest.raises(NotADirectoryError, match=f"ds={DAY}"):
        storage.manifest(uri)
    with pytest.raises(NotADirectoryError):
        storage.exists(uri)


def test_a_permission_error_is_not_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores file modes, so the refusal is injected where storage meets the OS."""
    storage = Storage(str(tmp_path))
    uri = storage.partition_uri("uc", "raw", DAY)
    commit_token(storage, uri, "v1")
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == SUCCESS:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(PermissionError, match=SUCCESS):
        storage.manifest(uri)


# ---- L1: a path is normalised before it is checked against the root


@pytest.mark.parametrize(
    "escape",
    ["{root}/uc/../../outside/raw/ds=2026-09-14", "{root}/../x", "{root}-sibling/uc/raw/ds=2026-09-14"],
    ids=["dotdot-deep", "dotdot", "sibling-prefix"],
)
def test_a_path_outside_the_root_is_refused(tmp_path: Path, escape: str) -> None:
    root = tmp_path / "root"
    storage = Storage(str(root))
    uri = escape.format(root=root)
    with pytest.raises(ValueError, match="outside the storage root") as refused:
        storage.manifest(uri)
    assert uri in str(refused.value)
    with pytest.raises(ValueError, match="outside the storage root"), storage.writer(uri, {}) as staging:
        (staging / "x").write_text("x")
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()


def test_an_s3_key_outside_the_root_is_refused() -> None:
    storage = Storage("s3://bucket/prefix")
    with pytest.raises(ValueError, match="outside the storage root"):
        storage.manifest("s3://bucket/prefix/uc/../../other/raw/ds=2026-09-14")


def test_a_local_roots_scratch_is_on_its_volume_and_killed_steps_leftovers_go_after_a_day(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    parent = tmp_path / "root" / partitions.SCRATCH
    parent.mkdir(parents=True)
    stale, fresh = parent / "score-killed", parent / "score-running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "part-00000.parquet").write_bytes(b"x")
    day_old = time.time() - partitions.SCRATCH_GRACE_SECONDS - 60
    os.utime(stale, (day_old, day_old))
    with storage.scratch("score-") as scratch:
        assert scratch.parent == parent and scratch.name.startswith("score-")
        (scratch / "part").write_bytes(b"y")
        assert not stale.exists() and fresh.exists(), "only what is older than the grace goes"
    assert not scratch.exists()
    with pytest.raises(RuntimeError, match="boom"), storage.scratch("score-") as failing:
        raise RuntimeError("boom")
    assert not failing.exists(), "removed on an error too"
    with Storage("s3://bucket/prefix").scratch("score-") as elsewhere:
        assert elsewhere.is_dir() and not elsewhere.is_relative_to(tmp_path), "S3: the machine's temporary folder"
    assert not elsewhere.exists()
