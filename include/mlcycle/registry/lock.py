"""A lock around the champion's compare-and-set.

MLflow has no conditional alias update, so "check the champion, then move it" is two calls. Two
promotions racing between them could both win. The lock makes check-and-set one critical section,
using an atomic create on the storage root: O_EXCL on a local file system, a conditional PUT
(`If-None-Match: *`) on S3.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlcycle.storage.layout import champion_lock_uri
from mlcycle.storage.partitions import Storage

# A holder that died without releasing leaves a stale lock; after this long it is broken.
STALE_SECONDS = 300


class LockTimeout(TimeoutError):
    pass


def _owner() -> str:
    return json.dumps({"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time()})


def _try_local(path: Path, owner: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError, ValueError):
            if time.time() - json.loads(path.read_text())["at"] > STALE_SECONDS:
                path.unlink()
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(owner)
    return True


def _s3(uri: str) -> tuple[object, str, str]:
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint), bucket, key


def _try_s3(uri: str, owner: str) -> bool:
    from botocore.exceptions import ClientError

    client, bucket, key = _s3(uri)
    try:
        client.put_object(Bucket=bucket, Key=key, Body=owner.encode(), IfNoneMatch="*")  # type: ignore[attr-defined]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise
    return True


@contextlib.contextmanager
def registry_lock(storage: Storage, usecase: str, timeout: float = 60.0) -> Iterator[None]:
    """Hold the use case's registry lock for the body; raise LockTimeout after `timeout` seconds."""
    uri = champion_lock_uri(storage.root, usecase)
    owner = _owner()
    deadline = time.monotonic() + timeout
    local = Path(uri.removeprefix("file://")) if storage.is_local else None
    while not (_try_local(local, owner) if local else _try_s3(uri, owner)):
        if time.monotonic() > deadline:
            raise LockTimeout(f"could not take {uri} within {timeout:.0f} s (held by another promotion?)")
        time.sleep(0.2)
    try:
        yield
    finally:
        if local is not None:
            local.unlink(missing_ok=True)
        else:
            client, bucket, key = _s3(uri)
            client.delete_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
