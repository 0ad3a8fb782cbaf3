"""Fault drills: a registered model version whose artifacts were tampered with in the artifact store (issue 12, H4).

Every drill runs the real step (`mlcycle score|evaluate|monitor` in-process) against a local MLflow (SQLite +
file artifact store) holding a trained @champion (v1) and a shadow @challenger (v2), tampers with a version's
files the way someone with artifact-store write access could, and asserts: no code from the artifact ran, the
step exits REJECTED (65: the task fails without retry and its failure alert is sent) with a reason naming the
version and the file, @champion still points at v1, and nothing was committed for a refused model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from mlcycle.cli import main as cli_main
from mlcycle.exitcodes import ExitCode
from mlcycle.specs.names import ModelRole
from mlcycle.storage.layout import Dataset, role_sub
from mlcycle.storage.partitions import Storage
from support import artifacts as tamper
from support.cli import CaptureStdout, ok_result, step, train_to_champion

FIRST, TRAINED, SERVED = dt.date(2026, 9, 1), dt.date(2026, 9, 10), dt.date(2026, 9, 11)
ROWS = 900
MODEL = "yarnit_model"


@pytest.fixture(scope="module")
def registry(module_env: dict[str, str], capture_stdout: CaptureStdout) -> dict[str, str]:
    """YarnIt days 09-01..09-11 validated; v1 trained on 09-10 and promoted to @champion; v2 as @challenger."""
    argv = ["generate", "--usecase", "yarnit", "--start", str(FIRST), "--end", str(SERVED), "--rows", str(ROWS)]
    assert cli_main(argv) == 0
    with capture_stdout() as out:
        for name, extra in (("ingest", ("--lookback", "10")), ("validate", ("--lookback", "10"))):
            ok_result(step(out, name, TRAINED, *extra))
        ok_result(step(out, "ingest", SERVED))
        ok_result(step(out, "validate", SERVED, "--serving"))
        ok_result(step(out, "features", TRAINED))
        v1 = train_to_champion(out, TRAINED)
        v2 = ok_result(step(out, "train", TRAINED, "--cache", "off"))["metrics"]["model_version"]
    assert (v1, v2) == ("1", "2")
    return module_env


@pytest.fixture
def storage(registry: dict[str, str]) -> Storage:
    return Storage(registry["MLCYCLE_STORAGE_ROOT"])


@pytest.fixture(autouse=True)
def _no_outputs_of_another_drill(storage: Storage) -> None:
    """Each drill starts with no predictions or monitoring for the served day (drills run in any order)."""
    for role in ModelRole:
        if storage.exists(_predictions(storage, role)):
            storage.delete(_predictions(storage, role))
    monitoring = storage.partition_uri("yarnit", Dataset.MONITORING, SERVED)
    if storage.exists(monitoring):
        storage.delete(monitoring)


@pytest.fixture
def champion_files(registry: dict[str, str]) -> Iterator[Path]:
    """v1's artifact folder, restored (files and tags) after the drill."""
    with tamper.restored_afterwards(MODEL, "1") as folder:
        yield folder


@pytest.fixture
def challenger_files(registry: dict[str, str]) -> Iterator[Path]:
    """v2's artifact folder, restored (files and tags) after the drill."""
    with tamper.restored_afterwards(MODEL, "2") as folder:
        yield folder


def _predictions(storage: Storage, role: ModelRole) -> str:
    return storage.partition_uri("yarnit", Dataset.PREDICTIONS, SERVED, role_sub(role))


def _assert_refused(code: int, document: dict[str, Any], version: str, file: str) -> None:
    assert code == ExitCode.REJECTED, document
    assert document["status"] == "rejected"
    assert f"version {version}" in document["reason"] and file in document["reason"], document["reason"]
    assert tamper.alias(MODEL, "champion") == "1"


def _poison(folder: Path) -> None:
    """Rewrite model.skops as a valid model that scores every row as a buyer: loads fine, behaves differently."""
    import numpy as np
    import skops.io

    from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES

    pipeline = skops.io.load(folder / "model.skops", trusted=SKOPS_TRUSTED_TYPES)
    pipeline.steps[-1][1]._baseline_prediction = np.array([[50.0]])
    skops.io.dump(pipeline, folder / "model.skops")


