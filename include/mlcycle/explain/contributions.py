"""What one row's score is made of: the feature vector the model saw, and per-feature contributions.

Two methods, chosen by the fitted model's last step (docs/explain.md):

- **linear terms** (logistic regression): coef x transformed value for every column after preprocessing; the terms
  and the intercept sum to the logit, whose sigmoid is the score. Exact.
- **baseline deltas** (gradient-boosted trees, the torch MLP, any other model): for each input feature, the row's
  score minus the mean score of copies of the row whose value of that feature is replaced by the feature's values
  in a seeded sample of the version's training split. How much the row's own value moved the score away from
  what typical values give, all other features held at the row's values. Not additive (interactions are
  counted in each feature they involve); deterministic for a given version, row and seed.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.training.model_io import predict_score

#: Training rows the baseline deltas replace a feature's value with (sampled once, seeded).
REFERENCE_ROWS = 100
LINEAR = "linear terms"
BASELINE = "baseline deltas"


def fitted_pipeline(model: Any) -> Pipeline:
    """The fitted sklearn Pipeline inside a loaded pyfunc model (mlcycle's sklearn and torch forms both hold one)."""
    raw = model.get_raw_model()
    pipeline = raw if isinstance(raw, Pipeline) else getattr(raw, "pipeline", None)
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"the model holds a {type(raw).__name__}, not an sklearn Pipeline: its steps cannot be shown")
    return pipeline


def feature_vector(pipeline: Pipeline, row: pd.DataFrame) -> dict[str, float]:
    """The row after the pipeline's preprocessing (every step but the model), by output column name."""
    preprocess = pipeline[:-1]
    values = preprocess.transform(row)
    dense = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
    names = [str(n) for n in preprocess.get_feature_names_out()]
    return {name: float(value) for name, value in zip(names, dense[0], strict=True)}


def linear_terms(pipeline: Pipeline, vector: dict[str, float]) -> dict[str, Any] | None:
    """coef x value per transformed column, the intercept and their sum (the logit); None for a non-linear model."""
    estimator = pipeline[-1]
    coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
    if coef is None or intercept is None or np.ndim(coef) != 2 or np.shape(coef)[0] != 1:
        return None
    products = [
        (name, value, float(c), float(c) * value) for (name, value), c in zip(vector.items(), coef[0], strict=True)
    ]
    logit = float(np.asarray(intercept)[0]) + sum(term for *_, term in products)
    terms = [{"feature": name, "value": value, "coef": c, "term": term} for name, value, c, term in products]
    return {
        "method": LINEAR,
        "unit": "log-odds",
        "intercept": float(np.asarray(intercept)[0]),
        "logit": logit,
        "score_from_logit": float(1.0 / (1.0 + np.exp(-logit))),
        "terms": sorted(terms, key=lambda t: -abs(float(t["term"]))),
    }


def baseline_deltas(model: Any, row: pd.DataFrame, reference: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Per input feature: score(row) - mean score(row with that feature's value taken from the reference sample).

    `row` and `reference` hold the model's input columns (its signature, in order); `reference` is sampled down
    to `REFERENCE_ROWS` rows with `seed`.
    """
    if len(reference) > REFERENCE_ROWS:
        picked = np.sort(np.random.default_rng(seed).choice(len(reference), REFERENCE_ROWS, replace=False))
        reference = reference.iloc[picked]
    reference = reference.reset_index(drop=True)
    score = float(predict_score(model, row)[0])
    deltas = []
    for column in row.columns:
        copies = pd.concat([row] * len(reference), ignore_index=True)
        copies[column] = reference[column].to_numpy()
        replaced = float(np.mean(predict_score(model, copies)))
        deltas.append({"feature": column, "value": plain(row[column].iloc[0]), "delta": score - replaced})
    return {
        "method": BASELINE,
        "unit": "score",
        "reference_rows": len(reference),
        "seed": seed,
        "baseline_score": float(np.mean(predict_score(model, reference))),
        "deltas": sorted(deltas, key=lambda d: -abs(d["delta"])),
    }


def plain(value: Any) -> Any:
    """A JSON-able scalar: numpy scalars as Python ones, NaN/NaT as None, timestamps as ISO text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
