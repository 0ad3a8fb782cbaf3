"""Tampering with a registered model version's artifacts, as someone with write access to the artifact store could.

The tests of H4 (a tampered model artifact must never execute code on load) use these to swap files in the
store behind a registered version, and to forge its digest record as someone who can also write MLflow tags.
The digests here are computed independently of `mlcycle.registry.integrity` (an oracle, not the code under test).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

# The version tag holding {relative path: sha256} of a version's artifacts (written by the train step).
DIGESTS_TAG = "mlcycle.artifact_sha256"
# Written by MLflow into every download of a registered model; never part of what was logged.
DOWNLOAD_METADATA = "registered_model_meta"


class WritesMarker:
    """A pickle payload: unpickling it runs `touch <marker>` through os.system (what the review reproduced)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class WritesMarkerOnLoad:
    """A do-nothing transformer whose loading (skops calls __setstate__) touches a marker file."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, X: Any, y: Any = None) -> WritesMarkerOnLoad:
        return self

    def transform(self, X: Any) -> Any:
        return X

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps(WritesMarker(marker))


def artifact_dir(model_name: str, version: str) -> Path:
    """Where the registered version's files lie in the (local) artifact store."""
    from mlflow.tracking import MlflowClient

    uri = MlflowClient().get_model_version_download_uri(model_name, version)
    parsed = urlparse(uri)
    assert parsed.scheme in ("", "file"), f"expected a local artifact store, got {uri}"
    return Path(unquote(parsed.path))


def read_mlmodel(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((folder / "MLmodel").read_text())
    return document


def write_mlmodel(folder: Path, document: dict[str, Any]) -> None:
    (folder / "MLmodel").write_text(yaml.safe_dump(document, sort_keys=False))


def swap_in_pickle(folder: Path, marker: Path) -> None:
    """Replace the sklearn model file by a malicious pickle and point the MLmodel file at it (format: pickle)."""
    (folder / "model.skops").unlink()
    (folder / "model.pkl").write_bytes(malicious_pickle(marker))
    document = read_mlmodel(folder)
    document["flavors"]["sklearn"].update(serialization_format="pickle", pickled_model="model.pkl")
    document["flavors"]["python_function"]["model_path"] = "model.pkl"
    write_mlmodel(folder, document)


def set_serialization_format(folder: Path, value: str) -> None:
    """Only edit the MLmodel's declared sklearn serialization format (the model file stays as it was)."""
    document = read_mlmodel(folder)
    document["flavors"]["sklearn"]["serialization_format"] = value
    write_mlmodel(folder, document)


def sha256_of_files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != DOWNLOAD_METADATA
    }


def forge_digest_record(model_name: str, version: str, folder: Path) -> None:
    """Re-record the version's digests over the tampered files: an attacker who can also write MLflow tags."""
    from mlflow.tracking import MlflowClient

    MlflowClient().set_model_version_tag(model_name, version, DIGESTS_TAG, json.dumps(sha256_of_files(folder)))


def alias(model_name: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(model_name, name).version)


@contextmanager
def restored_afterwards(model_name: str, version: str) -> Iterator[Path]:
    """Yield the version's artifact folder; put its files and tags back as they were when the block ends."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    folder = artifact_dir(model_name, version)
    backup = folder.with_name(folder.name + ".pristine")
    shutil.copytree(folder, backup)
    tags = dict(client.get_model_version(model_name, version).tags)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)
        backup.rename(folder)
        now = dict(client.get_model_version(model_name, version).tags)
        for key in now.keys() - tags.keys():
            client.delete_model_version_tag(model_name, version, key)
        for key, value in tags.items():
            if now.get(key) != value:
                client.set_model_version_tag(model_name, version, key, value)
