"""The train step's post-fit work and the monitor's reference scores, without MLflow (issue 16, item 2).

The train split is scored on a seeded sample (`train_sample_*` metrics), valid and test whole; a version's reference
scores (mlcycle.monitoring.reference_scores) round-trip through their files, and a damaged file is an error.
The steps that write and read them on a real registry: tests/unit/test_scoring_monitoring.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.config import get_usecase
from mlcycle.monitoring import reference_scores
from mlcycle.monitoring.reference_profile import PROFILE_FILE


def _splits(rows: dict[str, int]) -> dict[str, pd.DataFrame]:
    """YarnIt-shaped splits of random rows whose target follows price (so every AUC is defined)."""
    usecase = get_usecase("yarnit")
    rng = np.random.default_rng(7)
    out = {}
    for split, n in rows.items():
        frame = pd.DataFrame(
            {
                **{c: rng.choice(["a", "b", "c"], n) for c in usecase.categorical_features},
                **{c: rng.normal(size=n) for c in usecase.numeric_features},
            }
        )
        frame[usecase.target.name] = (frame["price"] + rng.normal(size=n) > 0).astype("int64")
        out[split] = frame
    return out


def test_the_train_split_is_measured_on_a_seeded_sample_and_valid_and_test_whole() -> None:
    from mlcycle.training.fit import fit_and_measure
    from mlcycle.training.trainers import build_model

    usecase = get_usecase("yarnit")
    usecase = usecase.model_copy(update={"model": usecase.model.model_copy(update={"params": {"max_iter": 5}})})
    splits = _splits({"train": 3000, "valid": 400, "test": 500})
    fitted = fit_and_measure(usecase, build_model(usecase), splits, train_metric_rows=1000)
    metrics = fitted.metrics
    assert metrics["train_sample_rows"] == 1000 and len(fitted.train_sample_scores) == 1000
    assert not [k for k in metrics if k.startswith("train_") and not k.startswith("train_sample_")]
    assert metrics["valid_rows"] == 400 and metrics["test_rows"] == 500 and len(fitted.test_scores) == 500
    # The sample is the seeded one the step's `max_train_rows` sampling draws: its scores are the model's on it.
    sample = splits["train"].sample(n=1000, random_state=usecase.model.seed).sort_index()
    expected = fitted.model.predict_proba(sample[[c.name for c in usecase.features]])[:, 1]
    np.testing.assert_array_equal(fitted.train_sample_scores, expected)
    again = fit_and_measure(usecase, build_model(usecase), splits, train_metric_rows=None)
    assert again.metrics["train_sample_rows"] == 3000


def test_reference_scores_round_trip_at_the_drift_sample_size(tmp_path: Path) -> None:
    assert reference_scores.train_sample_rows(10_000) == 100_000 and reference_scores.train_sample_rows(None) is None
    rng = np.random.default_rng(3)
    train_scores, test_labels, test_scores = rng.random(5000), rng.integers(0, 2, 3000), rng.random(3000)
    built = reference_scores.build(train_scores, test_labels, test_scores, sample_rows=1000)
    assert built.prediction.n_rows == 5000 and len(built.prediction.frame) == 1000
    assert len(built.performance) == 1000 and list(built.performance.columns) == ["target", "score"]
    assert set(built.performance["score"]) <= set(test_scores)
    loaded = reference_scores.load(reference_scores.save(built, tmp_path), "v1")
    pd.testing.assert_frame_equal(loaded.prediction.frame, built.prediction.frame)
    pd.testing.assert_frame_equal(loaded.performance, built.performance)
    assert loaded.prediction.n_rows == 5000
    whole = reference_scores.build(train_scores, test_labels, test_scores, sample_rows=None)
    assert len(whole.prediction.frame) == 5000 and len(whole.performance) == 3000


def test_an_unreadable_reference_file_is_an_error_naming_the_version(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    built = reference_scores.build(rng.random(100), rng.integers(0, 2, 100), rng.random(100), sample_rows=50)
    reference_scores.save(built, tmp_path)
    (tmp_path / PROFILE_FILE).write_bytes(b"not parquet")
    with pytest.raises(reference_scores.ReferenceScoresUnreadable, match=f"yarnit_model version 4: .*{PROFILE_FILE}"):
        reference_scores.load(tmp_path, "yarnit_model version 4")
