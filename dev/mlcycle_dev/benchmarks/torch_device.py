"""Benchmark: the torch MLP trainer on CUDA against the same machine's CPU, with only torch + numpy.

    PYTHONPATH=include:dev python -m mlcycle_dev.benchmarks.torch_device [--sizes 100000,1000000]
        [--devices cpu,cuda] [--batch-sizes 256,4096] [--cpu-threads 1] [--epochs 3] [--json FILE]

Why a second training benchmark: ``mlcycle_dev.benchmarks.train`` builds YarnIt rows and one-hot encodes them
with pandas + scikit-learn, and the GPU machines lent to this project have PyTorch + CUDA but reach no
package registry, so the project's environment cannot be installed there. This one needs only torch and
numpy: it fits :class:`~mlcycle.training.torch_mlp.TorchMLPClassifier` (the production trainer, not a
copy of its loop) on a synthetic float32 matrix of the width the YarnIt preprocessor produces (49
columns: standardised numerics + one-hot blocks). An MLP's throughput depends on the matrix's shape, not
on its values, so rows/s are comparable with the training benchmark's torch rows. When scikit-learn is
missing, the few names the trainer imports from it (base classes, ``roc_auc_score``, ``check_is_fitted``)
are replaced by minimal stand-ins, which is enough to train and evaluate.

Per (rows, device, batch size) it prints rows/s per epoch (training rows / median epoch seconds; 10 % of
the rows are held out for per-epoch validation, as in a default fit), the fit's seconds, peak GPU memory,
the final train loss and validation AUC. It then checks the CUDA path: every loss finite, and the same
seed on CPU and CUDA giving close results (loss, AUC, max |p_cpu - p_cuda| on the validation rows) --
close, not identical: cuBLAS and the CPU kernels sum in different orders, and over thousands of AdamW
steps the weights drift apart, so the long runs are compared on loss and AUC, and a short same-seed
run (18 steps) must give the same predictions to float32 rounding.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import math
import os
import statistics
import sys
import time
import types
from typing import Any

from mlcycle_dev.benchmarks.harness import cpu_name

N_FEATURES = 49  # width of the YarnIt one-hot + scaled matrix (see mlcycle_dev.benchmarks.train's output)
_N_NUMERIC = 9
_ONE_HOT_BLOCKS = (12, 10, 8, 6, 4)  # 9 + 40 = 49 columns


def _install_sklearn_stand_ins() -> bool:
    """Make ``mlcycle.training.torch_mlp`` importable without scikit-learn; False when sklearn is there.

    Only for this benchmark on machines that cannot install the project's environment: the stand-ins
    cover exactly what the trainer's fit / predict path touches.
    """
    try:
        import sklearn  # noqa: F401
    except ImportError:
        pass
    else:
        return False
    import numpy as np

    class BaseEstimator:
        def get_params(self, deep: bool = True) -> dict[str, Any]:
            import inspect

            names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
            return {name: getattr(self, name) for name in names}

    class ClassifierMixin:
        pass

    def roc_auc_score(y: Any, score: Any) -> float:
        # Mann-Whitney U with average ranks for ties: the same value sklearn returns for binary y.
        y_arr = np.asarray(y).astype(bool)
        s = np.asarray(score, dtype=np.float64)
        order = np.argsort(s, kind="mergesort")
        ranks = np.empty(len(s), dtype=np.float64)
        sorted_s = s[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
        ends = np.r_[starts[1:], len(s)]
        for a, b in zip(starts, ends, strict=True):
            ranks[order[a:b]] = (a + b + 1) / 2.0
        n_pos, n_neg = int(y_arr.sum()), int((~y_arr).sum())
        return float((ranks[y_arr].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    def check_is_fitted(estimator: Any, attributes: str) -> None:
        if not hasattr(estimator, attributes):
            raise AttributeError(f"{type(estimator).__name__} is not fitted")

    modules: dict[str, types.ModuleType] = {}
    for name in (
        "sklearn",
        "sklearn.base",
        "sklearn.metrics",
        "sklearn.pipeline",
        "sklearn.utils",
        "sklearn.utils.validation",
    ):
        module = types.ModuleType(name)
        # torch._dynamo calls importlib.util.find_spec("sklearn"), which raises on a module without a spec.
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        modules[name] = module
    modules["sklearn.base"].BaseEstimator = BaseEstimator  # type: ignore[attr-defined]
    modules["sklearn.base"].ClassifierMixin = ClassifierMixin  # type: ignore[attr-defined]
    modules["sklearn.metrics"].roc_auc_score = roc_auc_score  # type: ignore[attr-defined]
    modules["sklearn.pipeline"].Pipeline = object  # type: ignore[attr-defined]
    modules["sklearn.utils.validation"].check_is_fitted = check_is_fitted  # type: ignore[attr-defined]
    sys.modules.update(modules)
    return True


def synthetic_matrix(n_rows: int, seed: int = 7) -> tuple[Any, Any]:
    """(X float32 (n, 49), y int {0, 1}): scaled numerics + one-hot blocks, a non-linear label (~25 % positive)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    numeric = rng.standard_normal((n_rows, _N_NUMERIC), dtype=np.float32)
    blocks, codes = [], []
    for width in _ONE_HOT_BLOCKS:
        code = rng.integers(0, width, n_rows)
        codes.append(code)
        blocks.append(np.eye(width, dtype=np.float32)[code])
    X = np.ascontiguousarray(np.hstack([numeric, *blocks]))
    # An interaction and a threshold make the label worth an MLP; the noise keeps AUC below 1.
    logit = (
        1.2 * numeric[:, 0]
        - 0.8 * numeric[:, 1] * numeric[:, 2]
        + 0.9 * (numeric[:, 3] > 0.5)
        + 0.15 * (codes[0] % 4)
        - 0.3 * (codes[1] == 2)
        - 1.6
    )
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return X, y


