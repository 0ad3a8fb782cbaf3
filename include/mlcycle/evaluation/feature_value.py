"""What each feature is worth and what it costs (ML Test Score, Data 2 and Data 3).

Value: permutation importance on the frozen test set: how much the gate's metric falls when one feature's
column is shuffled (seeded, on a bounded sample so that evaluate stays fast). Cost: each feature's share of the
model's per-row predict work, read from the fitted pipeline. A feature that has had no value for several
trainings in a row earns a warning: it costs latency, a data dependency and a contract to keep, for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.config import LOWER_IS_BETTER, UseCase
from mlcycle.training.metrics import classification_metrics
from mlcycle.training.model_io import feature_frame, predict_score

#: Rows of the test set the importances are measured on, and shuffles per feature: ~14 features x 3 repeats
#: x 2,000 rows keeps the extra predict work of evaluate near one batch predict of 100k rows.
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 3
#: The MLflow metric prefixes (one metric per feature) and the artifact of the candidate's run.
IMPORTANCE_METRIC = "importance"
WORK_SHARE_METRIC = "predict_work_share"
ARTIFACT = "evaluation/feature_value.json"


def permutation_importance(
    usecase: UseCase, model: Any, test: pd.DataFrame, *, rows: int = IMPORTANCE_ROWS, repeats: int = IMPORTANCE_REPEATS
) -> dict[str, float]:
    """Feature -> mean drop of the gate's metric when that feature is shuffled (> 0: the feature helps).

    Our own loop rather than sklearn's `permutation_importance`: that one validates an estimator with `fit`,
    and what the registry gives back is a pyfunc model.
    """
    metric, threshold, target = usecase.thresholds.gate.metric, usecase.model.decision_threshold, usecase.target.name
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    sample = test.sample(n=min(rows, len(test)), random_state=usecase.model.seed)
    inputs, labels = feature_frame(usecase, sample).reset_index(drop=True), sample[target].to_numpy()

    def score(predicted: np.ndarray) -> float:
        return sign * classification_metrics(labels, predicted, threshold)[metric]

    # Every shuffled copy is scored in one predict call: the pyfunc's per-call cost (schema enforcement, thread
    # pools) is paid once instead of once per feature and repeat; the scores are the same.
    rng = np.random.default_rng(usecase.model.seed)
    copies = [inputs]
    for column in inputs.columns:
        for _ in range(repeats):
            shuffled = inputs.copy()
            shuffled[column] = inputs[column].to_numpy()[rng.permutation(len(inputs))]
            copies.append(shuffled)
    scores = predict_score(model, pd.concat(copies, ignore_index=True)).reshape(len(copies), len(inputs))
    reference = score(scores[0])
    out: dict[str, float] = {}
    for index, column in enumerate(inputs.columns):
        first = 1 + index * repeats
        out[str(column)] = float(np.mean([reference - score(s) for s in scores[first : first + repeats]]))
    return out


def predict_work_shares(usecase: UseCase, model: Any) -> dict[str, float] | None:
    """Feature -> its share of the model's per-row predict work (shares sum to 1); None for an unknown form.

    Why work rather than wall time: a single-row predict takes a few milliseconds, and the part one feature adds is
    below the noise of a timer on a shared machine (shuffling or blanking a column changes no amount of work). The
    work is in the model: a gradient-boosted tree compares one feature per node it passes, so a feature's share is
    the expected number of comparisons on it per row (the training rows that reached each node splitting on it);
    a linear model or an MLP multiplies every input column once, so a feature's share is the number of model inputs
    its encoding makes (one-hot categories, value and missing indicator). Multiplied by the measured p95 latency,
    this is each feature's part of it.
    """
    pipeline = _pipeline(model)
    if pipeline is None:
        return None
    names = [str(n) for n in pipeline[:-1].get_feature_names_out()]
    owners = [_owner(name, [c.name for c in usecase.features]) for name in names]
    estimator = pipeline[-1]
    weights = np.zeros(len(names))
    predictors = getattr(estimator, "_predictors", None)
    if predictors is not None:  # HistGradientBoosting: one list of trees per boosting iteration
        for trees in predictors:
            for tree in trees:
                split = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
                np.add.at(weights, split["feature_idx"], split["count"])
    else:
        weights[:] = 1.0
    totals: dict[str, float] = {c.name: 0.0 for c in usecase.features}
    for owner, weight in zip(owners, weights, strict=True):
        totals[owner] += float(weight)
    whole = sum(totals.values())
    return {name: (value / whole if whole else 0.0) for name, value in totals.items()}


def unimportant_for(
    current: dict[str, float], earlier: Sequence[dict[str, float]], trainings: int
) -> dict[str, list[float]]:
    """Feature -> its importances, newest first, when it was <= 0 in this and the ``trainings - 1`` trainings before.

    ``earlier`` holds the importances logged by earlier versions, newest first; a version that did not measure the
    feature ends its streak (no evidence is not evidence of no value).
    """
    out: dict[str, list[float]] = {}
    for feature, value in current.items():
        streak = [value]
        for logged in earlier:
            if len(streak) >= trainings or feature not in logged:
                break
            streak.append(logged[feature])
        if len(streak) >= trainings and all(v <= 0 for v in streak[:trainings]):
            out[feature] = streak[:trainings]
    return out


def warnings_for(unimportant: dict[str, list[float]], metric: str) -> list[str]:
    return [
        f"feature {feature} has had permutation importance <= 0 ({metric} drop "
        + ", ".join(f"{v:+.4f}" for v in values)
        + f") in the last {len(values)} trainings: consider removing it (docs/ml-test-score.md, Data 2)"
        for feature, values in sorted(unimportant.items())
    ]


def _pipeline(model: Any) -> Pipeline | None:
    """The fitted sklearn pipeline inside a loaded version (sklearn flavour, or the torch pipeline pyfunc)."""
    raw = model.get_raw_model() if hasattr(model, "get_raw_model") else model
    raw = getattr(raw, "pipeline", raw)
    return raw if isinstance(raw, Pipeline) else None


def _owner(encoded: str, features: list[str]) -> str:
    """The raw feature an encoded model input comes from (`country_DE`, `missingindicator_price`, `price`)."""
    candidates = [f for f in features if encoded in (f, f"missingindicator_{f}") or encoded.startswith(f"{f}_")]
    if not candidates:
        raise ValueError(f"model input {encoded!r} comes from none of the features {features}")
    return max(candidates, key=len)
