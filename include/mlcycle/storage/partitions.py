"""Partitioned datasets under one storage root, written atomically.

Layout (names and URIs: `storage/layout.py`): `<root>/<usecase>/<dataset>/ds=<YYYY-MM-DD>/[<sub>/]<files> + _SUCCESS`.

Steps write every output into a local staging folder and `commit` it:
- local root: the staging folder is renamed into place (an atomic rename on one file system);
- S3 root: S3 has no rename, so each commit uploads its files under a prefix of its own,
  `<partition>/_v/<version>/<files>`, then replaces `_SUCCESS` (a single PUT, atomic on S3) with a manifest
  naming that prefix, then deletes the version it replaced. Until that PUT readers keep reading the old
  version whole; after it, the new one. A writer killed mid-upload leaves only an unreferenced prefix,
  removed by a later commit once it is an hour old.
A partition counts only once `_SUCCESS` exists, and `_SUCCESS` holds the manifest (files, digests, rows,
inputs), so a half-written partition is never read and re-running a step replaces it whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs

from mlcycle.storage.layout import DATA_PREFIX, SUCCESS, VERSIONS, dataset_uri, partition_of_folder, partition_uri

# S3 only: how old an unreferenced upload (left by a writer that was killed) must be before a later commit
# removes it -- old enough that no writer is still busy.
ORPHAN_SECONDS = 3600


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_partition(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"partition {value!r} is not a date in YYYY-MM-DD form") from None


@dataclass(frozen=True)
class Storage:
    """A storage root (`/local/folder` or `s3://bucket/prefix`) and the use case's datasets under it."""

    root: str

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    @property
    def _local_root(self) -> Path:
        return Path(self.root.removeprefix("file://"))

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), str(self._local_root)
        return self._s3, self.root.removeprefix("s3://").rstrip("/")

    @cached_property
    def _s3(self) -> pafs.S3FileSystem:
        """One S3 client per Storage: `_fs()` is called for every path, and each client opens its own connections."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options: dict[str, Any] = {"region": region} if region else {}
        if endpoint:
            options["endpoint_override"] = endpoint
        return pafs.S3FileSystem(**options)

    # ---- addresses ----
    def partition_uri(self, usecase: str, dataset: str, partition: dt.date, sub: str | None = None) -> str:
        return partition_uri(self.root, usecase, dataset, partition, sub)

    def _path(self, uri: str) -> str:
        """URI under this root -> path for the pyarrow file system."""
        _, base = self._fs()
        relative = uri[len(self.root.rstrip("/")) :].lstrip("/")
        if not uri.startswith(self.root.rstrip("/")):
            raise ValueError(f"{uri} is not under the storage root {self.root}")
        return f"{base}/{relative}"

    # ---- reading ----
    def manifest(self, uri: str) -> dict[str, Any] | None:
        """The committed partition's manifest, or None when the partition is absent or half-written."""
        filesystem, _ = self._fs()
        # On S3 only a missing key means "absent": an unreachable endpoint or a missing bucket must fail the
        # step (and be retried), not look like a partition that was never written.
        absent: tuple[type[Exception], ...] = (FileNotFoundError, OSError) if self.is_local else (FileNotFoundError,)
        try:
            with filesystem.open_input_stream(f"{self._path(uri)}/{SUCCESS}") as handle:
                loaded: dict[str, Any] = json.loads(handle.read().decode())
                return loaded
        except absent:
            return None

    def exists(self, uri: str) -> bool:
        return self.manifest(uri) is not None

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        """A local folder holding the committed partition's files (the folder itself when local)."""
        manifest = self.manifest(uri)
        if manifest is None:
            raise FileNotFoundError(f"no committed partition at {uri} (missing {SUCCESS})")
        if self.is_local:
            yield Path(self._path(uri))
            return
        filesystem, _ = self._fs()
        # Exactly the files of the version the manifest names: whatever another writer uploads meanwhile is
        # never mixed in (a version replaced mid-download fails the read with FileNotFoundError instead).
        source = self._data_path(uri, manifest)
        with tempfile.TemporaryDirectory(prefix="mlcycle-read-") as tmp:
            for name in manifest.get("files", {}):
                destination = Path(tmp) / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(f"{source}/{name}", str(destination), source_filesystem=filesystem)
            (Path(tmp) / SUCCESS).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            yield Path(tmp)

    def _data_path(self, uri: str, manifest: dict[str, Any]) -> str:
        """Where a committed S3 partition's files are: its version's prefix, or the partition itself (older commits)."""
        prefix = manifest.get(DATA_PREFIX)
        return f"{self._path(uri)}/{prefix}" if prefix else self._path(uri)

    def list_partitions(self, usecase: str, dataset: str) -> list[dt.date]:
        """Dates of the committed partitions of a dataset, ascending."""
        filesystem, _ = self._fs()
        selector = pafs.FileSelector(self._path(dataset_uri(self.root, usecase, dataset)), allow_not_found=True)
        dates = []
        for info in filesystem.get_file_info(selector):
            text = partition_of_folder(info.base_name)
            if info.type == pafs.FileType.Directory and text is not None:
                day = parse_partition(text)
                if self.exists(self.partition_uri(usecase, dataset, day)):
                    dates.append(day)
        return sorted(dates)

    # ---- writing ----
    @contextlib.contextmanager
    def writer(self, uri: str, manifest: dict[str, Any]) -> Iterator[Path]:
        """Stage files in a local folder; on a clean exit commit them to `uri` with their manifest."""
        staging_parent = Path(self._path(uri)).parent if self.is_local else None
        if staging_parent is not None:
            staging_parent.mkdir(parents=True, exist_ok=True)
        # Staging next to the target keeps the final rename on one file system (atomic).
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=staging_parent))
        try:
            yield staging
            files = {
                p.relative_to(staging).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                for p in sorted(staging.rglob("*"))
                if p.is_file()
            }
            full = {**manifest, "uri": uri, "files": files, "committed_at": _utcnow()}
            if self.is_local:
                (staging / SUCCESS).write_text(_dumps(full))
                self._commit(staging, uri)
            else:
                self._commit_s3(staging, uri, full)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, uri: str) -> None:
        """Local root: rename the staging folder (holding `_SUCCESS`) into place."""
        target = Path(self._path(uri))
        if target.exists():
            # Move the old version aside first: readers see either the old or the new partition.
            old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)

    def _commit_s3(self, staging: Path, uri: str, manifest: dict[str, Any]) -> None:
        """Upload under a new version prefix, switch `_SUCCESS` to it (one PUT), then drop the replaced version."""
        filesystem, _ = self._fs()
        target_path = self._path(uri)
        version = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        prefix = f"{VERSIONS}/{version}"
        for name in manifest["files"]:
            pafs.copy_files(str(staging / name), f"{target_path}/{prefix}/{name}", destination_filesystem=filesystem)
        previous = self.manifest(uri)
        with filesystem.open_output_stream(f"{target_path}/{SUCCESS}") as handle:
            handle.write(_dumps({**manifest, DATA_PREFIX: prefix}).encode())
        if previous is not None:
            self._drop_version(target_path, previous)
        self._drop_orphans(target_path, keep=prefix)

    def _drop_version(self, target_path: str, previous: dict[str, Any]) -> None:
        """Delete the files of a replaced version (readers now follow the new `_SUCCESS`)."""
        filesystem, _ = self._fs()
        old_prefix = previous.get(DATA_PREFIX)
        if old_prefix:
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_dir(f"{target_path}/{old_prefix}")
            return
        # Committed before versioned prefixes: the files sat directly in the partition.
        for name in previous.get("files", {}):
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_file(f"{target_path}/{name}")

    def _drop_orphans(self, target_path: str, keep: str) -> None:
        """Remove uploads that no manifest names (a writer killed mid-upload) once they are an hour old."""
        filesystem, _ = self._fs()
        selector = pafs.FileSelector(f"{target_path}/{VERSIONS}", allow_not_found=True, recursive=True)
        newest: dict[str, dt.datetime] = {}
        for info in filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File or info.mtime is None:
                continue
            version = info.path[len(target_path) + 1 :].split("/")[1]
            mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.UTC)
            newest[version] = max(newest.get(version, mtime), mtime)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ORPHAN_SECONDS)
        for version, mtime in newest.items():
            if f"{VERSIONS}/{version}" != keep and mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    filesystem.delete_dir(f"{target_path}/{VERSIONS}/{version}")

    def move(self, source_uri: str, target_uri: str) -> None:
        """Move a committed partition (e.g. raw -> quarantine) so that it is never visible in both places."""
        if self.is_local:
            source, target = Path(self._path(source_uri)), Path(self._path(target_uri))
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            source.rename(target)
            return
        with self.local_copy(source_uri) as folder:
            manifest = json.loads((folder / SUCCESS).read_text())
            with self.writer(target_uri, manifest) as staging:
                for path in folder.rglob("*"):
                    if path.is_file() and path.name != SUCCESS:
                        destination = staging / path.relative_to(folder)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, destination)
        filesystem, _ = self._fs()
        filesystem.delete_file(f"{self._path(source_uri)}/{SUCCESS}")
        filesystem.delete_dir(self._path(source_uri))

    def delete(self, uri: str) -> None:
        filesystem, _ = self._fs()
        path = self._path(uri)
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_file(f"{path}/{SUCCESS}")
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_dir(path)


def _dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
