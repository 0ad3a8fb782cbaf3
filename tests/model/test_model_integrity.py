"""A registered model loads only as mlcycle wrote it (issue 12, H4): no code from the artifact runs on load.

Models are logged with the train step's own `log_model` (sklearn: skops; torch: mlcycle's pyfunc), registered in a
local MLflow (SQLite + file store) with their artifact digests recorded, then tampered with in the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.pipeline import Pipeline
from skops.io.exceptions import UntrustedTypesFoundException

from mlcycle.config import UseCase, get_usecase
from mlcycle.steps.train import log_model
from mlcycle.synthetic.yarnit import generate_day
from mlcycle.training.model_io import feature_frame
from mlcycle.training.trainers import build_model
from support import artifacts as tamper

TORCH_PARAMS = {"hidden_sizes": "8", "epochs": 2, "batch_size": 256, "patience": None}


def _usecase(family: str) -> UseCase:
    base = get_usecase("yarnit")
    params = TORCH_PARAMS if family == "torch_mlp" else {}
    return base.model_copy(update={"model": base.model.model_copy(update={"family": family, "params": params})})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.concat([generate_day(dt.date(2026, 9, 1) + dt.timedelta(days=i), base_rows=600) for i in range(3)])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local MLflow for this module: SQLite tracking and registry, file artifact store."""
    folder = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("integrity", artifact_location=(folder / "artifacts").as_uri())
    yield experiment
    mp.undo()


def _register(store: str, family: str, data: pd.DataFrame, *, recorded: bool = True) -> tuple[UseCase, str]:
    """Fit, log with the train step's `log_model`, register, and record the digests as the train step does."""
    usecase = _usecase(family)
    model = build_model(usecase).fit(feature_frame(usecase, data), data[usecase.target.name])
    with mlflow.start_run(experiment_id=store):
        info = log_model(usecase, model, data)
    version = str(mlflow.register_model(info.model_uri, usecase.registered_model_name).version)
    if not recorded:
        return usecase, version
    tamper.forge_digest_record(
        usecase.registered_model_name, version, tamper.artifact_dir(usecase.registered_model_name, version)
    )
    return usecase, version


@pytest.fixture(scope="module")
def sklearn_version(store: str, data: pd.DataFrame) -> tuple[UseCase, str]:
    return _register(store, "sklearn_hgb", data)


@pytest.fixture(scope="module")
def torch_version(store: str, data: pd.DataFrame) -> tuple[UseCase, str]:
    return _register(store, "torch_mlp", data)


@pytest.fixture
def torch_files(torch_version: tuple[UseCase, str]) -> Iterator[Path]:
    usecase, version = torch_version
    with tamper.restored_afterwards(usecase.registered_model_name, version) as folder:
        yield folder


def _tamper_torch_preprocessor(folder: Path, marker: Path) -> None:
    """A preprocessor holding a marker-writing type, and a trusted-types file that lets skops load it."""
    evil = Pipeline([("evil", tamper.WritesMarkerOnLoad(str(marker)))])
    skops.io.dump(evil, folder / "artifacts" / "preprocessor.skops")
    trusted = skops.io.get_untrusted_types(file=folder / "artifacts" / "preprocessor.skops")
    (folder / "artifacts" / "skops_trusted_types.json").write_text(pd.Series(trusted).to_json(orient="values"))


def test_torch_pyfunc_ignores_a_tampered_trusted_types_artifact(
    torch_files: Path, torch_version: tuple[UseCase, str], tmp_path: Path
) -> None:
    """mlcycle's TorchPipelineModel takes its skops trusted types from code: a forged list in the artifact
    does not let a marker-writing preprocessor load, even through MLflow's own loader."""
    usecase, version = torch_version
    marker = tmp_path / "pwned"
    _tamper_torch_preprocessor(torch_files, marker)
    with pytest.raises(UntrustedTypesFoundException):
        mlflow.pyfunc.load_model(f"models:/{usecase.registered_model_name}/{version}")
    assert not marker.exists(), "the tampered preprocessor was loaded: code from the artifact ran"


