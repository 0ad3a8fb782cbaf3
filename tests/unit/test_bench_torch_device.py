"""The torch benchmark's plain-loop baseline (mlcycle_dev.benchmarks.torch_device): tiny sizes, no timing thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle_dev.benchmarks import torch_device as bench


def test_plain_loop_trains_the_trainers_network() -> None:
    from mlcycle.training.torch_mlp import TorchMLPClassifier

    X, y = bench.synthetic_matrix(3_000)
    train_rows, valid_rows = bench.held_out_split(len(X), seed=42)
    assert len(train_rows) == 2_700 and len(set(train_rows) | set(valid_rows)) == 3_000
    plain = bench.plain_loop(X, y, train_rows, "cpu", 256, 3, seed=42)
    assert len(plain["epoch_seconds"]) == len(plain["epoch_cpu_seconds"]) == len(plain["losses"]) == 3
    assert plain["losses"][-1] < plain["losses"][0]  # it learns
    model = TorchMLPClassifier(epochs=1, patience=None).fit(X, y)
    assert plain["n_parameters"] == sum(p.numel() for p in model.module_.parameters())


def test_side_by_side_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "torch.json"
    argv = ["--devices", "cpu", "--sizes", "4000", "--batch-sizes", "512", "--epochs", "2", "--repeats", "2"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert (result["rows"], result["train_rows"], result["batch_size"], result["device"]) == (4_000, 3_600, 512, "cpu")
    for name in ("trainer", "plain"):
        side = result[name]
        assert len(side["epoch_seconds"]) == len(side["epoch_cpu_seconds"]) == 4  # 2 repeats x 2 epochs
        assert side["rows_per_second"] > 0 and side["rows_per_cpu_second"] > 0
    assert result["ratio"] == pytest.approx(result["trainer"]["rows_per_second"] / result["plain"]["rows_per_second"])
    assert result["abs_loss_diff"] <= 0.02
    assert "trainer" in capsys.readouterr().out
