"""Load a registered model version as mlcycle logged it, and in no other form: nothing in the artifact runs.

`mlflow.pyfunc.load_model` takes its instructions from the artifact itself: the MLmodel file names the
serialization format (pickle and cloudpickle run code when read), the skops trusted types, the loader module,
code folders to put on `sys.path`, and for models from code a script that it executes. Whoever can write to the
artifact store could make any step that loads a model run their code. Here instead:

1. the version is downloaded and every file checked against the sha256 recorded at registration
   (:mod:`mlcycle.registry.integrity`) before any of them is read;
2. only the two forms the train step logs are accepted, and code decides how each is read: an sklearn pipeline
   saved with skops (read with `trainers.SKOPS_TRUSTED_TYPES`), or mlcycle's torch pipeline pyfunc
   (`TorchPipelineModel` from the installed package; the logged script is never run; weights with
   `torch.load(weights_only=True)`);
3. the result is MLflow's `PyFuncModel` around it with the logged signature, so an intact model predicts exactly
   what `mlflow.pyfunc.load_model` would.

Anything else raises :class:`~mlcycle.registry.integrity.ArtifactRejected` naming the version and the file.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

from mlflow.models import Model
from mlflow.pyfunc import PyFuncModel

from mlcycle.config import UseCase
from mlcycle.registry import integrity
from mlcycle.registry.integrity import ArtifactRejected
from mlcycle.training.skops_io import import_skops_io
from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES

MLMODEL = "MLmodel"
SKLEARN_MODEL_FILE = "model.skops"
SKLEARN_LOADER = "mlflow.sklearn"
SKOPS_FORMAT = "skops"
# The sklearn models are logged with pyfunc_predict_fn="predict_proba" (see steps.train.log_model).
SKLEARN_PREDICT_FN = "predict_proba"
# How MLflow 3 marks a models-from-code pyfunc: the torch pipeline's form.
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"


def load_model_version(usecase: UseCase, version: str | int) -> PyFuncModel:
    """The use case's registered `version`, verified and loaded without running anything its artifacts say."""
    with tempfile.TemporaryDirectory(prefix="mlcycle-model-") as scratch:
        folder = integrity.download_verified(usecase, version, Path(scratch))
        return load_folder(folder, integrity.describe(usecase, version))


def load_folder(folder: Path, what: str) -> PyFuncModel:
    """The model saved in `folder` (already verified, or saved by this process) in one of mlcycle's two forms.

    `what` names the model in refusals. Everything is read before returning: `folder` may be deleted after.
    """
    meta = Model.load(folder / MLMODEL)
    implementation, predict_fn = _load(folder, meta, what)
    return PyFuncModel(model_meta=meta, model_impl=implementation, predict_fn=predict_fn, model_id=meta.model_id)


def _load(folder: Path, meta: Model, what: str) -> tuple[Any, str]:
    flavors = meta.flavors
    pyfunc = flavors.get("python_function") or {}
    if pyfunc.get("code") or any(conf.get("code") for conf in flavors.values() if isinstance(conf, dict)):
        raise ArtifactRejected(f"{what}: file {MLMODEL} declares code paths; mlcycle never logs code with a model")
    if "sklearn" in flavors:
        return _sklearn(folder, flavors["sklearn"], pyfunc, what), SKLEARN_PREDICT_FN
    if pyfunc.get("loader_module") == CODE_MODEL_LOADER:
        return _torch(folder, pyfunc, what), "predict"
    raise ArtifactRejected(
        f"{what}: file {MLMODEL} declares flavors {sorted(flavors)} with loader {pyfunc.get('loader_module')!r}: "
        "neither mlcycle's skops sklearn model nor its torch pipeline"
    )


def _sklearn(folder: Path, sklearn: dict[str, Any], pyfunc: dict[str, Any], what: str) -> _Sklearn:
    serialization = sklearn.get("serialization_format")
    if serialization != SKOPS_FORMAT:
        raise ArtifactRejected(
            f"{what}: file {MLMODEL} declares serialization_format {serialization!r}; mlcycle loads sklearn models "
            "only as skops (pickle and cloudpickle run code when read)"
        )
    declared = {sklearn.get("pickled_model"), pyfunc.get("model_path")}
    if declared != {SKLEARN_MODEL_FILE} or pyfunc.get("loader_module") != SKLEARN_LOADER:
        raise ArtifactRejected(
            f"{what}: file {MLMODEL} points at model file(s) {sorted(map(str, declared))} with loader "
            f"{pyfunc.get('loader_module')!r}, not {SKLEARN_MODEL_FILE} with {SKLEARN_LOADER}"
        )
    # Without torch: an sklearn model does not need it, and importing it costs seconds (mlcycle.training.skops_io).
    skops_io = import_skops_io()
    try:
        return _Sklearn(skops_io.load(folder / SKLEARN_MODEL_FILE, trusted=SKOPS_TRUSTED_TYPES))
    except skops_io.exceptions.UntrustedTypesFoundException as exc:
        raise ArtifactRejected(f"{what}: file {SKLEARN_MODEL_FILE} holds types mlcycle does not trust: {exc}") from exc


class _Sklearn:
    """A fitted sklearn pipeline as `PyFuncModel` calls it (what MLflow's sklearn flavour wraps it in)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.predict_proba = model.predict_proba

    def get_raw_model(self) -> Any:
        return self.model


class _ContextBound:
    """A PythonModel with its context, as `PyFuncModel` calls it: `predict(data, params=None)`."""

    def __init__(self, model: Any, context: Any) -> None:
        self.model = model
        self.context = context

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(self.context, model_input, params)

    def get_raw_model(self) -> Any:
        return self.model


def _torch(folder: Path, pyfunc: dict[str, Any], what: str) -> _ContextBound:
    from mlcycle.training import pyfunc as torch_pyfunc  # lazy: importing torch costs ~5 s

    declared = {name: (info or {}).get("path") for name, info in (pyfunc.get("artifacts") or {}).items()}
    if declared != torch_pyfunc.LOGGED_ARTIFACTS:
        raise ArtifactRejected(
            f"{what}: file {MLMODEL} declares artifacts {declared}, not mlcycle's {torch_pyfunc.LOGGED_ARTIFACTS}"
        )
    skops_io = import_skops_io()  # already imported by torch_pyfunc
    try:
        model, context = torch_pyfunc.load_logged(folder)
    except skops_io.exceptions.UntrustedTypesFoundException as exc:
        path = torch_pyfunc.LOGGED_ARTIFACTS[torch_pyfunc.PREPROCESSOR_ARTIFACT]
        raise ArtifactRejected(f"{what}: file {path} holds types mlcycle does not trust: {exc}") from exc
    except pickle.UnpicklingError as exc:
        # Only the network's weights are read with torch.load (weights_only=True, which refuses any pickled code).
        path = f"{torch_pyfunc.LOGGED_ARTIFACTS[torch_pyfunc.NETWORK_ARTIFACT]}/state_dict.pt"
        raise ArtifactRejected(
            f"{what}: file {path} is not plain tensors (torch.load weights_only refused it)"
        ) from exc
    return _ContextBound(model, context)
