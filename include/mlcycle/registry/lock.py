"""The registry lock: a lease around the champion's compare-and-set.

MLflow has no conditional alias update, so "check the champion, then move it" is two calls; two promotions
racing between them could both win. The lock makes check-and-set one critical section. It is a lease: one
object at `<root>/<usecase>/registry/champion.lock` holding its owner (id, host, pid) and lease length.

- Taking it: an atomic create-if-absent (a conditional PUT `If-None-Match: *` on S3).
- Holding it: a background thread rewrites the record every third of the lease, so a live holder is never
  taken for dead however long its critical section lasts.
- A dead holder (SIGKILL, lost node): its lease expires when its last write is older than its lease. Age is
  measured by the store's own clock (S3: the response's Date minus LastModified; locally: now minus mtime),
  so clock skew between hosts does not matter. An empty or unreadable record expires the same way, with
  the default lease. The next promotion takes the expired lease over by a conditional overwrite of exactly
  the record it judged expired (S3 `If-Match` on its ETag): of several contenders one wins.
- Releasing: a conditional delete of exactly the record this holder wrote last; if the lease was taken over
  meanwhile, the new holder's record is left alone.

Every conditional operation is atomic: on S3 by the service; on a local folder by doing read-compare-write
under an exclusive `flock` on a sidecar guard file (released by the kernel if the process dies, and held only
for the few microseconds of one operation). The local backend is for one host (the embedded default).

A stuck lock: docs/runbooks/registry-lock-stuck.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlcycle.storage.layout import champion_lock_uri
from mlcycle.storage.partitions import Storage

log = logging.getLogger(__name__)

# How long a holder's last write keeps its lease: long enough that a renewal (every third of it) always lands
# in time; short enough that a killed promote blocks the next one for well under a minute.
LEASE_SECONDS = 30.0
# A contender looks again this often while the lease is held by someone else.
POLL_SECONDS = 0.2


class LockTimeout(TimeoutError):
    """The lease stayed held by another (live) holder for longer than the caller would wait."""


class LeaseLost(RuntimeError):
    """This holder's lease was taken over (it could not renew in time): it must not act as the holder."""


@dataclass(frozen=True)
class Seen:
    """The lock object as read now: its bytes, the token a conditional write must match, and its age."""

    body: bytes
    token: str
    age_s: float


class LeaseStore(Protocol):
    """The four atomic operations a lease needs, on one object."""

    uri: str

    def create(self, body: bytes) -> str | None:
        """Write `body` only if the object does not exist; its token, or None when it exists."""

    def read(self) -> Seen | None:
        """The object now, or None when it does not exist."""

    def replace(self, token: str, body: bytes) -> str | None:
        """Overwrite only if the object is still the one `token` names; the new token, or None."""

    def delete(self, token: str) -> bool:
        """Delete only if the object is still the one `token` names; False when it is not."""


class LocalLeaseStore:
    """A lock file; every operation is read-compare-write under an exclusive flock on `<file>.guard`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = str(path)
        self._guard_path = path.with_name(path.name + ".guard")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._guard_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _current(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _write(self, body: bytes) -> str:
        # Readers never see a half-written record: write aside, then rename over (atomic on POSIX).
        staging = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        staging.write_bytes(body)
        os.replace(staging, self.path)
        return body.decode(errors="replace")

    def create(self, body: bytes) -> str | None:
        with self._guard():
            return None if self.path.exists() else self._write(body)

    def read(self) -> Seen | None:
        with self._guard():
            try:
                body, mtime = self.path.read_bytes(), self.path.stat().st_mtime
            except FileNotFoundError:
                return None
        return Seen(body, body.decode(errors="replace"), time.time() - mtime)

    def replace(self, token: str, body: bytes) -> str | None:
        with self._guard():
            current = self._current()
            if current is None or current.decode(errors="replace") != token:
                return None
            return self._write(body)

    def delete(self, token: str) -> bool:
        with self._guard():
            current = self._current()
            if current is None or current.decode(errors="replace") != token:
                return False
            self.path.unlink()
            return True


_PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
_ABSENT = ("NoSuchKey", "404")


class S3LeaseStore:
    """An S3 object; conditional PUT/DELETE (If-None-Match / If-Match on the ETag) make each operation atomic."""

    def __init__(self, uri: str) -> None:
        import boto3

        self.uri = uri
        self.bucket, _, self.key = uri.removeprefix("s3://").partition("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._client: Any = boto3.client("s3", endpoint_url=endpoint)

    @staticmethod
    def _code(exc: Exception) -> str | None:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return None if code is None else str(code)

    def create(self, body: bytes) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if self._code(exc) in _PRECONDITION_FAILED:
                return None
            raise
        return str(answer["ETag"])

    def read(self) -> Seen | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if self._code(exc) in _ABSENT:
                return None
            raise
        # Both times come from the S3 service's clock: no skew between this host and the holder's.
        served_at = email.utils.parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (served_at - answer["LastModified"]).total_seconds()
        return Seen(answer["Body"].read(), str(answer["ETag"]), age)

    def replace(self, token: str, body: bytes) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body, IfMatch=token)
        except ClientError as exc:
            if self._code(exc) in (*_PRECONDITION_FAILED, *_ABSENT):
                return None
            raise
        return str(answer["ETag"])

    def delete(self, token: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)
        except ClientError as exc:
            if self._code(exc) in (*_PRECONDITION_FAILED, *_ABSENT):
                return False
            raise
        return True


def lease_store(storage: Storage, usecase: str) -> LeaseStore:
    """Where the use case's registry lease lives, on the storage root's backend."""
    uri = champion_lock_uri(storage.root, usecase)
    if storage.is_local:
        return LocalLeaseStore(Path(uri.removeprefix("file://")))
    return S3LeaseStore(uri)


def describe(body: bytes) -> str:
    """A holder's record in words (for errors and logs), whatever state the record is in."""
    try:
        record = json.loads(body)
        return (
            f"owner {record['id']} (host {record['host']}, pid {record['pid']}, "
            f"since {record['acquired_at']}, lease {record['lease_s']} s)"
        )
    except (ValueError, KeyError, TypeError):
        return f"an unreadable record ({len(body)} bytes)"


