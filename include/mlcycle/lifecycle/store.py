"""Read the small JSON files the steps commit (manifests, reasons, summaries), without pyarrow.

`mlcycle.storage.partitions.Storage` is the steps' reader, built on pyarrow's file systems: too heavy for the
api-server. This reader follows the same layout (`mlcycle.storage.layout`) and the same commit rule (a
partition counts only once its `_SUCCESS` manifest exists): on a local root through the partition's link to its
live version, on an S3 root through the manifest's version prefix, with boto3 imported only then.
A missing committed partition or file is absence (None); any other failure (permissions, an unreachable
endpoint, a file that is not JSON) raises `StoreError` naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.storage.layout import DATA_PREFIX, SUCCESS, dataset_uri, partition_of_folder, partition_uri


class StoreError(RuntimeError):
    """A committed file could not be read (not: the file does not exist)."""


@dataclass(frozen=True)
class JsonStore:
    """The JSON files under one storage root (`/local/folder` or `s3://bucket/prefix`)."""

    root: str
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def partitions(self, usecase: str, dataset: str) -> list[dt.date]:
        """The days of a dataset's committed partitions, ascending."""
        days = []
        for name in self._folders(dataset_uri(self.root, usecase, dataset)):
            text = partition_of_folder(name)
            if text is None:
                continue
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                continue  # not a partition of ours (a stray folder): steps never write one
            if self.manifest(partition_uri(self.root, usecase, dataset, day)) is not None:
                days.append(day)
        return sorted(days)

    def manifest(self, uri: str) -> dict[str, Any] | None:
        """The partition's `_SUCCESS` manifest; None when it is not committed."""
        return self._json(f"{uri}/{SUCCESS}", self._read(f"{uri}/{SUCCESS}"))

    def json_file(self, uri: str, name: str) -> dict[str, Any] | None:
        """A JSON file of a committed partition; None when the partition or the file is absent."""
        if not self.is_s3:
            if not os.path.exists(self._local(f"{uri}/{SUCCESS}")):
                return None
            return self._json(f"{uri}/{name}", self._read(f"{uri}/{name}"))
        manifest = self.manifest(uri)
        if manifest is None:
            return None
        prefix = manifest.get(DATA_PREFIX)
        where = f"{uri}/{prefix}/{name}" if prefix else f"{uri}/{name}"
        return self._json(where, self._read(where))

    # ---- local and S3 access ----

    def _local(self, uri: str) -> Path:
        return Path(uri.removeprefix("file://"))

    def _read(self, uri: str) -> bytes | None:
        if not self.is_s3:
            try:
                return self._local(uri).read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StoreError(f"cannot read {uri}: {exc}") from None
        bucket, key = _split(uri)
        client = self._s3()
        try:
            return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # botocore's errors (auth, endpoint, bucket): an error shown, never absence
            raise StoreError(f"cannot read {uri}: {exc}") from None

    def _folders(self, uri: str) -> list[str]:
        if not self.is_s3:
            try:
                return sorted(entry.name for entry in os.scandir(self._local(uri)) if entry.is_dir())
            except FileNotFoundError:
                return []
            except OSError as exc:
                raise StoreError(f"cannot list {uri}: {exc}") from None
        bucket, key = _split(uri)
        names: list[str] = []
        try:
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/", Delimiter="/")
            for page in pages:
                names += [p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in page.get("CommonPrefixes", [])]
        except Exception as exc:  # botocore's errors: an error shown, never "no partitions"
            raise StoreError(f"cannot list {uri}: {exc}") from None
        return sorted(names)

    def _s3(self) -> Any:
        if "s3" not in self._clients:
            import boto3  # only for an S3 root: the api-server of a local setup never loads it

            # The same endpoint settings the steps' pyarrow S3 file system reads (storage/partitions.py).
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            self._clients["s3"] = boto3.client("s3", endpoint_url=endpoint or None)
        return self._clients["s3"]

    @staticmethod
    def _json(where: str, payload: bytes | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        try:
            loaded = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{where} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise StoreError(f"{where} holds a {type(loaded).__name__}, not a JSON object")
        return loaded


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
