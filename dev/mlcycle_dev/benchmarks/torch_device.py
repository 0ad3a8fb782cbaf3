"""Benchmark: the torch MLP trainer on CUDA against the same machine's CPU, with only torch + numpy.

    PYTHONPATH=include:dev python -m mlcycle_dev.benchmarks.torch_device [--baseline plain|cpu]
        [--sizes 100000,1000000] [--devices auto|cpu,cuda] [--batch-sizes 256,8192,16384] [--cpu-threads 1] [--epochs 3]
        [--repeats 2] [--json FILE]

Two comparisons (``--baseline``):

- ``plain`` (the default): on each device, the production trainer against a plain PyTorch loop of the
  same MLP (:func:`plain_loop`: the tensor already on the device, index batches, forward, BCE loss,
  backward, AdamW step; no DataLoader, no validation, no clipping, no checks), same rows, batch size,
  layers, optimizer, lr and epochs. The two alternate (trainer, plain, trainer, plain, ...) so that drift
  in the machine's load hits both; rows/s is over every epoch of every repeat (median), and the ratio
  trainer / plain says what the trainer's extras cost. Both must reach a similar train loss.
- ``cpu``: the trainer on CUDA against the same trainer on the same machine's CPU (below).

Why a second training benchmark: ``mlcycle_dev.benchmarks.train`` builds YarnIt rows and one-hot encodes them
with pandas + scikit-learn, and the GPU machines lent to this project have PyTorch + CUDA but reach no
package registry, so the project's environment cannot be installed there. This one needs only torch and
numpy: it fits :class:`~mlcycle.training.torch_mlp.TorchMLPClassifier` (the production trainer, not a
copy of its loop) on a synthetic float32 matrix of the width the YarnIt preprocessor produces (49
columns: standardised numerics + one-hot blocks). An MLP's throughput depends on the matrix's shape, not
on its values, so rows/s are comparable with the training benchmark's torch rows. When scikit-learn is
missing, the few names the trainer imports from it (base classes, ``roc_auc_score``, ``check_is_fitted``)
are replaced by minimal stand-ins, which is enough to train and evaluate.

With ``--baseline cpu``, per (rows, device, batch size) it prints rows/s per epoch (training rows / median epoch seconds; 10 % of
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
import itertools
import json
import math
import os
import statistics
import sys
import time
import types
from typing import Any

from mlcycle_dev.benchmarks.harness import cpu_name, reset_peak_rss, status_mib

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
    # CPU seconds per epoch, from the trainer's own epoch callback: the first epoch's includes the fit's
    # set-up (data checks, network), like its wall seconds in ``history_`` do not; medians absorb it.
    cpu_marks = [time.process_time()]
    started = time.perf_counter()
    estimator.fit(X, y, epoch_callback=lambda epoch, record: cpu_marks.append(time.process_time()))
    fit_seconds = time.perf_counter() - started
    # The trainer holds out the same rows for every device (seeded permutation): score them again here.
    train_idx, valid_idx = held_out_split(X.shape[0], seed, estimator.validation_fraction)
    proba = estimator.predict_proba(X[valid_idx])[:, 1]
    epoch_seconds = [r["seconds"] for r in estimator.history_]
    train_rows = len(train_idx)
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
        "epoch_cpu_seconds": [b - a for a, b in itertools.pairwise(cpu_marks)],
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


def _release_free_heap() -> None:
    """Return the C heap's free pages to the OS where the C library is glibc (elsewhere: nothing to do)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:  # no loadable C library: the figures then include reused memory, as the docstring says
        trim = None
    if trim is not None:
        trim(0)


class _PeakMemory:
    """Peak memory a block added on ``device``: CUDA's allocator peak, else the process's peak RSS growth.

    On CPU the figure is what the block allocated beyond the resident memory before it (tensors,
    activations, optimizer state, copies); on CUDA it is the allocator's peak, inputs included. Before
    a CPU block, freed heap memory is handed back to the OS (glibc ``malloc_trim``): otherwise the
    second of two fits would reuse what the first freed and show no growth at all.
    """

    def __init__(self, device: str) -> None:
        self.on_cuda = device.startswith("cuda")
        self.mib: float | None = None

    def __enter__(self) -> _PeakMemory:
        import torch

        if self.on_cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            _release_free_heap()
            self._before = status_mib("VmRSS") if reset_peak_rss() else None
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.on_cuda:
            torch.cuda.synchronize()
            self.mib = torch.cuda.max_memory_allocated() / 2**20
        elif self._before is not None:
            peak = status_mib("VmHWM")
            self.mib = None if peak is None else max(0.0, peak - self._before)


