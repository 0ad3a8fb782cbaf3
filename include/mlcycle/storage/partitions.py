"""Partitioned datasets under one storage root, written atomically.

Layout: `<root>/<usecase>/<dataset>/ds=<YYYY-MM-DD>/[<sub>/]<files> + _SUCCESS`.

Steps write every output into a local staging folder and `commit` it:
- local root: the staging folder is renamed into place (an atomic rename on one file system);
- S3 root: the files are uploaded, then `_SUCCESS` last.
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
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs

SUCCESS = "_SUCCESS"


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
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        filesystem = pafs.S3FileSystem(endpoint_override=endpoint) if endpoint else pafs.S3FileSystem()
        return filesystem, self.root.removeprefix("s3://").rstrip("/")

    # ---- addresses ----
    def partition_uri(self, usecase: str, dataset: str, partition: dt.date, sub: str | None = None) -> str:
        tail = f"{usecase}/{dataset}/ds={partition.isoformat()}" + (f"/{sub}" if sub else "")
        return f"{self.root.rstrip('/')}/{tail}"

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
        try:
            with filesystem.open_input_stream(f"{self._path(uri)}/{SUCCESS}") as handle:
                loaded: dict[str, Any] = json.loads(handle.read().decode())
                return loaded
        except (FileNotFoundError, OSError):
            return None

    def exists(self, uri: str) -> bool:
        return self.manifest(uri) is not None

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        """A local folder holding the committed partition's files (the folder itself when local)."""
        if self.manifest(uri) is None:
            raise FileNotFoundError(f"no committed partition at {uri} (missing {SUCCESS})")
        if self.is_local:
            yield Path(self._path(uri))
            return
        filesystem, _ = self._fs()
        with tempfile.TemporaryDirectory(prefix="mlcycle-read-") as tmp:
            pafs.copy_files(self._path(uri), tmp, source_filesystem=filesystem)
            yield Path(tmp)

    def list_partitions(self, usecase: str, dataset: str) -> list[dt.date]:
        """Dates of the committed partitions of a dataset, ascending."""
        filesystem, base = self._fs()
        selector = pafs.FileSelector(f"{base}/{usecase}/{dataset}", allow_not_found=True)
        dates = []
        for info in filesystem.get_file_info(selector):
            name = info.base_name
            if info.type == pafs.FileType.Directory and name.startswith("ds="):
                day = parse_partition(name[3:])
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
            (staging / SUCCESS).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
            self._commit(staging, uri)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, uri: str) -> None:
        if self.is_local:
            target = Path(self._path(uri))
            if target.exists():
                # Move the old version aside first: readers see either the old or the new partition.
                old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
                target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
            return
        filesystem, _ = self._fs()
        target_path = self._path(uri)
        # Un-commit first, so nobody reads a mix of old and new files during the upload.
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_file(f"{target_path}/{SUCCESS}")
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_dir_contents(target_path, missing_dir_ok=True)
        for path in sorted(staging.rglob("*")):
            if path.is_file() and path.name != SUCCESS:
                pafs.copy_files(
                    str(path),
                    f"{target_path}/{path.relative_to(staging).as_posix()}",
                    destination_filesystem=filesystem,
                )
        pafs.copy_files(str(staging / SUCCESS), f"{target_path}/{SUCCESS}", destination_filesystem=filesystem)

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


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
