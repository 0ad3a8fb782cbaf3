"""The PyTorch MLP trainer: quality on YarnIt, reproducibility, NaN/inf guards, resume after a kill, pyfunc."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from torch import nn

from mlcycle.config import UseCase, get_usecase
from mlcycle.synthetic.yarnit import generate_day
from mlcycle.training import torch_loop
from mlcycle.training.pyfunc import log_epoch_history, log_torch_pipeline
from mlcycle.training.torch_checkpoint import read_checkpoint
from mlcycle.training.torch_loop import NonFiniteTrainingError
from mlcycle.training.torch_mlp import TorchMLPClassifier, fit_pipeline
from mlcycle.training.torch_runtime import resolve_device
from mlcycle.training.trainers import build_model

# Small and quick: ~13k training rows, a handful of epochs.
FAST = {"epochs": 6, "batch_size": 256, "patience": None, "seed": 7}


def _usecase() -> UseCase:
    base = get_usecase("yarnit")
    # The one-hot + impute + scale preprocessor of the linear family is the torch model's input.
    return base.model_copy(update={"model": base.model.model_copy(update={"family": "sklearn_logreg", "params": {}})})


def torch_pipeline(usecase: UseCase, **params: Any) -> Pipeline:
    pipeline = build_model(usecase)
    pipeline.steps[-1] = ("model", TorchMLPClassifier(**params))
    return pipeline


def features(usecase: UseCase, table: pd.DataFrame) -> pd.DataFrame:
    return table[[c.name for c in usecase.features]]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    days = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(9)]
    frames = [generate_day(d, base_rows=2000) for d in days]
    return pd.concat(frames[:7], ignore_index=True), pd.concat(frames[7:], ignore_index=True)


@pytest.fixture(scope="module")
def matrices(data: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The preprocessed (numeric) train/test matrices the network itself sees."""
    usecase = _usecase()
    train, test = data
    preprocess = build_model(usecase)[:-1]
    X_train = np.asarray(preprocess.fit_transform(features(usecase, train)), dtype=np.float32)
    X_test = np.asarray(preprocess.transform(features(usecase, test)), dtype=np.float32)
    return X_train, train["purchased"].to_numpy(), X_test, test["purchased"].to_numpy()


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, pd.DataFrame]) -> Pipeline:
    usecase = _usecase()
    train, _ = data
    return torch_pipeline(usecase, epochs=8, patience=3).fit(features(usecase, train), train["purchased"])


