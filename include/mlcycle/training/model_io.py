"""What goes into a model and what comes out: its input columns and its positive-class score.

Shared by training, evaluation, scoring and monitoring, so every step feeds a model the same columns in
the same order (the logged signature) and reads its score the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.config import UseCase


class MissingModelInput(ValueError):
    """The data lacks a column a model version's signature needs."""


def feature_frame(usecase: UseCase, table: pd.DataFrame) -> pd.DataFrame:
    """The use case's input columns now, in `usecase.yaml`'s order (what a model trained today gets)."""
    return table[[c.name for c in usecase.features]]


def signature_columns(model: Any, what: str) -> list[str]:
    """The input columns of a loaded pyfunc's logged signature, in its order: what that version was trained on.

    A version trained before a feature was added to (or removed from) `usecase.yaml` keeps its own columns.
    `what` names the model in the error (a version logged without a signature cannot be fed safely).
    """
    schema = model.metadata.get_input_schema() if model.metadata is not None else None
    if schema is None or not schema.has_input_names():
        raise MissingModelInput(f"{what} was logged without a named input signature: its input columns are unknown")
    return list(schema.input_names())


def model_input(model: Any, table: pd.DataFrame, what: str) -> pd.DataFrame:
    """`table`'s columns that `model`'s signature names, in its order; `MissingModelInput` naming those absent."""
    columns = signature_columns(model, what)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MissingModelInput(
            f"{what} needs column(s) {missing} (its logged signature: {columns}), which the data lacks"
        )
    return table[columns]


def predict_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probability from a pyfunc whose predict is predict_proba."""
    output = np.asarray(model.predict(frame))
    return output[:, 1] if output.ndim == 2 else output
