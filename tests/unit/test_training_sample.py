"""Training stays single-node: `split.max_train_rows` cuts the train split to a seeded sample, recorded on the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.config import Split, get_usecase


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]}, index=range(100, 100 + rows))


def _usecase(max_train_rows: int | None) -> Any:
    usecase = get_usecase("yarnit")
    return usecase.model_copy(update={"split": usecase.split.model_copy(update={"max_train_rows": max_train_rows})})


def test_a_window_within_the_bound_is_trained_on_whole() -> None:
    from mlcycle.training.sampling import sample_train

    train = _frame(500)
    for bound in (None, 500, 10_000):
        same, sample = sample_train(train, bound, seed=42)
        assert same is train and not sample.sampled
        assert sample.params() == {"max_train_rows": "none" if bound is None else bound}


def test_a_larger_window_is_a_seeded_uniform_sample_in_window_order() -> None:
    from mlcycle.training.sampling import sample_train

    train = _frame(5000)
    first, sample = sample_train(train, 1000, seed=42)
    again, _ = sample_train(train, 1000, seed=42)
    other, _ = sample_train(train, 1000, seed=7)
    assert len(first) == 1000 and first.index.is_unique and set(first.index) <= set(train.index)
    assert list(first.index) == sorted(first.index), "the window's row order is kept"
    assert first.equals(again), "the same seed draws the same rows (reruns and the training cache)"
    assert not first.index.equals(other.index)
    # Uniform over the window: every tenth of it is represented about equally (100 rows expected in each).
    tenths = (pd.Series(first["x"]) // 500).value_counts()
    assert len(tenths) == 10 and tenths.min() > 60 and tenths.max() < 140
    assert sample.params() == {"max_train_rows": 1000, "rows_train_window": 5000, "train_sample_seed": 42}


def _write_splits(folder: Path, sizes: dict[str, int], target: str = "y") -> None:
    from mlcycle.storage.layout import split_file

    for name, rows in sizes.items():
        _frame(rows).rename(columns={"y": target}).to_parquet(folder / split_file(name), index=False)


def test_only_the_train_split_is_sampled_with_the_use_cases_seed(tmp_path: Path) -> None:
    from mlcycle.steps.train import read_splits
    from mlcycle.training.sampling import sample_train

    _write_splits(tmp_path, {"train": 3000, "valid": 2000, "test": 2000})
    bounded, sample = read_splits(_usecase(1500), tmp_path)
    assert len(bounded["train"]) == 1500 and sample.seed == get_usecase("yarnit").model.seed
    assert sample.window_rows == 3000 and sample.sampled
    assert len(bounded["valid"]) == 2000 and len(bounded["test"]) == 2000, "the gate's test set stays whole"
    in_memory, _ = sample_train(pd.read_parquet(tmp_path / "train.parquet"), 1500, sample.seed)
    assert bounded["train"]["x"].tolist() == in_memory["x"].tolist(), "the file's sample is the frame's"
    whole, unbounded = read_splits(_usecase(None), tmp_path)
    assert len(whole["train"]) == 3000 and not unbounded.sampled


def test_valid_and_test_are_scored_on_a_bounded_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The train step's valid and test metrics come from a seeded sample past `METRIC_SPLIT_MAX_ROWS` (evaluate
    scores the whole frozen test set for the gate)."""
    from mlcycle.steps import train
    from mlcycle.training.sampling import sample_train

    monkeypatch.setattr(train, "METRIC_SPLIT_MAX_ROWS", 800)
    _write_splits(tmp_path, {"train": 3000, "valid": 2000, "test": 700})
    splits, sample = train.read_splits(_usecase(None), tmp_path)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3000, 800, 700] and not sample.sampled
    expected, _ = sample_train(pd.read_parquet(tmp_path / "valid.parquet"), 800, get_usecase("yarnit").model.seed)
    assert splits["valid"]["x"].tolist() == expected["x"].tolist()


def test_the_bound_is_part_of_the_training_cache_key() -> None:
    """A version fitted on a sample is not reused for a whole window (or another bound)."""
    from mlcycle.steps.train import cache_key

    manifest = {"input_digests": {"2026-09-01": "abc"}, "days": {"train": ["2026-09-01"]}}
    unbounded = cache_key(_usecase(None), manifest)
    assert get_usecase("yarnit").split.max_train_rows == 2_000_000, "the shipped bound"
    assert cache_key(get_usecase("yarnit"), manifest) == cache_key(_usecase(2_000_000), manifest)
    assert len({unbounded, cache_key(_usecase(1000), manifest), cache_key(_usecase(2000), manifest)}) == 3


def test_the_sample_is_recorded_on_the_candidate_run(mlcycle_env: dict[str, str], tmp_path: Path) -> None:
    """The train step's `log_inputs` on a real MLflow run: the bound, the window's size and the seed are params."""
    import mlflow

    from mlcycle.steps.train import log_inputs, read_splits

    usecase = _usecase(1000)
    _write_splits(tmp_path, {"train": 4000, "valid": 500, "test": 500}, usecase.target.name)
    bounded, sample = read_splits(usecase, tmp_path)
    manifest = {"window": ["2026-09-01", "2026-09-14"], "days": {s: ["2026-09-01"] for s in bounded}}
    with mlflow.start_run() as run:
        log_inputs(usecase, "file:///features/ds=2026-09-14", manifest, bounded, sample)
    params = mlflow.get_run(run.info.run_id).data.params
    assert params["rows_train"] == "1000" and params["rows_train_window"] == "4000"
    assert params["max_train_rows"] == "1000" and params["train_sample_seed"] == str(usecase.model.seed)


def test_the_bound_must_be_positive() -> None:
    assert Split(max_train_rows=1).max_train_rows == 1
    with pytest.raises(ValueError, match="max_train_rows"):
        Split(max_train_rows=0)


def test_a_file_is_sampled_row_group_by_row_group_to_the_frames_rows(tmp_path: Path) -> None:
    """The file's sample is drawn one row group at a time (never the whole file in memory): the same rows, in the
    same order, as the in-memory frame's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.training.sampling import read_sample, sample_train

    frame = _frame(3000).reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "t.parquet", row_group_size=700)
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 5
    sampled, sample = read_sample(tmp_path / "t.parquet", 1000, seed=42, columns=["x"])
    expected, _ = sample_train(frame, 1000, seed=42)
    assert sampled["x"].tolist() == expected["x"].tolist() and list(sampled.columns) == ["x"]
    assert (sample.window_rows, sample.rows) == (3000, 1000)
    whole, unbounded = read_sample(tmp_path / "t.parquet", None, seed=42)
    assert whole.equals(frame) and not unbounded.sampled
