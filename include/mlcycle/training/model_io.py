"""What goes into a model and what comes out: its input columns and its positive-class score.

Shared by training, evaluation, scoring and monitoring, so every step feeds a model the same columns in
the same order (the logged signature) and reads its score the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.config import UseCase


def feature_frame(usecase: UseCase, table: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, in the declared order (the model signature)."""
    return table[[c.name for c in usecase.features]]


def predict_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probability from a pyfunc whose predict is predict_proba."""
    output = np.asarray(model.predict(frame))
    return output[:, 1] if output.ndim == 2 else output
