"""Partitioned datasets under one storage root, committed with one atomic switch.

Layout (names and URIs: `storage/layout.py`): `<root>/<usecase>/<dataset>/ds=<YYYY-MM-DD>/[<sub>/]<files> + _SUCCESS`.

Steps write every output into a staging folder and `commit` it. Every commit writes a new, never-changed
version of the partition and then switches the partition to it with ONE atomic operation:
- local root: the version is the folder `<parent>/.versions/<name>/<version>/` (files + `_SUCCESS`), and the
  partition path `<parent>/<name>` is a relative symlink to it, replaced with `os.replace` (a rename: atomic
  on one file system). A reader resolves the link once (`local_copy` hands out the version folder itself), so
  a later commit never changes what it reads;
- S3 root: S3 has no rename, so each commit uploads its files under a prefix of its own,
  `<partition>/_v/<version>/<files>`, then replaces `_SUCCESS` (a single PUT, atomic on S3) with a manifest
  naming that prefix, then deletes the version it replaced (a reader still downloading it fails with
  FileNotFoundError: an error, never a mix).
Until the switch readers keep reading the old version whole; after it, the new one. What a killed or racing
writer leaves (an unreferenced version, a temporary link) and a replaced local version are removed by the
sweeper (`Storage.sweep`, run after every commit; locally over every partition of the same folder) once they
are `ORPHAN_SECONDS` old: never the live version, never one a reader may still hold within that grace.
A partition counts only once `_SUCCESS` exists, and `_SUCCESS` holds the manifest (files, digests, rows,
inputs), so a half-written partition is never read and re-running a step replaces it whole. Partitions of the
earlier local layout (files directly in `ds=D/`, e.g. a landing folder a data source writes) are still read:
as a snapshot copy, since nothing makes such a folder immutable, and a commit replaces them atomically too.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import hashlib
import json
import math
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from pyarrow import fs as pafs

from mlcycle.storage.layout import (
    DATA_PREFIX,
    SUCCESS,
    VERSIONS,
    VERSIONS_FOLDER,
    dataset_uri,
    partition_of_folder,
    partition_uri,
)
from mlcycle.storage.manifest import ManifestError, decode_manifest, read_local_manifest

# How old a leftover (an unreferenced upload or version left by a killed or racing writer, a replaced local
# version) must be before the sweeper removes it: old enough that no writer is still busy with it and no
# reader still holds it.
ORPHAN_SECONDS = 3600
# The folder under a local root that holds steps' scratch folders, and how old a left-over one (its step killed)
# must be before another step removes it: a day, longer than any step may run.
SCRATCH = ".scratch"
SCRATCH_GRACE_SECONDS = 86_400
# Leftovers of the earlier local commit (two renames), swept like the others.
_EARLIER_LEFTOVERS = (".old-", ".staging-")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: list[Path]) -> str:
    """The digest of a partition's data: its file's sha256, or for several part files the sha256 of their
    names and digests (so a renamed, added or removed part changes it too)."""
    if len(paths) == 1:
        return sha256_file(paths[0])
    listing = "".join(f"{p.name}\0{sha256_file(p)}\n" for p in paths)
    return hashlib.sha256(listing.encode()).hexdigest()


def merge_parquet(parts: list[Path], target: Path) -> None:
    """One Parquet file at ``target`` holding ``parts`` in order: the file copied as it is when there is one,
    else their row groups written one after the other (memory: one row group, whatever the partition's size)."""
    import pyarrow.parquet as pq

    if len(parts) == 1:
        shutil.copy2(parts[0], target)
        return
    schema = pq.read_schema(parts[0])
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))


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
        """URI under this root -> path for the file system; ValueError naming the URI if it leads outside the root.

        The part below the root is normalised first: `root/uc/../../x` and `root-sibling/x` start with the
        root's text but are not under it.
        """
        root = self.root.rstrip("/")
        outside = ValueError(f"{uri} is outside the storage root {self.root}")
        if uri != root and not uri.startswith(f"{root}/"):
            raise outside
        relative = posixpath.normpath(uri[len(root) :].lstrip("/") or ".")
        if relative == ".." or relative.startswith("../"):
            raise outside
        base = str(self._local_root) if self.is_local else root.removeprefix("s3://")
        return base if relative == "." else f"{base}/{relative}"

    # ---- reading ----
    def manifest(self, uri: str) -> dict[str, Any] | None:
        """The committed partition's manifest, or None when the partition is absent or half-written.

        Only a missing file means "absent": an unreadable folder, an unreachable endpoint or a missing bucket
        fails the step (and is retried), and a `_SUCCESS` that is not a JSON object is a ManifestError naming it.
        """
        path = self._path(uri)
        where = f"{uri}/{SUCCESS}"
        if self.is_local:
            return read_local_manifest(path, where)
        filesystem, _ = self._fs()
        try:
            with filesystem.open_input_stream(f"{path}/{SUCCESS}") as handle:
                return decode_manifest(handle.read(), where)
        except FileNotFoundError:
            return None

    def exists(self, uri: str) -> bool:
        return self.manifest(uri) is not None

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        """A local folder holding the committed partition's files, which no later commit changes.

        Local root: the live version's own folder (immutable; the sweeper leaves it alone for ORPHAN_SECONDS
        after it is replaced). Earlier local layout and S3: a temporary copy.
        """
        if self.is_local:
            with self._local_version(uri) as folder:
                yield folder
            return
        manifest = self.manifest(uri)
        if manifest is None:
            raise FileNotFoundError(f"no committed partition at {uri} (missing {SUCCESS})")
        filesystem, _ = self._fs()
        # Exactly the files of the version the manifest names: whatever another writer uploads meanwhile is
        # never mixed in (a version replaced mid-download fails the read with FileNotFoundError instead).
        source = self._data_path(uri, manifest)
        with tempfile.TemporaryDirectory(prefix="mlcycle-read-") as tmp:
            for name in manifest.get("files", {}):
                destination = Path(tmp) / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(f"{source}/{name}", str(destination), source_filesystem=filesystem)
            (Path(tmp) / SUCCESS).write_text(_dumps(manifest))
            yield Path(tmp)

    @contextlib.contextmanager
    def _local_version(self, uri: str) -> Iterator[Path]:
        path = Path(self._path(uri))
        missing = FileNotFoundError(f"no committed partition at {uri} (missing {SUCCESS})")
        try:
            version = path.parent / os.readlink(path)
        except FileNotFoundError:
            raise missing from None
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # Not a link: a folder of the earlier layout (or one a data source wrote).
            with _snapshot(path, missing) as folder:
                yield folder
            return
        if not (version / SUCCESS).is_file():
            raise ManifestError(f"{uri}/{SUCCESS}", f"the partition links to {version}, which is gone")
        yield version

    def _data_path(self, uri: str, manifest: dict[str, Any]) -> str:
        """Where a committed S3 partition's files are: its version's prefix, or the partition itself (older commits)."""
        prefix = manifest.get(DATA_PREFIX)
        return f"{self._path(uri)}/{prefix}" if prefix else self._path(uri)

    def file_uri(self, uri: str, name: str) -> str:
        """The s3:// URI of the file ``name`` of the committed S3 partition at ``uri`` (its version's object), for a
        reader that fetches it itself (Spark's executors); local roots hand out folders (`local_copy`)."""
        if self.is_local:
            raise ValueError(f"{uri}: file_uri is for S3 storage roots; read a local partition with local_copy")
        manifest = self.manifest(uri)
        if manifest is None:
            raise FileNotFoundError(f"no committed partition at {uri} (missing {SUCCESS})")
        if name not in manifest.get("files", {}):
            raise FileNotFoundError(f"the committed partition at {uri} has no file {name}")
        return f"s3://{self._data_path(uri, manifest)}/{name}"

    def list_partitions(self, usecase: str, dataset: str, sub: str | None = None) -> list[dt.date]:
        """Dates of the committed partitions of a dataset (with `sub`: of that sub-partition of each), ascending."""
        filesystem, _ = self._fs()
        selector = pafs.FileSelector(self._path(dataset_uri(self.root, usecase, dataset)), allow_not_found=True)
        dates = []
        for info in filesystem.get_file_info(selector):
            text = partition_of_folder(info.base_name)
            if info.type == pafs.FileType.Directory and text is not None:
                day = parse_partition(text)
                if self.exists(self.partition_uri(usecase, dataset, day, sub)):
                    dates.append(day)
        return sorted(dates)

    # ---- writing ----
    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A temporary folder, removed on exit. Under a local root it is on the root's own file system
        (`<root>/.scratch/`): moving its files into a writer's staging is a rename, and whatever mounts the root's
        volume at the same path (Spark executors on other nodes) can write there. Under S3, the machine's
        temporary folder. Left-overs of killed steps are removed once `SCRATCH_GRACE_SECONDS` old."""
        if not self.is_local:
            with tempfile.TemporaryDirectory(prefix=f"mlcycle-{prefix}") as temporary:
                yield Path(temporary)
            return
        parent = self._local_root / SCRATCH
        parent.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - SCRATCH_GRACE_SECONDS
        for old in parent.iterdir():
            # FileNotFoundError only: another step may be removing the same left-over.
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old)
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def writer(self, uri: str, manifest: dict[str, Any]) -> Iterator[Path]:
        """Stage files in a local folder; on a clean exit commit them to `uri` with their manifest."""
        target = self._path(uri)
        # Local: stage straight into the new version's folder (same file system as the link: the switch is a
        # rename). Until the switch nothing refers to it; if this writer dies, the sweeper removes it.
        staging = _new_version(Path(target)) if self.is_local else Path(tempfile.mkdtemp(prefix="mlcycle-staging-"))
        committed = False
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
                _switch(Path(target), staging)
                committed = True
                self.sweep(uri)
            else:
                self._commit_s3(staging, uri, full)
        finally:
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)

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
        self._drop_orphans(target_path, keep=prefix, grace_seconds=ORPHAN_SECONDS)

    def _drop_version(self, target_path: str, previous: dict[str, Any]) -> None:
        """Delete the files of a replaced version (readers now follow the new `_SUCCESS`)."""
        filesystem, _ = self._fs()
        old_prefix = previous.get(DATA_PREFIX)
        # FileNotFoundError only: another writer may have dropped the same version already.
        if old_prefix:
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_dir(f"{target_path}/{old_prefix}")
            return
        # Committed before versioned prefixes: the files sat directly in the partition.
        for name in previous.get("files", {}):
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_file(f"{target_path}/{name}")

    def _drop_orphans(self, target_path: str, keep: str | None, grace_seconds: float) -> None:
        """Remove uploads that no manifest names (a writer killed mid-upload) once they are `grace_seconds` old."""
        filesystem, _ = self._fs()
        selector = pafs.FileSelector(f"{target_path}/{VERSIONS}", allow_not_found=True, recursive=True)
        newest: dict[str, dt.datetime] = {}
        for info in filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File or info.mtime is None:
                continue
            version = info.path[len(target_path) + 1 :].split("/")[1]
            mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.UTC)
            newest[version] = max(newest.get(version, mtime), mtime)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace_seconds)
        for version, mtime in newest.items():
            if f"{VERSIONS}/{version}" != keep and mtime <= cutoff:
                with contextlib.suppress(FileNotFoundError):  # another sweeper got there first
                    filesystem.delete_dir(f"{target_path}/{VERSIONS}/{version}")

    def sweep(self, uri: str, grace_seconds: float = ORPHAN_SECONDS) -> None:
        """Remove leftovers that are `grace_seconds` old: unreferenced or replaced versions, temporary links and
        the leftovers of the earlier local commit. Never a live version.

        Local: those of every partition in the same folder as `uri` (its dataset, for a day), so what a killed
        writer left is removed by the next commit of any day. S3: those of the partition at `uri`.
        """
        if not self.is_local:
            manifest = self.manifest(uri)
            self._drop_orphans(self._path(uri), (manifest or {}).get(DATA_PREFIX), grace_seconds)
            return
        parent = Path(self._path(uri)).parent
        cutoff = time.time() - grace_seconds
        for versions in _entries(parent / VERSIONS_FOLDER):
            _sweep_versions(parent / versions.name, Path(versions.path), cutoff)
        for entry in _entries(parent):
            if entry.name.startswith(_EARLIER_LEFTOVERS) and _newest_mtime(entry) <= cutoff:
                _remove(entry)

    def move(self, source_uri: str, target_uri: str) -> None:
        """Move a committed partition (e.g. raw -> quarantine): the target is committed before the source goes."""
        with self.local_copy(source_uri) as folder:
            manifest = json.loads((folder / SUCCESS).read_text())
            with self.writer(target_uri, manifest) as staging:
                for path in folder.rglob("*"):
                    if path.is_file() and path.name != SUCCESS:
                        destination = staging / path.relative_to(folder)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, destination)
        self.delete(source_uri)

    def delete(self, uri: str) -> None:
        """Withdraw a partition at once (readers see it absent); its files go with the sweeper. Absent: no-op."""
        path = self._path(uri)
        if self.is_local:
            target = Path(path)
            if target.is_symlink():
                target.unlink()
                # The version it named is replaced as of now: the sweeper's bound (see _sweep_versions).
                with contextlib.suppress(FileNotFoundError):  # removed by a sweeper meanwhile: nothing to bound
                    os.utime(target.parent / VERSIONS_FOLDER / target.name)
            elif target.is_dir():  # the earlier layout: retire the folder whole, as one rename
                retired = _new_version(target, prefix="earlier-")
                retired.rmdir()
                target.rename(retired)
            self.sweep(uri)
            return
        filesystem, _ = self._fs()
        # FileNotFoundError only (absent already); any other error must fail the caller.
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_file(f"{path}/{SUCCESS}")
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_dir(path)


# ---- local versions: immutable folders behind one symlink ----


def _sweep_versions(target: Path, versions: Path, cutoff: float) -> None:
    """Remove the versions (and temporary links) of the partition at `target` that are neither live nor newer
    than `cutoff`: neither written nor replaced since."""
    try:
        live: str | None = Path(os.readlink(target)).name
        # Every version that is not live was replaced at the latest when the link was (re)written.
        replaced_by = target.lstat().st_mtime
    except FileNotFoundError:
        live, replaced_by = None, 0.0
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        live, replaced_by = None, 0.0  # a folder of the earlier layout: no version of ours is live
    with contextlib.suppress(FileNotFoundError):  # swept away meanwhile: nothing left to bound
        # A switch moves a link out of this folder, and delete touches it: a later bound on replacements.
        replaced_by = max(replaced_by, versions.stat().st_mtime)
    for entry in _entries(versions):
        if entry.name != live and max(replaced_by, _newest_mtime(entry)) <= cutoff:
            _remove(entry)


def _new_version(target: Path, prefix: str = "") -> Path:
    """A new, empty version folder of the partition at `target`."""
    versions = target.parent / VERSIONS_FOLDER / target.name
    versions.mkdir(parents=True, exist_ok=True)
    folder = versions / f"{prefix}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    return folder


def _switch(target: Path, version: Path) -> None:
    """Make `target` a link to `version` in one atomic step (readers see the old version or the new one)."""
    link = version.parent / f".link-{version.name}"
    link.symlink_to(os.path.relpath(version, target.parent))
    try:
        os.replace(link, target)
    except IsADirectoryError:
        # A folder of the earlier layout is there: a link cannot be renamed over a folder, so swap the two.
        # The replaced folder is left under the link's name, a leftover like any other for the sweeper.
        _exchange(link, target)


_RENAME_EXCHANGE = 2  # renameat2(2): swap two paths atomically
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> None:
    """Swap two paths atomically (Linux renameat2); two renames where the kernel or file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        if done == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, f"cannot switch {second} to its new version: {os.strerror(code)}", str(second))
    # Without an exchange the partition is absent between the renames: once per partition of the earlier layout.
    aside = first.with_name(f"{first.name}.aside")
    second.rename(aside)
    os.replace(first, second)
    aside.rename(first)