def _lease_of(body: bytes) -> float:
    """The lease length the holder wrote; the default when the record is empty or unreadable."""
    try:
        return float(json.loads(body)["lease_s"])
    except (ValueError, KeyError, TypeError):
        return LEASE_SECONDS


class Lease:
    """This process's hold on the lock: renewed in the background, checked before acting, released once."""

    def __init__(self, store: LeaseStore, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s
        self.id = uuid.uuid4().hex
        self.acquired_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.token: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="registry-lease", daemon=True)

    def record(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        return json.dumps(
            {
                "id": self.id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "acquired_at": self.acquired_at,
                "renewed_at": now.isoformat(timespec="seconds"),
                "lease_s": self.lease_s,
                "expires_at": (now + dt.timedelta(seconds=self.lease_s)).isoformat(timespec="seconds"),
            }
        ).encode()

    def try_take(self) -> bool:
        """One attempt: create the lock, or take over a lease that has expired. True when held."""
        self.token = self.store.create(self.record())
        if self.token is not None:
            return True
        seen = self.store.read()
        if seen is None or seen.age_s <= _lease_of(seen.body):
            return False  # released a moment ago (the next attempt creates it), or held by a live holder
        self.token = self.store.replace(seen.token, self.record())
        if self.token is not None:
            log.warning("took over the expired registry lease at %s from %s", self.store.uri, describe(seen.body))
        return self.token is not None

    def start_renewing(self) -> None:
        self._renewer.start()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            assert self.token is not None
            try:
                renewed = self.store.replace(self.token, self.record())
            except Exception:  # a failed renewal is retried at the next tick; the lease has time left
                log.exception("renewing the registry lease at %s failed; retrying", self.store.uri)
                continue
            if renewed is None:
                log.error("the registry lease at %s was taken over: this holder stops acting", self.store.uri)
                self._lost.set()
                return
            self.token = renewed

    def ensure_held(self) -> None:
        """Raise LeaseLost if the lease was taken over: call it right before the write the lock protects."""
        if self._lost.is_set():
            raise LeaseLost(f"the registry lease at {self.store.uri} was taken over; not moving @champion")

    def release(self) -> None:
        self._stop.set()
        if self._renewer.is_alive():
            self._renewer.join()
        if self.token is None or self._lost.is_set():
            return
        if not self.store.delete(self.token):
            log.warning("the registry lease at %s is no longer ours: left the new holder's lock", self.store.uri)


@contextlib.contextmanager
def registry_lock(
    storage: Storage, usecase: str, timeout: float = 60.0, lease_s: float | None = None
) -> Iterator[Lease]:
    """Hold the use case's registry lease for the body; raise LockTimeout after `timeout` seconds of waiting."""
    store = lease_store(storage, usecase)
    lease = Lease(store, LEASE_SECONDS if lease_s is None else lease_s)
    deadline = time.monotonic() + timeout
    while not lease.try_take():
        if time.monotonic() > deadline:
            seen = store.read()
            holder = describe(seen.body) if seen else "nobody (released just now)"
            raise LockTimeout(
                f"could not take {store.uri} within {timeout:.0f} s: held by {holder}; "
                "see docs/runbooks/registry-lock-stuck.md"
            )
        time.sleep(POLL_SECONDS)
    try:
        lease.start_renewing()
        yield lease
    finally:
        lease.release()