def plain_loop(
    X: Any,
    y: Any,
    train_rows: Any,
    device: str,
    batch_size: int,
    epochs: int,
    seed: int,
    cpu_threads: int | None = 1,
) -> dict[str, Any]:
    """The baseline: a plain PyTorch training loop of the trainer's MLP on ``X[train_rows]``.

    The network, optimizer and their settings are the trainer's (``build_network``, ``build_optimizer``
    and ``TorchMLPClassifier()``'s default params), so only the loop around them differs: X goes to the device
    once, each epoch draws a random order on the device, and each batch is an index gather, forward,
    BCE-with-logits, backward and AdamW step. The loss is summed on the device and read once an
    epoch, which is also the only host sync (epoch times are then complete on CUDA too).
    """
    import torch
    from torch import nn

    from mlcycle.training.torch_loop import build_optimizer
    from mlcycle.training.torch_mlp import TorchMLPClassifier
    from mlcycle.training.torch_network import build_network, hidden_widths
    from mlcycle.training.torch_runtime import torch_threads

    params = TorchMLPClassifier().get_params()
    on = torch.device(device)
    with torch_threads(cpu_threads):
        torch.manual_seed(seed)
        model = build_network(X.shape[1], hidden_widths(params["hidden_sizes"]), params["dropout"]).to(on)
        optimizer = build_optimizer(model, params["lr"], params["weight_decay"])
        loss_fn = nn.BCEWithLogitsLoss()
        X_dev = torch.from_numpy(X).to(on)
        y_dev = torch.from_numpy(y.astype("float32")).to(on)
        rows = torch.from_numpy(train_rows).to(on)
        n_rows = len(rows)
        epoch_seconds, epoch_cpu_seconds, losses = [], [], []
        model.train()
        for _ in range(epochs):
            started, started_cpu = time.perf_counter(), time.process_time()
            order = rows[torch.randperm(n_rows, device=on)]
            total = torch.zeros((), device=on)
            for begin in range(0, n_rows, batch_size):
                idx = order[begin : begin + batch_size]
                loss = loss_fn(model(X_dev[idx]).squeeze(1), y_dev[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
            losses.append(float(total.item()) / n_rows)
            epoch_seconds.append(time.perf_counter() - started)
            epoch_cpu_seconds.append(time.process_time() - started_cpu)
    return {
        "epoch_seconds": epoch_seconds,
        "epoch_cpu_seconds": epoch_cpu_seconds,
        "losses": losses,
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }


def held_out_split(n_rows: int, seed: int, validation_fraction: float = 0.1) -> tuple[Any, Any]:
    """(train rows, validation rows) as the trainer chooses them in a default fit (seeded permutation)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n_rows)
    n_valid = max(1, round(validation_fraction * n_rows))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def compare_with_plain(
    X: Any, y: Any, device: str, batch_size: int, epochs: int, seed: int, repeats: int, cpu_threads: int
) -> dict[str, Any]:
    """The trainer and the plain loop, alternated ``repeats`` times each on the same rows and device."""
    import statistics as stats

    train_rows, _ = held_out_split(X.shape[0], seed)
    runs: dict[str, dict[str, list[float]]] = {
        name: {"epoch_seconds": [], "epoch_cpu_seconds": [], "final_loss": [], "peak_mib": []}
        for name in ("trainer", "plain")
    }
    device_name = ""
    for _ in range(repeats):
        for name in ("trainer", "plain"):
            with _PeakMemory(device) as peak:
                if name == "trainer":
                    r = run_case(X, y, device, batch_size, epochs, seed, cpu_threads)
                    device_name = r["device_name"]
                    seconds, cpu_seconds, final_loss = r["epoch_seconds"], r["epoch_cpu_seconds"], r["final_train_loss"]
                else:
                    p = plain_loop(X, y, train_rows, device, batch_size, epochs, seed, cpu_threads)
                    seconds, cpu_seconds, final_loss = p["epoch_seconds"], p["epoch_cpu_seconds"], p["losses"][-1]
            runs[name]["epoch_seconds"] += seconds
            runs[name]["epoch_cpu_seconds"] += cpu_seconds
            runs[name]["final_loss"].append(final_loss)
            if peak.mib is not None:
                runs[name]["peak_mib"].append(peak.mib)
    result: dict[str, Any] = {
        "rows": int(X.shape[0]),
        "train_rows": len(train_rows),
        "features": int(X.shape[1]),
        "device": device,
        "device_name": device_name,
        "cpu_threads": cpu_threads,
        "batch_size": batch_size,
        "epochs": epochs,
        "repeats": repeats,
    }
    for name, run in runs.items():
        result[name] = {
            "epoch_seconds": run["epoch_seconds"],
            "epoch_cpu_seconds": run["epoch_cpu_seconds"],
            "rows_per_second": len(train_rows) / stats.median(run["epoch_seconds"]),
            "rows_per_cpu_second": len(train_rows) / stats.median(run["epoch_cpu_seconds"]),
            "final_train_loss": stats.median(run["final_loss"]),
            "peak_mib": max(run["peak_mib"]) if run["peak_mib"] else None,
        }
    result["ratio"] = result["trainer"]["rows_per_second"] / result["plain"]["rows_per_second"]
    # On a shared machine the load stretches wall time but barely CPU time; on CUDA the host's CPU time
    # includes waiting for the GPU, so there the wall ratio is the one that counts.
    result["cpu_ratio"] = result["trainer"]["rows_per_cpu_second"] / result["plain"]["rows_per_cpu_second"]
    result["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result["abs_loss_diff"] = abs(result["trainer"]["final_train_loss"] - result["plain"]["final_train_loss"])
    return result


def _warm_up(devices: list[str], seed: int, cpu_threads: int) -> None:
    """One tiny fit of each on each device: lazy initialisation (CUDA context, cuBLAS handles) is not timed."""
    X, y = synthetic_matrix(2_000, seed=seed)
    for device in devices:
        compare_with_plain(X, y, device, 256, 1, seed, 1, cpu_threads)


def _mib(value: float | None) -> str:
    return f"{value:,.0f} MiB" if value is not None else "n/a"


def _run_plain_baseline(args: argparse.Namespace, devices: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    _warm_up(devices, args.seed, args.cpu_threads)
    for n_rows in [int(s) for s in args.sizes.split(",") if s]:
        X, y = synthetic_matrix(n_rows)
        for device in devices:
            for batch_size in [int(b) for b in args.batch_sizes.split(",") if b]:
                r = compare_with_plain(X, y, device, batch_size, args.epochs, args.seed, args.repeats, args.cpu_threads)
                results.append(r)
                t, p = r["trainer"], r["plain"]
                print(
                    f"  {n_rows:>9,} rows | {device:6s} batch {batch_size:>5} | trainer {t['rows_per_second']:>11,.0f} "
                    f"rows/s, plain {p['rows_per_second']:>11,.0f} rows/s: {r['ratio']:.2f}x (per CPU s "
                    f"{r['cpu_ratio']:.2f}x) | peak {_mib(t['peak_mib'])} / {_mib(p['peak_mib'])} | train loss "
                    f"{t['final_train_loss']:.4f} / {p['final_train_loss']:.4f} | load {r['load_average']:.1f}",
                    flush=True,
                )
                # Same network, same init, another shuffle order and the trainer's clipping: the losses
                # differ a little; a loop that does not learn, or learns something else, differs by more.
                if r["abs_loss_diff"] > 0.02:
                    failures.append(
                        f"trainer and plain loop reach different losses: {n_rows} rows on {device}, "
                        f"batch {batch_size}: {t['final_train_loss']:.4f} vs {p['final_train_loss']:.4f}"
                    )
    return results, failures


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
    parser.add_argument(
        "--baseline",
        choices=("plain", "cpu"),
        default="plain",
        help="plain: the trainer vs a plain PyTorch loop on each device; cpu: the trainer on CUDA vs on CPU",
    )
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument(
        "--devices", default="auto", help="comma-separated: cpu, cuda (auto: cpu, and cuda where there is one)"
    )
    parser.add_argument(
        "--batch-sizes", default="256,8192,16384", help="comma-separated mini-batch sizes (256: the trainer's default)"
    )
    parser.add_argument(
        "--cpu-threads", type=int, default=1, help="torch threads for the CPU fits (1: the trainer's default)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (no early stopping)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="--baseline plain: fits of each, alternated (trainer, plain, ...)"
    )
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
    devices = (
        (["cpu", "cuda"] if cuda else ["cpu"]) if args.devices == "auto" else [d for d in args.devices.split(",") if d]
    )
    if "cuda" in devices and not cuda:
        print("FAILED: --devices names cuda, but torch sees no CUDA device (a CPU build of torch, or no driver)")
        return 2
    if args.baseline == "plain":
        results, failures = _run_plain_baseline(args, devices)
    else:
        results, failures = _run_cpu_baseline(args, devices)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def _run_cpu_baseline(args: argparse.Namespace, devices: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    import numpy as np
    import torch

    cuda = torch.cuda.is_available()
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
    return results, failures


if __name__ == "__main__":
    raise SystemExit(main())
