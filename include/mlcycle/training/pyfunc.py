"""A fitted Pipeline whose last step is a `TorchMLPClassifier`, logged and served as an MLflow pyfunc.

The logged model holds two artifacts: the fitted preprocessing steps (`pipeline[:-1]`, saved with skops,
loaded only with the trusted types of `mlcycle.training.trainers.SKOPS_TRUSTED_TYPES`: code, never a list stored
with the model) and the torch network (`state_dict.pt`, loaded with `torch.load(weights_only=True)`, + its
architecture and params in `torch_mlp.json`). `predict` returns what sklearn's `predict_proba` returns
(an n x 2 array, positive class in column 1), so `mlflow.pyfunc.load_model(uri).predict(frame)` is used
exactly like the sklearn models' (see `predict_score` in `mlcycle.training.model_io`). Loading rebuilds the
network on CPU, or on CUDA when a GPU is present.

mlcycle's steps never load it with `mlflow.pyfunc.load_model`, which would execute the logged models-from-code
script: `mlcycle.training.loading` verifies the files and calls :func:`load_logged` (this class, from the installed
package, with the artifacts at the paths this module logs them to). The script is logged for MLflow's own tools.
Serving needs `mlcycle` importable (the pod image installs it; `code_paths` can carry it otherwise).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import skops.io
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from sklearn.pipeline import Pipeline

from mlcycle.training.torch_mlp import TorchMLPClassifier
from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES

PREPROCESSOR_ARTIFACT = "preprocessor"
NETWORK_ARTIFACT = "torch_mlp"
# Where MLflow stores each artifact inside the logged model (`artifacts/<the logged file's name>`).
LOGGED_ARTIFACTS = {PREPROCESSOR_ARTIFACT: "artifacts/preprocessor.skops", NETWORK_ARTIFACT: "artifacts/torch_mlp"}


class TorchPipelineModel(PythonModel):
    """pyfunc: DataFrame -> preprocessor -> TorchMLPClassifier.predict_proba (n x 2)."""

    def load_context(self, context: Any) -> None:
        # The trusted types are code: a list stored with the model would let whoever can write the artifact store
        # trust any type (skops then runs its __setstate__ / constructor on load).
        preprocess = skops.io.load(context.artifacts[PREPROCESSOR_ARTIFACT], trusted=SKOPS_TRUSTED_TYPES)
        network = TorchMLPClassifier.load(context.artifacts[NETWORK_ARTIFACT])
        meta = json.loads((Path(context.artifacts[NETWORK_ARTIFACT]) / "torch_mlp.json").read_text())
        self.pipeline = Pipeline([*preprocess.steps, (meta.get("step_name", "model"), network)])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        result: np.ndarray = self.pipeline.predict_proba(frame)
        return result


# Models from code (MLflow 3): the logged model stores this script, not a cloudpickle of the class.
_MODEL_CODE = """from mlflow.models import set_model

from mlcycle.training.pyfunc import TorchPipelineModel

set_model(TorchPipelineModel())
"""


def _split(pipeline: Pipeline) -> tuple[Pipeline, str, TorchMLPClassifier]:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise TypeError("expected a fitted sklearn Pipeline: preprocessing step(s) then a TorchMLPClassifier")
    name, model = pipeline.steps[-1]
    if not isinstance(model, TorchMLPClassifier):
        raise TypeError(f"the pipeline's last step {name!r} is {type(model).__name__}, not TorchMLPClassifier")
    if not hasattr(model, "module_"):
        raise ValueError("the pipeline is not fitted")
    return pipeline[:-1], name, model


def log_torch_pipeline(
    pipeline: Pipeline,
    *,
    name: str = "model",
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Sequence[str] | None = None,
    code_paths: Sequence[str] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a fitted preprocessing + `TorchMLPClassifier` Pipeline as a pyfunc model in the active run.

    `pip_requirements` should be explicit (MLflow's inference scans the whole environment and is slow);
    include `torch==<version>`. Extra keyword arguments go to `mlflow.pyfunc.log_model`. A preprocessor holding a
    type outside `SKOPS_TRUSTED_TYPES` is refused here, at training, rather than at every load.
    """
    preprocess, step_name, model = _split(pipeline)
    with tempfile.TemporaryDirectory(prefix="mlcycle-torch-") as tmp:
        folder = Path(tmp)
        preprocessor_path = folder / "preprocessor.skops"
        skops.io.dump(preprocess, preprocessor_path)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=preprocessor_path)) - set(SKOPS_TRUSTED_TYPES))
        if untrusted:
            raise TypeError(
                f"the preprocessor holds types skops would refuse to load: {untrusted}; review them and add them "
                "to mlcycle.training.trainers.SKOPS_TRUSTED_TYPES"
            )
        network_path = folder / "torch_mlp"
        model.save(network_path)
        meta_path = network_path / "torch_mlp.json"
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "step_name": step_name}, indent=2))
        code_path = folder / "torch_pipeline_model.py"
        code_path.write_text(_MODEL_CODE)
        info: ModelInfo = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code_path),
            artifacts={
                PREPROCESSOR_ARTIFACT: str(preprocessor_path),
                NETWORK_ARTIFACT: str(network_path),
            },
            signature=signature,
            input_example=input_example,
            pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
            code_paths=list(code_paths) if code_paths is not None else None,
            **kwargs,
        )
    return info


def load_logged(folder: Path) -> tuple[TorchPipelineModel, PythonModelContext]:
    """mlcycle's pyfunc for the torch pipeline logged (and already verified) in `folder`, with its context.

    The class comes from the installed package and the artifacts from the paths this module logs them to: nothing
    the model's MLmodel file or its logged script says is run.
    """
    context = PythonModelContext(
        artifacts={name: str(folder / path) for name, path in LOGGED_ARTIFACTS.items()}, model_config={}
    )
    model = TorchPipelineModel()
    model.load_context(context)
    return model, context


def log_epoch_history(history: Sequence[Mapping[str, float]], prefix: str = "epoch_") -> None:
    """Per-epoch curves in the active run: `epoch_train_loss`, `epoch_valid_loss`, ... at step=epoch."""
    for record in history:
        step = int(record["epoch"])
        values = {
            f"{prefix}{key}": float(value)
            for key, value in record.items()
            if key != "epoch" and value is not None and math.isfinite(float(value))
        }
        if values:
            mlflow.log_metrics(values, step=step)
