"""Partitions are committed atomically: never half-written, replaced whole, listed only when complete."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlcycle.storage import layout
from mlcycle.storage.layout import SUCCESS, Dataset
from mlcycle.storage.partitions import Storage, parse_partition

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
    assert list((tmp_path / "uc" / "raw").iterdir()) == []  # no staging left behind


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