def run_case(
    X: Any,
    y: Any,
    device: str,
    batch_size: int,
    epochs: int,
    seed: int,
    cpu_threads: int = 1,
    dropout: float = 0.1,  # the trainer's default
) -> dict[str, Any]:
    """One fit of the production trainer; returns timings and what the same-seed comparison needs."""
    import numpy as np
    import torch

    from mlcycle.training.torch_mlp import TorchMLPClassifier

    estimator = TorchMLPClassifier(
        epochs=epochs,
        batch_size=batch_size,
        patience=None,
        seed=seed,
        device=device,
        use_gpu=device != "cpu",
        cpu_threads=cpu_threads,
        dropout=dropout,
    )
    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    estimator.fit(X, y)
    fit_seconds = time.perf_counter() - started
    # The trainer holds out the same rows for every device (seeded permutation): score them again here.
    n_valid = max(1, round(estimator.validation_fraction * X.shape[0]))
    valid_idx = np.sort(np.random.default_rng(seed).permutation(X.shape[0])[:n_valid])
    proba = estimator.predict_proba(X[valid_idx])[:, 1]
    epoch_seconds = [r["seconds"] for r in estimator.history_]
    train_rows = X.shape[0] - n_valid
    return {
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "device": estimator.device_,
        "device_name": torch.cuda.get_device_name(0) if on_cuda else cpu_name(),
        "cpu_threads": estimator.cpu_threads,
        "batch_size": batch_size,
        "epochs": epochs,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "epoch_rows_per_second": train_rows / statistics.median(epoch_seconds),
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
        "losses_finite": all(
            math.isfinite(r["train_loss"]) and math.isfinite(r["valid_loss"]) for r in estimator.history_
        ),
        "final_train_loss": estimator.history_[-1]["train_loss"],
        "final_valid_loss": estimator.history_[-1]["valid_loss"],
        "final_valid_auc": estimator.history_[-1]["valid_auc"],
        "_proba": proba,
    }


