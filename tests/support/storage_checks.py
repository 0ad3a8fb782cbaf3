"""Partitions whose files must agree: what the storage tests and drills commit, read and check for tears."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from mlcycle.storage.layout import DATA_FILE, SUCCESS, Dataset
from mlcycle.storage.partitions import Storage

#: The files of a token partition; each holds the token, and so does the manifest.
TOKEN_FILES = ("a.txt", "b.txt")


def commit_token(storage: Storage, uri: str, token: str) -> None:
    """Commit a partition of two files that must always agree with each other and with the manifest."""
    with storage.writer(uri, {"token": token}) as staging:
        for name in TOKEN_FILES:
            (staging / name).write_text(token)


def read_token(storage: Storage, uri: str) -> str:
    """The token of the committed partition, read as a step would; AssertionError if the reader saw it mixed."""
    with storage.local_copy(uri) as folder:
        token = str(json.loads((folder / SUCCESS).read_text())["token"])
        seen = []
        for name in TOKEN_FILES:
            seen.append((folder / name).read_text())
            time.sleep(0)  # let a writer in between two reads
    if any(value != token for value in seen):
        raise AssertionError(f"mixed partition at {uri}: manifest {token}, files {seen}")
    return token


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` (following no links), relative to it: what a leftover check compares."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def commit_validated_day(storage: Storage, day: dt.date, raw_digest: str, validated_from: str) -> None:
    """A YarnIt day's validated partition (as `validate` commits it, from raw `validated_from`) and the raw
    partition now on record for it (`raw_digest`): features' input without running the contract."""
    from mlcycle.synthetic.yarnit import generate_day  # pandas: not for the light writer subprocesses

    uri = storage.partition_uri("yarnit", Dataset.VALIDATED, day)
    with storage.writer(uri, {"step": "validate", "profile": "training", "raw_digest": validated_from}) as staging:
        generate_day(day, base_rows=200).to_parquet(staging / DATA_FILE, index=False)
    with storage.writer(storage.partition_uri("yarnit", Dataset.RAW, day), {"digest": raw_digest}) as staging:
        (staging / DATA_FILE).write_bytes(b"the bytes of that delivery")