def test_minimum_quality_in_the_sklearn_pipeline(fitted: Pipeline, data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    usecase = _usecase()
    _, test = data
    proba = fitted.predict_proba(features(usecase, test))
    assert proba.shape == (len(test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    auc = roc_auc_score(test["purchased"], proba[:, 1])
    assert auc > 0.7, f"torch_mlp: test ROC AUC {auc:.3f}"
    assert list(fitted.classes_) == [0, 1]
    assert set(np.unique(fitted.predict(features(usecase, test)))) <= {0, 1}


def test_history_has_one_record_per_epoch(fitted: Pipeline) -> None:
    model: TorchMLPClassifier = fitted[-1]
    assert model.device_ == "cpu"
    assert model.resumed_from_epoch_ is None
    assert [int(r["epoch"]) for r in model.history_] == list(range(1, model.n_epochs_ + 1))
    assert 1 <= model.best_epoch_ <= model.n_epochs_ <= 8
    for record in model.history_:
        assert set(record) == {"epoch", "train_loss", "valid_loss", "valid_auc", "seconds"}
        assert all(np.isfinite(v) for v in record.values())
    # Learning happened: the validation loss of the best epoch beats the first epoch's.
    assert model.history_[model.best_epoch_ - 1]["valid_loss"] < model.history_[0]["valid_loss"]


def test_eval_set_drives_early_stopping_and_the_best_epoch_is_kept(data) -> None:
    usecase = _usecase()
    train, test = data
    train_days, valid_days = train.iloc[: len(train) * 5 // 7], train.iloc[len(train) * 5 // 7 :]
    pipeline = fit_pipeline(
        torch_pipeline(usecase, **{**FAST, "epochs": 12, "patience": 2, "lr": 5e-3}),
        features(usecase, train_days),
        train_days["purchased"],
        features(usecase, valid_days),
        valid_days["purchased"],
    )
    model: TorchMLPClassifier = pipeline[-1]
    losses = [r["valid_loss"] for r in model.history_]
    assert model.best_epoch_ == int(np.argmin(losses)) + 1
    # The valid curve is the given split's, and the weights kept are those of the best epoch.
    score = pipeline.predict_proba(features(usecase, valid_days))[:, 1]
    best = model.history_[model.best_epoch_ - 1]
    np.testing.assert_allclose(roc_auc_score(valid_days["purchased"], score), best["valid_auc"], rtol=1e-6)
    # It stopped early (lr is high enough for that), after exactly `patience` epochs without improvement.
    assert model.n_epochs_ < 12
    assert model.n_epochs_ == model.best_epoch_ + 2
    assert roc_auc_score(test["purchased"], pipeline.predict_proba(features(usecase, test))[:, 1]) > 0.7


def test_same_seed_same_predictions_other_seed_differs(matrices) -> None:
    X_train, y_train, X_test, _ = matrices
    params = {**FAST, "epochs": 2}
    first = TorchMLPClassifier(**params).fit(X_train, y_train).predict_proba(X_test)
    second = TorchMLPClassifier(**params).fit(X_train, y_train).predict_proba(X_test)
    np.testing.assert_array_equal(first, second)
    other = TorchMLPClassifier(**{**params, "seed": 8}).fit(X_train, y_train).predict_proba(X_test)
    assert not np.allclose(first, other)
    # clone() keeps every param (sklearn compatibility), so a cloned estimator trains the same model.
    cloned = clone(TorchMLPClassifier(**params)).fit(X_train, y_train).predict_proba(X_test)
    np.testing.assert_array_equal(first, cloned)


def test_hidden_sizes_from_usecase_yaml_scalars(matrices) -> None:
    X_train, y_train, X_test, _ = matrices
    as_text = TorchMLPClassifier(**{**FAST, "epochs": 1, "hidden_sizes": "16,8"}).fit(X_train, y_train)
    as_tuple = TorchMLPClassifier(**{**FAST, "epochs": 1, "hidden_sizes": (16, 8)}).fit(X_train, y_train)
    assert [m.out_features for m in as_text.module_ if isinstance(m, nn.Linear)] == [16, 8, 1]
    np.testing.assert_array_equal(as_text.predict_proba(X_test), as_tuple.predict_proba(X_test))
    with pytest.raises(ValueError, match="hidden_sizes"):
        TorchMLPClassifier(hidden_sizes="16,wide").fit(X_train, y_train)


def test_non_finite_inputs_are_rejected(matrices) -> None:
    X_train, y_train, _, _ = matrices
    broken = X_train.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\).*column\(s\) \[2\]"):
        TorchMLPClassifier(**FAST).fit(broken, y_train)
    with pytest.raises(ValueError, match="non-finite"):
        TorchMLPClassifier(**FAST).fit(np.full((40, 3), 1e300), np.arange(40) % 2)  # beyond float32
    model = TorchMLPClassifier(**{**FAST, "epochs": 1}).fit(X_train[:500], y_train[:500])
    with pytest.raises(ValueError, match="non-finite"):
        model.predict_proba(broken[:10])


def test_exploding_loss_raises_naming_epoch_and_batch(matrices) -> None:
    X_train, y_train, _, _ = matrices
    with pytest.raises(NonFiniteTrainingError, match=r"non-finite loss .* at epoch 1 batch \d+"):
        TorchMLPClassifier(**{**FAST, "lr": 1e30, "max_grad_norm": None}).fit(X_train * 1e3, y_train)
    assert issubclass(NonFiniteTrainingError, FloatingPointError)


class _PoisonGradient(torch.autograd.Function):
    """Identity forward; NaN gradient backward (a finite loss with non-finite gradients)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan")


class _Poison(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _PoisonGradient.apply(x)
        return out


def test_non_finite_gradient_raises(matrices, monkeypatch: pytest.MonkeyPatch) -> None:
    X_train, y_train, _, _ = matrices
    real = torch_loop.build_network

    def poisoned(*args: Any) -> nn.Sequential:
        layers = list(real(*args))
        # After the first Linear: the loss stays finite, that layer's weights get NaN gradients.
        return nn.Sequential(layers[0], _Poison(), *layers[1:])

    monkeypatch.setattr(torch_loop, "build_network", poisoned)
    with pytest.raises(NonFiniteTrainingError, match=r"non-finite gradient norm \(nan\) at epoch 1 batch 1"):
        TorchMLPClassifier(**FAST).fit(X_train, y_train)


def test_a_non_finite_step_is_skipped_and_named(matrices, monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop checks once per epoch, not per batch: the bad step must still leave the weights as they
    # were, training goes on from them, and the error names the first bad batch, not the epoch's end.
    X_train, y_train, _, _ = matrices
    backward_calls = [0]

    class _PoisonThirdStep(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return x.view_as(x)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            backward_calls[0] += 1
            return grad * float("nan") if backward_calls[0] == 3 else grad

    class _PoisonThird(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = _PoisonThirdStep.apply(x)
            return out

    real_network, real_optimizer = torch_loop.build_network, torch_loop.build_optimizer
    weights_after_step: list[list[torch.Tensor]] = []

    def poisoned(*args: Any) -> nn.Sequential:
        layers = list(real_network(*args))
        return nn.Sequential(layers[0], _PoisonThird(), *layers[1:])

    def recording(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
        optimizer = real_optimizer(module, lr, weight_decay)
        optimizer.register_step_post_hook(
            lambda *_: weights_after_step.append([p.detach().clone() for p in module.parameters()])
        )
        return optimizer

    monkeypatch.setattr(torch_loop, "build_network", poisoned)
    monkeypatch.setattr(torch_loop, "build_optimizer", recording)
    with pytest.raises(NonFiniteTrainingError, match=r"non-finite gradient norm \(nan\) at epoch 1 batch 3:"):
        TorchMLPClassifier(**{**FAST, "epochs": 2}).fit(X_train[:2000], y_train[:2000])
    assert len(weights_after_step) == 8  # 1,800 training rows in batches of 256: the epoch ran to its end
    assert all(torch.equal(a, b) for a, b in zip(weights_after_step[1], weights_after_step[2], strict=True))
    assert all(torch.isfinite(w).all() for w in weights_after_step[-1])
    assert not all(torch.equal(a, b) for a, b in zip(weights_after_step[2], weights_after_step[3], strict=True))


def test_cuda_falls_back_to_cpu_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto", use_gpu=True).type == "cpu"
    with pytest.warns(UserWarning, match="CUDA is not available"):
        assert resolve_device("cuda", use_gpu=True).type == "cpu"
    assert resolve_device("auto", use_gpu=False).type == "cpu"


CHILD = """
import json, sys, time
import numpy as np
from mlcycle.training.torch_mlp import TorchMLPClassifier

folder, params, stop_after = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])

def on_epoch(epoch, record):
    print(f"EPOCH {epoch}", flush=True)
    if epoch == stop_after:
        time.sleep(600)  # the test kills us here, with epoch `stop_after` checkpointed

X, y = np.load(folder + "/X.npy"), np.load(folder + "/y.npy")
TorchMLPClassifier(**params).fit(X, y, epoch_callback=on_epoch)
print("FINISHED", flush=True)
"""


def test_killed_run_resumes_from_its_checkpoint(matrices, tmp_path: Path) -> None:
    X_train, y_train, X_test, _ = matrices
    checkpoints = tmp_path / "checkpoints"
    params = {**FAST, "checkpoint_dir": str(checkpoints)}
    stop_after = 3
    np.save(tmp_path / "X.npy", X_train)
    np.save(tmp_path / "y.npy", y_train)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), json.dumps(params), str(stop_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(180, child.kill)  # never hang the suite if the child misbehaves
    watchdog.start()
    try:
        seen = []
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line.strip())
            if line.strip() == f"EPOCH {stop_after}":
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, (seen, child.stderr.read() if child.stderr else "")
    assert seen == [f"EPOCH {e}" for e in range(1, stop_after + 1)]

    (checkpoint,) = checkpoints.glob("torchmlp-*.pt")
    saved = read_checkpoint(checkpoint)
    assert saved["epoch"] == stop_after and not saved["finished"]
    assert not list(checkpoints.glob(".*tmp*")), "a temp file was left behind"

    resumed = TorchMLPClassifier(**params).fit(X_train, y_train)
    assert resumed.resumed_from_epoch_ == stop_after
    assert resumed.n_epochs_ == FAST["epochs"]
    uninterrupted = TorchMLPClassifier(**FAST).fit(X_train, y_train)
    assert uninterrupted.resumed_from_epoch_ is None
    for got, want in zip(resumed.history_, uninterrupted.history_, strict=True):
        assert got["epoch"] == want["epoch"]
        np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=1e-6)
        np.testing.assert_allclose(got["valid_loss"], want["valid_loss"], rtol=1e-6)
    np.testing.assert_allclose(resumed.predict_proba(X_test), uninterrupted.predict_proba(X_test), rtol=0, atol=1e-6)

    # The checkpoint now says "finished": fitting again restores the result without training.
    again = TorchMLPClassifier(**params).fit(X_train, y_train)
    assert again.resumed_from_epoch_ == FAST["epochs"]
    np.testing.assert_array_equal(again.predict_proba(X_test), resumed.predict_proba(X_test))
    # Other data (or other params) never picks up that checkpoint.
    other = TorchMLPClassifier(**params).fit(X_train[:-10], y_train[:-10])
    assert other.resumed_from_epoch_ is None
    other_params = TorchMLPClassifier(**{**params, "lr": 2e-3}).fit(X_train, y_train)
    assert other_params.resumed_from_epoch_ is None


def test_pyfunc_round_trip(
    fitted: Pipeline, data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usecase = _usecase()
    _, test = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert mlflow.get_tracking_uri() == uri
    experiment = mlflow.create_experiment("torch-pyfunc", artifact_location=(tmp_path / "artifacts").as_uri())
    frame = features(usecase, test)
    example = frame.head(5)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = log_torch_pipeline(
            fitted,
            name="model",
            signature=infer_signature(example, fitted.predict_proba(example)),
            input_example=example,
            pip_requirements=["torch==2.13.0", "scikit-learn", "skops", "pandas", "numpy"],
        )
        log_epoch_history(fitted[-1].history_)
    assert (tmp_path / "artifacts").is_dir()

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    served = np.asarray(loaded.predict(frame))
    assert served.shape == (len(frame), 2)
    np.testing.assert_array_equal(served, fitted.predict_proba(frame))

    curve = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch_valid_auc")
    assert [m.step for m in curve] == [int(r["epoch"]) for r in fitted[-1].history_]
    np.testing.assert_allclose([m.value for m in curve], [r["valid_auc"] for r in fitted[-1].history_])


def test_log_torch_pipeline_rejects_other_pipelines(data) -> None:
    usecase = _usecase()
    train, _ = data
    sklearn_pipeline = build_model(usecase).fit(features(usecase, train.head(500)), train["purchased"].head(500))
    with pytest.raises(TypeError, match="not TorchMLPClassifier"):
        log_torch_pipeline(sklearn_pipeline, name="model")
    with pytest.raises(ValueError, match="not fitted"):
        log_torch_pipeline(torch_pipeline(usecase, **FAST), name="model")