def _parity_check(seed: int) -> list[str]:
    """Same seed, same rows, 18 steps on CPU and CUDA: predictions must match to float32 rounding.

    The long runs can only be compared on quality (their weights drift apart over thousands of steps);
    after a few steps any difference beyond rounding means the CUDA path computes something else.
    Dropout is off here: its masks come from the device's own generator (CPU Mersenne Twister, CUDA
    Philox), so with dropout the same seed is not the same computation on the two devices. Weight init
    and shuffling use CPU generators in the trainer, so they are identical.
    """
    import numpy as np

    X, y = synthetic_matrix(5_000, seed=11)
    cpu, gpu = (run_case(X, y, device, 256, 1, seed, dropout=0.0) for device in ("cpu", "cuda"))
    diff = float(np.max(np.abs(cpu["_proba"] - gpu["_proba"])))
    print(f"  parity: 1 epoch (18 steps) on 5,000 rows, dropout 0, same seed: max |p_cpu - p_cuda| = {diff:.1e}")
    return [] if diff < 1e-3 else [f"parity: CPU and CUDA predictions differ by {diff:.1e} after 18 steps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda")
    parser.add_argument("--batch-sizes", default="256,4096", help="comma-separated mini-batch sizes")
    parser.add_argument(
        "--cpu-threads", type=int, default=1, help="torch threads for the CPU fits (1: the trainer's default)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (no early stopping)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    stubbed = _install_sklearn_stand_ins()
    import numpy as np
    import torch

    cuda = torch.cuda.is_available()
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, CUDA available: {cuda}"
        + (f" ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})" if cuda else "")
        + f"; CPU {cpu_name()}, {os.cpu_count()} cores; scikit-learn "
        + ("absent (stand-ins used)" if stubbed else "present")
    )
    devices = [d for d in args.devices.split(",") if d and (d == "cpu" or cuda)]
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    if cuda and "cpu" in devices and "cuda" in devices:
        failures += _parity_check(args.seed)
    for n_rows in [int(s) for s in args.sizes.split(",") if s]:
        X, y = synthetic_matrix(n_rows)
        by_key: dict[tuple[str, int], dict[str, Any]] = {}
        for batch_size in [int(b) for b in args.batch_sizes.split(",") if b]:
            for device in devices:
                r = run_case(X, y, device, batch_size, args.epochs, args.seed, args.cpu_threads)
                by_key[(device, batch_size)] = r
                print(
                    f"  {n_rows:>9,} rows x {r['features']} | {r['device']:6s} batch {batch_size:>5} "
                    + (f"threads {r['cpu_threads']:>2} | " if r["device"] == "cpu" else "           | ")
                    + f"{r['epoch_rows_per_second']:>12,.0f} rows/s per epoch (median epoch "
                    f"{statistics.median(r['epoch_seconds']):6.2f}s) | fit {r['fit_seconds']:7.2f}s | "
                    f"loss {r['final_train_loss']:.4f} valid AUC {r['final_valid_auc']:.4f}"
                    + (f" | GPU peak {r['gpu_peak_mib']:.0f} MiB" if r["gpu_peak_mib"] else ""),
                    flush=True,
                )
                if not r["losses_finite"]:
                    failures.append(f"non-finite loss: {n_rows} rows on {device}, batch {batch_size}")
            cpu, gpu = by_key.get(("cpu", batch_size)), by_key.get(("cuda", batch_size))
            if cpu and gpu:
                diff = np.abs(cpu["_proba"] - gpu["_proba"])
                d_loss = abs(cpu["final_train_loss"] - gpu["final_train_loss"])
                d_auc = abs(cpu["final_valid_auc"] - gpu["final_valid_auc"])
                speedup = gpu["epoch_rows_per_second"] / cpu["epoch_rows_per_second"]
                gpu.update(
                    speedup_vs_cpu=speedup,
                    abs_loss_diff_vs_cpu=d_loss,
                    abs_auc_diff_vs_cpu=d_auc,
                    mean_abs_proba_diff_vs_cpu=float(diff.mean()),
                    max_abs_proba_diff_vs_cpu=float(diff.max()),
                )
                print(
                    f"  {'':>9} CUDA vs CPU, batch {batch_size}: {speedup:5.1f}x rows/s; same seed: "
                    f"|d loss| {d_loss:.2e}, |d AUC| {d_auc:.2e}, |d p| mean {diff.mean():.2e} max {diff.max():.2e}"
                )
                # Over thousands of AdamW steps the two summation orders drift apart (single
                # predictions by up to ~0.1), but the model's quality must not: a broken device path
                # (wrong rows, no learning) moves these by far more.
                if d_auc > 0.01 or d_loss > 0.01:
                    failures.append(f"CPU and CUDA disagree: {n_rows} rows, batch {batch_size}")
        results += [{k: v for k, v in r.items() if not k.startswith("_")} for r in by_key.values()]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
