"""Partitions whose files must agree: what the storage tests and drills commit, read and check for tears."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlcycle.storage.layout import SUCCESS
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
