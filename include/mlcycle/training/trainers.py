"""Model families behind one interface: `build_model(usecase)` returns an unfitted sklearn Pipeline.

Preprocessing lives inside the pipeline (and so inside the logged model), so serving cannot skew
from training.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlcycle.config import UseCase

# MLflow 3 saves sklearn models with skops, which refuses types it cannot vouch for. These are the
# reviewed ones our pipelines contain (HistGradientBoosting's tree nodes; sklearn's own helpers); a
# model file is only ever loaded from our own registry.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "numpy.dtype",  # OneHotEncoder(dtype=...) in the linear pipelines
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


def _preprocessor(usecase: UseCase, *, ordinal: bool) -> ColumnTransformer:
    numeric = usecase.numeric_features
    categorical = usecase.categorical_features
    if ordinal:
        # Tree models take category codes natively (HistGradientBoosting's categorical support).
        encode: Any = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        scale: Any = "passthrough"
    else:
        encode = OneHotEncoder(handle_unknown="ignore", min_frequency=20)
        scale = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    return ColumnTransformer(
        [("categorical", encode, categorical), ("numeric", scale, numeric)],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def build_model(usecase: UseCase) -> Pipeline:
    """The unfitted pipeline for the use case's model family, seeded."""
    family, params, seed = usecase.model.family, dict(usecase.model.params), usecase.model.seed
    if family == "sklearn_hgb":
        n_categorical = len(usecase.categorical_features)
        estimator: Any = HistGradientBoostingClassifier(
            categorical_features=list(range(n_categorical)), random_state=seed, **params
        )
        return Pipeline([("preprocess", _preprocessor(usecase, ordinal=True)), ("model", estimator)])
    if family == "sklearn_logreg":
        estimator = LogisticRegression(max_iter=1000, random_state=seed, **params)
        return Pipeline([("preprocess", _preprocessor(usecase, ordinal=False)), ("model", estimator)])
    if family == "torch_mlp":
        from mlcycle.training.torch_mlp import TorchMLPClassifier  # lazy: importing torch costs ~5 s

        # The GPU is used only when the use case asks for one for its train step (and one is present).
        torch_params: dict[str, Any] = {"use_gpu": usecase.resources_for("train").gpu > 0, **params}
        network = TorchMLPClassifier(seed=seed, **torch_params)
        return Pipeline([("preprocess", _preprocessor(usecase, ordinal=False)), ("model", network)])
    if family == "dummy":
        return Pipeline(
            [
                ("preprocess", _preprocessor(usecase, ordinal=False)),
                ("model", DummyClassifier(strategy="prior")),
            ]
        )
    raise ValueError(f"model.family {family!r} is not supported")
