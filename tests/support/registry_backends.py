"""The two backends of the registry lease for tests: a local folder and an S3 API (moto's server, in a thread).

`lease_backend(kind, ...)` yields a Storage whose champion lock lives on that backend, plus a `LockObject` to
read and write the lock's object directly (as a dead holder, an operator or another host would).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlcycle.storage.layout import champion_lock_uri
from mlcycle.storage.partitions import Storage
from support.s3 import use_s3_endpoint

BACKENDS = ("local", "s3")
USECASE = "yarnit"


@contextlib.contextmanager
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 API on a free loopback port for the block; the environment points boto3 (and Storage) at it."""
    from moto.server import ThreadedMotoServer

    from mlcycle_dev.stack.process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    use_s3_endpoint(monkeypatch, endpoint)
    try:
        yield endpoint
    finally:
        server.stop()


@dataclass
class LockObject:
    """The champion lock's object, read and written around the code under test."""

    uri: str
    client: Any = None  # boto3 client on S3, None locally

    @property
    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        return bucket, key

    def write(self, body: bytes) -> None:
        if self.client is None:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            Path(self.uri).write_bytes(body)
        else:
            bucket, key = self._bucket_key
            self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def read(self) -> bytes | None:
        if self.client is None:
            return Path(self.uri).read_bytes() if Path(self.uri).exists() else None
        bucket, key = self._bucket_key
        try:
            return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def age_back(self, seconds: float) -> None:
        """Make the local file look last written `seconds` ago (S3 objects cannot be back-dated)."""
        assert self.client is None
        then = time.time() - seconds
        os.utime(self.uri, (then, then))


def holder_record(owner: str, lease_s: float) -> bytes:
    """A lock record as a holder writes it (fields of both the old and the lease format)."""
    now = time.time()
    return json.dumps(
        {
            "id": owner,
            "host": "elsewhere",
            "pid": 1,
            "at": now,
            "acquired_at": "2026-01-01T00:00:00+00:00",
            "lease_s": lease_s,
        }
    ).encode()


@contextlib.contextmanager
def lease_backend(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Storage, LockObject]]:
    """A Storage on `kind` ("local" or "s3") and its champion lock's object."""
    if kind == "local":
        storage = Storage(str(tmp_path / "data"))
        yield storage, LockObject(champion_lock_uri(storage.root, USECASE))
        return
    import boto3

    with moto_s3(monkeypatch) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        # moto keeps its state per process, across servers: a bucket of its own keeps each test's lock apart.
        bucket = f"mlcycle-lease-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        storage = Storage(f"s3://{bucket}/root")
        yield storage, LockObject(champion_lock_uri(storage.root, USECASE), client)
