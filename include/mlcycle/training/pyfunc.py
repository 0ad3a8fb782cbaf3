"""A fitted Pipeline whose last step is a `TorchMLPClassifier`, logged and served as an MLflow pyfunc.

The logged model holds two artifacts: the fitted preprocessing steps (`pipeline[:-1]`, saved with skops,
loaded only with the trusted types given at log time) and the torch network (`state_dict.pt` + its
architecture and params in `torch_mlp.json`). `predict` returns what sklearn's `predict_proba` returns
(an n x 2 array, positive class in column 1), so `mlflow.pyfunc.load_model(uri).predict(frame)` is used
exactly like the sklearn models' (see `predict_score` in `mlcycle.evaluation.evidence`). Loading rebuilds the
network on CPU, or on CUDA when a GPU is present.

Serving needs `mlcycle` importable (the pod image installs it; `code_paths` can carry it otherwise).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import skops.io
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from sklearn.pipeline import Pipeline

from mlcycle.training.torch_mlp import TorchMLPClassifier

PREPROCESSOR_ARTIFACT = "preprocessor"
NETWORK_ARTIFACT = "torch_mlp"
TRUSTED_TYPES_ARTIFACT = "skops_trusted_types"
# What a one-hot/impute/scale ColumnTransformer needs beyond skops' defaults (OneHotEncoder(dtype=...)).
DEFAULT_TRUSTED_TYPES = ("numpy.dtype",)


class TorchPipelineModel(PythonModel):
    """pyfunc: DataFrame -> preprocessor -> TorchMLPClassifier.predict_proba (n x 2)."""

    def load_context(self, context: Any) -> None:
        trusted = json.loads(Path(context.artifacts[TRUSTED_TYPES_ARTIFACT]).read_text())
        preprocess = skops.io.load(context.artifacts[PREPROCESSOR_ARTIFACT], trusted=trusted)
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
    skops_trusted_types: Iterable[str] = DEFAULT_TRUSTED_TYPES,
    code_paths: Sequence[str] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a fitted preprocessing + `TorchMLPClassifier` Pipeline as a pyfunc model in the active run.

    `pip_requirements` should be explicit (MLflow's inference scans the whole environment and is slow);
    include `torch==<version>`. Extra keyword arguments go to `mlflow.pyfunc.log_model`.
    """
    preprocess, step_name, model = _split(pipeline)
    trusted = sorted(set(skops_trusted_types))
    with tempfile.TemporaryDirectory(prefix="mlcycle-torch-") as tmp:
        folder = Path(tmp)
        preprocessor_path = folder / "preprocessor.skops"
        skops.io.dump(preprocess, preprocessor_path)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=preprocessor_path)) - set(trusted))
        if untrusted:
            raise TypeError(
                f"the preprocessor holds types skops would refuse to load: {untrusted}; review them and pass "
                "them in skops_trusted_types"
            )
        network_path = folder / "torch_mlp"
        model.save(network_path)
        meta_path = network_path / "torch_mlp.json"
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "step_name": step_name}, indent=2))
        trusted_path = folder / "skops_trusted_types.json"
        trusted_path.write_text(json.dumps(trusted))
        code_path = folder / "torch_pipeline_model.py"
        code_path.write_text(_MODEL_CODE)
        info: ModelInfo = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code_path),
            artifacts={
                PREPROCESSOR_ARTIFACT: str(preprocessor_path),
                NETWORK_ARTIFACT: str(network_path),
                TRUSTED_TYPES_ARTIFACT: str(trusted_path),
            },
            signature=signature,
            input_example=input_example,
            pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
            code_paths=list(code_paths) if code_paths is not None else None,
            **kwargs,
        )
    return info


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