def test_tampered_pickle_in_registered_version_is_refused_at_score(
    champion_files: Path, storage: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pickle swapped into the champion (MLmodel pointed at it) never runs: score exits 65, nothing is served."""
    marker = tmp_path / "pwned"
    tamper.swap_in_pickle(champion_files, marker)
    code, document = step(capsys, "score", SERVED)
    assert not marker.exists(), "the tampered pickle was unpickled: code from the artifact ran"
    _assert_refused(code, document, "1", "MLmodel")
    assert not storage.exists(_predictions(storage, ModelRole.CHAMPION))


def test_tampered_pickle_with_forged_digest_record_is_still_refused(
    champion_files: Path, storage: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even with the digest tag forged over the swapped files, a pickle format is refused and never unpickled."""
    marker = tmp_path / "pwned"
    tamper.swap_in_pickle(champion_files, marker)
    tamper.forge_digest_record(MODEL, "1", champion_files)
    code, document = step(capsys, "score", SERVED)
    assert not marker.exists(), "the tampered pickle was unpickled: code from the artifact ran"
    _assert_refused(code, document, "1", "pickle")
    assert not storage.exists(_predictions(storage, ModelRole.CHAMPION))


def test_artifact_digest_mismatch_at_score_is_rejected_and_champion_untouched(
    champion_files: Path, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid but different model file behind the champion fails its recorded sha256: 65, nothing served."""
    _poison(champion_files)
    code, document = step(capsys, "score", SERVED)
    _assert_refused(code, document, "1", "model.skops")
    assert "sha256" in document["reason"]
    assert not storage.exists(_predictions(storage, ModelRole.CHAMPION))


def test_mlmodel_format_swapped_to_pickle_is_refused(
    champion_files: Path, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    """An MLmodel declaring serialization_format: pickle is refused at score (exit 65), not tried and not retried."""
    tamper.set_serialization_format(champion_files, "pickle")
    code, document = step(capsys, "score", SERVED)
    _assert_refused(code, document, "1", "MLmodel")
    assert not storage.exists(_predictions(storage, ModelRole.CHAMPION))


def test_mlmodel_format_swapped_with_forged_digest_record_is_refused(
    champion_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the digests forged too, the format check alone refuses a pickle-declaring MLmodel (exit 65)."""
    tamper.set_serialization_format(champion_files, "pickle")
    tamper.forge_digest_record(MODEL, "1", champion_files)
    code, document = step(capsys, "score", SERVED)
    _assert_refused(code, document, "1", "serialization_format")


def test_version_without_digest_record_is_rejected_at_score(
    champion_files: Path, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version with no recorded artifact digests is never loaded: 65 naming the version, nothing served."""
    from mlflow.tracking import MlflowClient

    MlflowClient().delete_model_version_tag(MODEL, "1", tamper.DIGESTS_TAG)
    code, document = step(capsys, "score", SERVED)
    _assert_refused(code, document, "1", tamper.DIGESTS_TAG)
    assert not storage.exists(_predictions(storage, ModelRole.CHAMPION))


def test_tampered_shadow_challenger_still_serves_the_champion_and_alerts(
    challenger_files: Path, storage: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tampered @challenger never runs; the champion's predictions are committed and the step exits 65."""
    marker = tmp_path / "pwned"
    tamper.swap_in_pickle(challenger_files, marker)
    code, document = step(capsys, "score", SERVED)
    assert not marker.exists(), "the tampered pickle was unpickled: code from the artifact ran"
    _assert_refused(code, document, "2", "MLmodel")
    assert storage.exists(_predictions(storage, ModelRole.CHAMPION))
    assert not storage.exists(_predictions(storage, ModelRole.CHALLENGER))
    assert storage.manifest(_predictions(storage, ModelRole.CHAMPION))["model_version"] == "1"


def test_tampered_candidate_is_rejected_at_evaluate_and_never_promoted(
    challenger_files: Path, storage: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate refuses a tampered candidate (65) before measuring it: no decision record, champion unchanged."""
    marker = tmp_path / "pwned"
    tamper.swap_in_pickle(challenger_files, marker)
    code, document = step(capsys, "evaluate", TRAINED, "--model-version", "2")
    assert not marker.exists(), "the tampered pickle was unpickled: code from the artifact ran"
    _assert_refused(code, document, "2", "MLmodel")
    assert not storage.exists(storage.partition_uri("yarnit", Dataset.EVALUATION, TRAINED, "v2"))


def test_tampered_champion_is_rejected_at_monitor(
    champion_files: Path, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    """A champion registered before reference scores were stored with versions: monitor loads the model to score
    its splits, and refuses a tampered one (65): no monitoring partition."""
    from mlflow.tracking import MlflowClient

    from mlcycle.tags import Tag

    ok_result(step(capsys, "score", SERVED))  # the day's predictions, so monitor computes prediction drift
    _poison(champion_files)
    MlflowClient().delete_model_version_tag(MODEL, "1", Tag.REFERENCE_SCORES)  # put back by champion_files
    code, document = step(capsys, "monitor", SERVED)
    _assert_refused(code, document, "1", "model.skops")
    assert not storage.exists(storage.partition_uri("yarnit", Dataset.MONITORING, SERVED))


def test_tampered_reference_scores_are_rejected_at_monitor(
    champion_files: Path, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    """monitor reads the champion's stored reference scores instead of its model: a changed file is refused (65)
    like a changed model file, naming the version and the file; no monitoring partition."""
    from mlflow.tracking import MlflowClient

    from mlcycle.monitoring.reference_scores import ARTIFACT_PATH
    from mlcycle.tags import Tag

    ok_result(step(capsys, "score", SERVED))  # the day's predictions, so monitor computes prediction drift
    client = MlflowClient()
    run_id = client.get_model_version(MODEL, "1").tags[Tag.RUN_ID]
    # The embedded default's artifact store is a local folder: the file the monitor will download, changed in place.
    stored = Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / ARTIFACT_PATH
    target = stored / "performance_reference.parquet"
    assert target.is_file(), sorted(p.name for p in stored.iterdir()) if stored.is_dir() else stored
    pristine = target.read_bytes()
    try:
        target.write_bytes(pristine + b"\0")
        code, document = step(capsys, "monitor", SERVED)
    finally:
        target.write_bytes(pristine)
    _assert_refused(code, document, "1", "performance_reference.parquet")
    assert not storage.exists(storage.partition_uri("yarnit", Dataset.MONITORING, SERVED))
