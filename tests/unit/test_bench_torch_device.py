"""The torch benchmark's plain-loop baseline (mlcycle_dev.benchmarks.torch_device): tiny sizes, no timing thresholds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.settings import REPO_ROOT
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


# What a GPU machine lacks: the benchmark must run there with torch and numpy alone.
_TORCH_AND_NUMPY_ONLY = """
import sys
for name in ("sklearn", "pandas", "scipy", "pydantic", "mlflow", "pyarrow", "yaml"):
    sys.modules[name] = None  # importing it now raises ImportError
from mlcycle_dev.benchmarks.torch_device import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_side_by_side_run_with_torch_and_numpy_only(tmp_path: Path) -> None:
    out = tmp_path / "torch.json"
    argv = ["--devices", "cpu", "--sizes", "4000", "--batch-sizes", "512", "--epochs", "2", "--repeats", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / d) for d in ("include", "dev"))}
    run = subprocess.run(
        [sys.executable, "-c", _TORCH_AND_NUMPY_ONLY, *argv, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "scikit-learn absent (stand-ins used)" in run.stdout
    (result,) = json.loads(out.read_text())
    assert (result["rows"], result["train_rows"], result["batch_size"], result["device"]) == (4_000, 3_600, 512, "cpu")
    for name in ("trainer", "plain"):
        side = result[name]
        assert len(side["epoch_seconds"]) == len(side["epoch_cpu_seconds"]) == 4  # 2 repeats x 2 epochs
        assert side["rows_per_second"] > 0 and side["rows_per_cpu_second"] > 0
        assert side["peak_mib"] is not None
    assert result["ratio"] == pytest.approx(result["trainer"]["rows_per_second"] / result["plain"]["rows_per_second"])
    assert result["abs_loss_diff"] <= 0.02
    assert "trainer" in run.stdout and "plain" in run.stdout


def test_cuda_asked_for_without_one_fails(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert bench.main(["--devices", "cuda", "--sizes", "1000"]) == 2
    assert "no CUDA device" in capsys.readouterr().out
