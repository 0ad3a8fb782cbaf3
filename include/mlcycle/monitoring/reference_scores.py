"""A version's reference scores, computed once when it is trained instead of by every day's monitor.

The monitor compares the champion's scores of the day with two references that depend only on the version and its
frozen data: its scores on its training split (prediction drift) and on its test split (the performance report).
Re-scoring both splits every day cost the monitor most of its time (2.3M + 450k rows a night at 250k rows a day).
The train step already scores a seeded sample of the train split (the ``train_sample_*`` metrics) and the whole
test split; it stores from those:

- ``reference_profile.parquet``: the drift sketch of the train sample's scores (``sample_rows`` values; the sample
  has ``REFERENCE_PER_CURRENT`` x ``sample_rows`` rows, so the day's drift sample keeps its size);
- ``performance_reference.parquet``: (target, score) of a seeded sample of at most ``sample_rows`` test rows.

They are logged under the candidate run's ``reference_scores/`` and their sha256 recorded as the version's
``mlcycle.reference_scores`` tag, in the call that registers it (`mlcycle.registry.integrity`'s record): a version
with the tag has references that must load (a missing, changed or unreadable file is an error); a version without
it (registered before) has none, and the monitor computes them from the splits as it did before.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.artifacts

from mlcycle.config import UseCase
from mlcycle.monitoring.drift import DEFAULT_SEED, REFERENCE_PER_CURRENT, reference_for, sample_current
from mlcycle.monitoring.reference_profile import NUMERIC, PROFILE_FILE, ReferenceProfile, load_reference_profile
from mlcycle.registry import integrity
from mlcycle.tags import Tag

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ARTIFACT_PATH = "reference_scores"
PERFORMANCE_FILE = "performance_reference.parquet"
SCORE, TARGET = "score", "target"


class ReferenceScoresUnreadable(Exception):
    """A version records reference scores that cannot be downloaded or read back."""


@dataclass(frozen=True)
class ReferenceScores:
    """``prediction``: the sketch of the version's scores on its train sample (column ``score``);
    ``performance``: ``target`` and ``score`` of its test sample."""

    prediction: ReferenceProfile
    performance: pd.DataFrame


def train_sample_rows(sample_rows: int | None) -> int | None:
    """Train rows to score for the prediction-drift reference: enough that the day's drift sample is as large as
    with the whole split (`drift.current_sample_size`); None (the drift's ``sample_rows: null``): all of them."""
    return None if sample_rows is None else REFERENCE_PER_CURRENT * sample_rows


def build(
    train_scores: np.ndarray, test_labels: np.ndarray, test_scores: np.ndarray, sample_rows: int | None
) -> ReferenceScores:
    """The references from the train sample's scores and the test split's labels and scores."""
    import pandas as pd

    prediction = reference_for(pd.DataFrame({SCORE: train_scores}), {SCORE: NUMERIC}, sample_rows)
    test = pd.DataFrame({TARGET: test_labels.astype("int64"), SCORE: test_scores})
    performance = sample_current(test, [TARGET, SCORE], sample_rows, DEFAULT_SEED).reset_index(drop=True)
    return ReferenceScores(prediction, performance)


def save(scores: ReferenceScores, folder: Path) -> Path:
    """Write both files into ``folder`` (what the train step logs under ``ARTIFACT_PATH``)."""
    scores.prediction.save(folder)
    scores.performance.to_parquet(folder / PERFORMANCE_FILE, index=False)
    return folder


def record(folder: Path) -> str:
    """The ``mlcycle.reference_scores`` tag: the sha256 of each file, as the model's files are recorded."""
    return integrity.record(folder)


def load(folder: Path, what: str) -> ReferenceScores:
    """Read the files ``save`` wrote; `ReferenceScoresUnreadable` naming ``what`` and the file otherwise."""
    import pandas as pd

    try:
        prediction = load_reference_profile(folder / PROFILE_FILE)
        performance = pd.read_parquet(folder / PERFORMANCE_FILE)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ReferenceScoresUnreadable(f"{what}: its reference scores in {folder} cannot be read: {exc}") from exc
    if prediction.kinds != {SCORE: NUMERIC} or list(performance.columns) != [TARGET, SCORE]:
        raise ReferenceScoresUnreadable(
            f"{what}: its reference scores in {folder} hold {prediction.kinds} and {list(performance.columns)}, "
            f"expected {{{SCORE!r}: {NUMERIC!r}}} and {[TARGET, SCORE]}"
        )
    return ReferenceScores(prediction, performance)


def stored(usecase: UseCase, version: str, tags: dict[str, Any]) -> ReferenceScores | None:
    """The version's stored references (downloaded, checked against its tag), or None when it records none."""
    recorded = tags.get(Tag.REFERENCE_SCORES)
    if not recorded:
        return None
    what = integrity.describe(usecase, version)
    run_id = tags.get(Tag.RUN_ID, "")
    if not run_id:
        raise ReferenceScoresUnreadable(f"{what} records reference scores but no {Tag.RUN_ID} to find them under")
    with tempfile.TemporaryDirectory(prefix="mlcycle-reference-") as scratch:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT_PATH, dst_path=scratch)
            )
        except Exception as exc:  # MLflow raises its own or the store's errors: all mean "recorded but not there"
            raise ReferenceScoresUnreadable(
                f"{what}: its reference scores (run {run_id}, {ARTIFACT_PATH}/) cannot be downloaded: {exc}"
            ) from exc
        integrity.verify(local, str(recorded), f"{what} (reference scores)")
        return load(local, what)