def test_verified_loader_refuses_a_tampered_torch_preprocessor_even_with_forged_digests(
    torch_files: Path, torch_version: tuple[UseCase, str], tmp_path: Path
) -> None:
    from mlcycle.registry.integrity import ArtifactRejected
    from mlcycle.training.loading import load_model_version

    usecase, version = torch_version
    marker = tmp_path / "pwned"
    _tamper_torch_preprocessor(torch_files, marker)
    with pytest.raises(ArtifactRejected, match="sha256"):
        load_model_version(usecase, version)
    tamper.forge_digest_record(usecase.registered_model_name, version, torch_files)
    with pytest.raises(ArtifactRejected, match=f"version {version}.*preprocessor.skops"):
        load_model_version(usecase, version)
    assert not marker.exists(), "the tampered preprocessor was loaded: code from the artifact ran"


def test_verified_loader_refuses_a_pickled_torch_state_dict(
    torch_files: Path, torch_version: tuple[UseCase, str], tmp_path: Path
) -> None:
    """The network's weights load with torch.load(weights_only=True): a pickle payload there never runs."""
    from mlcycle.registry.integrity import ArtifactRejected
    from mlcycle.training.loading import load_model_version

    usecase, version = torch_version
    marker = tmp_path / "pwned"
    (torch_files / "artifacts" / "torch_mlp" / "state_dict.pt").write_bytes(tamper.malicious_pickle(marker))
    tamper.forge_digest_record(usecase.registered_model_name, version, torch_files)
    with pytest.raises(ArtifactRejected, match=f"version {version}.*state_dict.pt"):
        load_model_version(usecase, version)
    assert not marker.exists(), "the pickled state_dict was unpickled: code from the artifact ran"


def test_verified_loader_never_runs_the_logged_python_model_script(
    torch_files: Path, torch_version: tuple[UseCase, str], tmp_path: Path
) -> None:
    """The models-from-code script logged with the torch pyfunc is not executed by mlcycle's loader."""
    from mlcycle.training.loading import load_model_version

    usecase, version = torch_version
    marker = tmp_path / "pwned"
    scripts = [p for p in torch_files.rglob("*.py")]
    assert scripts, "expected the logged models-from-code script"
    for script in scripts:
        script.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n" + script.read_text())
    tamper.forge_digest_record(usecase.registered_model_name, version, torch_files)
    model = load_model_version(usecase, version)
    assert model is not None
    assert not marker.exists(), "the logged python_model script ran at load"


@pytest.mark.parametrize("family", ["sklearn", "torch"])
def test_clean_model_predicts_identically_through_the_verified_loader(
    family: str, sklearn_version: tuple[UseCase, str], torch_version: tuple[UseCase, str], data: pd.DataFrame
) -> None:
    """Behaviour unchanged: mlcycle's verified loader predicts exactly what MLflow's pyfunc loader predicts."""
    from mlcycle.training.loading import load_model_version

    usecase, version = sklearn_version if family == "sklearn" else torch_version
    frame = feature_frame(usecase, data)
    ours = np.asarray(load_model_version(usecase, version).predict(frame))
    theirs = np.asarray(mlflow.pyfunc.load_model(f"models:/{usecase.registered_model_name}/{version}").predict(frame))
    assert ours.shape == (len(frame), 2)
    np.testing.assert_array_equal(ours, theirs)


def test_a_version_registered_before_digest_records_loads_only_once_attested(store: str, data: pd.DataFrame) -> None:
    """No record: refused; `integrity.attest` records the files as they are once; a second attest is refused."""
    from mlcycle.registry import integrity
    from mlcycle.training.loading import load_model_version

    usecase, version = _register(store, "sklearn_logreg", data, recorded=False)
    with pytest.raises(integrity.ArtifactRejected, match=f"version {version} has no {integrity.DIGESTS_TAG}"):
        load_model_version(usecase, version)
    integrity.attest(usecase, version)
    assert load_model_version(usecase, version).predict(feature_frame(usecase, data)).shape == (len(data), 2)
    with pytest.raises(integrity.ArtifactRejected, match="never rewritten"):
        integrity.attest(usecase, version)
