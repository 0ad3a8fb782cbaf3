"""A partition's completion marker (`_SUCCESS`, holding its manifest): decoding and the local read.

Standard library only, unlike `storage/partitions.py` (pyarrow): the landing wait of the DAGs
(`mlcycle.orchestration.waiting`) reads markers in Airflow's worker and triggerer, where no heavy library is
imported, with the same rules the ingest step applies (`Storage.manifest`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlcycle.storage.layout import SUCCESS


class ManifestError(ValueError):
    """A `_SUCCESS` that cannot be the manifest of a partition (not a JSON object, or its version is gone)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


def decode_manifest(payload: bytes, where: str) -> dict[str, Any]:
    """The manifest in a `_SUCCESS` file's bytes; ManifestError naming `where` if they are not a JSON object."""
    try:
        loaded = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(where, f"the completion marker must hold a JSON object, e.g. {{}} ({exc})") from None
    if not isinstance(loaded, dict):
        kind = type(loaded).__name__
        raise ManifestError(where, f"the completion marker must hold a JSON object, e.g. {{}}, not a {kind}")
    return loaded


def read_local_manifest(path: str, where: str) -> dict[str, Any] | None:
    """The manifest of the local partition folder `path`, or None when it has no `_SUCCESS` (not committed yet).

    Only a missing file means "absent": a folder that cannot be read raises its OSError (PermissionError, ...),
    and a partition link whose version is gone is a ManifestError naming `where`.
    """
    try:
        # One open through the link: the manifest of whichever version is live at that instant.
        with (Path(path) / SUCCESS).open("rb") as handle:
            payload = handle.read()
    except FileNotFoundError:
        if os.path.islink(path):
            raise ManifestError(where, f"the partition links to {os.readlink(path)}, which is gone") from None
        return None
    return decode_manifest(payload, where)