@contextlib.contextmanager
def _snapshot(folder: Path, missing: FileNotFoundError) -> Iterator[Path]:
    """A copy of a partition folder of the earlier layout, read through one open directory handle.

    The handle keeps pointing at the same folder even if a commit swaps it out meanwhile, so the copy is one
    version, never a mix. A manifest that lists its files limits the copy to them (the earlier commits').
    """
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise missing from None
    try:
        try:
            with _open_at(handle, SUCCESS) as marker:
                payload = marker.read()
        except FileNotFoundError:
            raise missing from None
        manifest = decode_manifest(payload, f"{folder}/{SUCCESS}")
        names = list(manifest.get("files") or _walk_at(handle))
        with tempfile.TemporaryDirectory(prefix="mlcycle-read-") as tmp:
            for name in names:
                destination = Path(tmp) / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                with _open_at(handle, name) as source, destination.open("wb") as copy:
                    shutil.copyfileobj(source, copy)
            (Path(tmp) / SUCCESS).write_bytes(payload)
            yield Path(tmp)
    finally:
        os.close(handle)


def _open_at(directory: int, name: str) -> BinaryIO:
    """A file below an open folder, for reading."""
    return os.fdopen(os.open(name, os.O_RDONLY, dir_fd=directory), "rb")


def _walk_at(directory: int) -> Iterator[str]:
    """Every file below an open folder (relative names), but `_SUCCESS` and version folders."""
    for parent, folders, files, _ in os.fwalk(".", dir_fd=directory):
        folders[:] = [f for f in folders if f != VERSIONS_FOLDER]
        for name in files:
            relative = posixpath.normpath(f"{parent}/{name}")
            if relative != SUCCESS:
                yield relative


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as listing:
            return list(listing)
    except FileNotFoundError:
        return []


def _newest_mtime(entry: os.DirEntry[str]) -> float:
    """When a leftover was last written: its own time or that of anything in it."""
    try:
        newest = entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return math.inf  # gone since listed (a writer switched its link, another sweeper): nothing to remove
    if entry.is_dir(follow_symlinks=False):
        for parent, _, files in os.walk(entry.path):
            for name in [".", *files]:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing newer there
                    newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
    return newest


def _remove(entry: os.DirEntry[str]) -> None:
    # FileNotFoundError only: another sweeper removed it first.
    with contextlib.suppress(FileNotFoundError):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
