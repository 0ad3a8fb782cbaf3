"""The sha256 of every file of a registered model version: recorded at registration, verified before every load.

Whoever can write to the artifact store can replace a registered version's files (a pickle in place of the
model, an edited MLmodel). The train step records the digests of the files it logged as a version tag, in the
same call that creates the version; every step that loads a version downloads it and checks each file against
that record before reading any of them. A missing record, a missing, extra or changed file is refused
(:class:`ArtifactRejected`): never read as "no model", never retried.

The record lives in the MLflow registry, not next to the files, so writing to the artifact store is not enough to
forge it. Writing version tags needs MLflow edit rights on the registered model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow.artifacts

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.storage.partitions import sha256_file
from mlcycle.tags import Tag

# Version tag: JSON {path relative to the model folder: sha256 hex} of every file logged with the version.
DIGESTS_TAG = Tag.ARTIFACT_SHA256
# MLflow writes this file into every download of a registered model: it was never logged, so never recorded.
DOWNLOAD_METADATA = frozenset({"registered_model_meta"})


class ArtifactRejected(Exception):
    """A model version's files are not the ones mlcycle logged, or are not in a form mlcycle loads."""


def digests(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every file under `folder` (MLflow's download metadata left out)."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() not in DOWNLOAD_METADATA
    }


def record(folder: Path) -> str:
    """The DIGESTS_TAG value for the model files in `folder`."""
    return json.dumps(digests(folder), sort_keys=True, separators=(",", ":"))


def record_logged_model(model_uri: str) -> str:
    """The DIGESTS_TAG value of a logged model, read back from the artifact store (what loads will download)."""
    with tempfile.TemporaryDirectory(prefix="mlcycle-digests-") as scratch:
        return record(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=scratch)))


def _recorded(what: str, value: str | None) -> dict[str, str]:
    if not value:
        raise ArtifactRejected(
            f"{what} has no {DIGESTS_TAG} tag: its artifacts were never recorded at registration, so they cannot "
            "be verified (docs/model-integrity.md: retrain, or attest a version whose files were checked)"
        )
    try:
        recorded = json.loads(value)
    except ValueError as exc:
        raise ArtifactRejected(f"{what}: its {DIGESTS_TAG} tag is not JSON ({exc})") from exc
    if (
        not isinstance(recorded, dict)
        or not recorded
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in recorded.items())
    ):
        raise ArtifactRejected(f"{what}: its {DIGESTS_TAG} tag is not a non-empty {{file: sha256}} object")
    return recorded


def verify(folder: Path, value: str | None, what: str) -> None:
    """Check the files in `folder` against the recorded digests `value`; raise ArtifactRejected naming the file."""
    recorded = _recorded(what, value)
    found = digests(folder)
    changed = [name for name in sorted(recorded.keys() & found.keys()) if found[name] != recorded[name]]
    problems = [
        *(f"file {name} does not match the sha256 recorded at registration" for name in changed),
        *(f"file {name} recorded at registration is missing" for name in sorted(recorded.keys() - found.keys())),
        *(f"file {name} was not logged at registration" for name in sorted(found.keys() - recorded.keys())),
    ]
    if problems:
        raise ArtifactRejected(f"{what}: its artifacts changed after registration: {'; '.join(problems)}")


def describe(usecase: UseCase, version: str | int) -> str:
    """How refusals name a version: `<registered model> version <n>`."""
    return f"{usecase.registered_model_name} version {version}"


def download_verified(usecase: UseCase, version: str | int, destination: Path) -> Path:
    """Download the version's files into `destination` and verify them; the verified model folder."""
    value = tracking.version_tags(usecase, version).get(DIGESTS_TAG)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=tracking.model_uri(usecase, version), dst_path=str(destination)
        )
    )
    verify(local, value, describe(usecase, version))
    return local


def attest(usecase: UseCase, version: str | int) -> str:
    """Record the digests of a version registered before records existed, as its files are now; the tag's value.

    For a person who has checked that version's files (the upgrade path in docs/model-integrity.md). A version that
    has a record keeps it: a mismatch is a finding to investigate, never fixed by recording the files again.
    """
    what = describe(usecase, version)
    if tracking.version_tags(usecase, version).get(DIGESTS_TAG):
        raise ArtifactRejected(f"{what} already has its {DIGESTS_TAG} record; it is never rewritten")
    value = record_logged_model(tracking.model_uri(usecase, version))
    tracking.set_version_tags(usecase, version, {DIGESTS_TAG: value})
    return value
