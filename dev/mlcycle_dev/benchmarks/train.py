"""Benchmark: training throughput of the model families on YarnIt-like data at 100k and 1M rows.

    python -m mlcycle_dev.benchmarks.train [--sizes 100000,1000000] [--device cpu|cuda|auto]
                                       [--models hgb,logreg,torch] [--epochs 3] [--batch-size 256]

Each (model, size) case runs in a fresh interpreter, so its peak resident memory is its own and no
case warms another's caches. A case generates its rows with `mlcycle.synthetic.yarnit.generate_day`
(consecutive days at up to 400k base rows each, cut to exactly the size), fits the preprocessor the
family uses, then times the model's fit on the preprocessed matrix:

- sklearn HistGradientBoosting (the use case's params, ordinal-encoded categoricals), rows/s = rows / fit s;
- sklearn LogisticRegression (one-hot + impute + scale), rows/s = rows / fit s;
- the torch MLP (same one-hot matrix), a fixed number of epochs without early stopping; rows/s per
  epoch = training rows / median epoch seconds (10 % are held out for the per-epoch validation, as in
  the default fit), and the whole fit's rows/s = rows x epochs / fit s.

Reported per case: preprocessing seconds, fit seconds, rows/s, memory (RSS before the fit, the fit's
own peak RSS and what it added: the kernel's high-water mark is reset just before the fit; and the
process's peak, data generation and preprocessing included), the torch device (GPU model on CUDA) and, on CUDA, peak GPU memory. One run per case:
the numbers are indicative on a shared machine. `--device cuda` without a GPU falls back to CPU (said
so in the output), as the trainer does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

from mlcycle_dev.benchmarks.harness import cpu_name, peak_rss_mib, reset_peak_rss, run_isolated, status_mib

MODELS = ("hgb", "logreg", "torch")
_MAX_BASE_ROWS = 400_000


def yarnit_rows(n_rows: int) -> Any:
    """Exactly `n_rows` YarnIt sessions from consecutive days (seeded, so every case sees the same rows)."""
    import pandas as pd

    from mlcycle.synthetic.yarnit import generate_day

    frames, total, day = [], 0, dt.date(2026, 9, 1)
    base = min(_MAX_BASE_ROWS, max(1000, n_rows))
    while total < n_rows:
        frame = generate_day(day, base_rows=base)
        frames.append(frame)
        total += len(frame)
        day += dt.timedelta(days=1)
    return pd.concat(frames, ignore_index=True).head(n_rows)


def _rss_mib() -> float:
    """Current resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def run_case(model: str, n_rows: int, device: str, epochs: int, batch_size: int) -> dict[str, Any]:
    """One case, in this process: generate, preprocess, time the fit."""
    import numpy as np

    if model == "torch":
        import torch  # imported before the RSS baseline: its import is not part of the fit

    from mlcycle.config import get_usecase
    from mlcycle.training.trainers import build_model

    base = get_usecase("yarnit")
    family = "sklearn_hgb" if model == "hgb" else "sklearn_logreg"
    usecase = base.model_copy(
        update={
            "model": base.model.model_copy(
                update={"family": family, "params": base.model.params if model == "hgb" else {}}
            )
        }
    )
    table = yarnit_rows(n_rows)
    X, y = table[[c.name for c in usecase.features]], table[usecase.target.name].to_numpy()
    pipeline = build_model(usecase)

    started = time.perf_counter()
    matrix = pipeline[:-1].fit_transform(X, y)
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    matrix = np.asarray(matrix, dtype=np.float32 if model == "torch" else np.float64)
    preprocess_seconds = time.perf_counter() - started
    del table, X
    process_peak = peak_rss_mib()  # data generation and preprocessing included
    rss_before = _rss_mib()
    reset = reset_peak_rss()

    result: dict[str, Any] = {
        "model": model,
        "rows": n_rows,
        "features": int(matrix.shape[1]),
        "preprocess_seconds": preprocess_seconds,
        "rss_before_fit_mib": rss_before,
    }
    if model == "torch":
        import torch

        from mlcycle.training.torch_mlp import TorchMLPClassifier

        estimator = TorchMLPClassifier(
            epochs=epochs,
            batch_size=batch_size,
            patience=None,
            seed=usecase.model.seed,
            device=device,
            use_gpu=device != "cpu",
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        estimator.fit(matrix, y)
        fit_seconds = time.perf_counter() - started
        epoch_seconds = [record["seconds"] for record in estimator.history_]
        train_rows = n_rows - round(estimator.validation_fraction * n_rows)
        on_cuda = estimator.device_.startswith("cuda")
        result.update(
            {
                "fit_seconds": fit_seconds,
                "rows_per_second": n_rows * epochs / fit_seconds,
                "epochs": epochs,
                "batch_size": batch_size,
                "epoch_seconds": epoch_seconds,
                "epoch_rows_per_second": train_rows / statistics.median(epoch_seconds),
                "device": estimator.device_,
                "device_name": torch.cuda.get_device_name(0) if on_cuda else cpu_name(),
                "cpu_threads": estimator.cpu_threads,
                "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
                "final_train_loss": estimator.history_[-1]["train_loss"],
                "final_valid_auc": estimator.history_[-1]["valid_auc"],
                "cuda_available": bool(torch.cuda.is_available()),
                "torch": torch.__version__,
            }
        )
    else:
        estimator = pipeline.steps[-1][1]
        started = time.perf_counter()
        estimator.fit(matrix, y)
        fit_seconds = time.perf_counter() - started
        iterations = np.max(np.atleast_1d(getattr(estimator, "n_iter_", 0)))
        result.update(
            {
                "fit_seconds": fit_seconds,
                "rows_per_second": n_rows / fit_seconds,
                "iterations": int(iterations),
                "device": "cpu",
                "device_name": cpu_name(),
            }
        )
    fit_peak = status_mib("VmHWM") if reset else None
    result["process_peak_rss_mib"] = max(process_peak, peak_rss_mib())
    result["fit_peak_rss_mib"] = fit_peak
    result["fit_extra_rss_mib"] = fit_peak - rss_before if fit_peak is not None else None
    return result


def _run_isolated(model: str, n_rows: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "mlcycle_dev.benchmarks.train",
        "--case",
        f"{model}:{n_rows}",
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
    ]
    return run_isolated(command, f"{model}:{n_rows}")


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def _print_row(r: dict[str, Any]) -> None:
    label = {"hgb": "sklearn HistGradientBoosting", "logreg": "sklearn LogisticRegression", "torch": "torch MLP"}[
        r["model"]
    ]
    detail = (
        f"{r['epochs']} epochs x batch {r['batch_size']}, {r['epoch_rows_per_second']:>11,.0f} rows/s per epoch "
        f"(median epoch {statistics.median(r['epoch_seconds']):.2f}s) on {r['device']} ({r['device_name']})"
        + (f", GPU peak {r['gpu_peak_mib']:.0f} MiB" if r.get("gpu_peak_mib") else "")
        if r["model"] == "torch"
        else f"{r['iterations']} iterations"
    )
    print(
        f"  {label:30s} {r['rows']:>9,} rows  {r['features']:3d} features  preprocess {r['preprocess_seconds']:6.2f}s  "
        f"fit {r['fit_seconds']:7.2f}s  {r['rows_per_second']:>11,.0f} rows/s  "
        f"RSS before fit {r['rss_before_fit_mib']:5.0f} MiB, fit peak {_mib(r['fit_peak_rss_mib'])} "
        f"(+{_mib(r['fit_extra_rss_mib'])}), process peak {r['process_peak_rss_mib']:5.0f} MiB  {detail}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="torch device")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--epochs", type=int, default=3, help="torch epochs per fit (no early stopping)")
    parser.add_argument("--batch-size", type=int, default=256, help="torch mini-batch rows")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # MODEL:ROWS, run in this process
    args = parser.parse_args(argv)

    if args.case:
        model, rows = args.case.split(":")
        print(json.dumps(run_case(model, int(rows), args.device, args.epochs, args.batch_size)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; expected some of {list(MODELS)}")
    print(
        f"Training throughput on YarnIt-like data (one fresh interpreter per case; --device {args.device}; "
        f"CPU: {cpu_name()}, {os.cpu_count()} cores)"
    )
    results = []
    for n_rows in sizes:
        for model in models:
            result = _run_isolated(model, n_rows, args)
            _print_row(result)
            results.append(result)
    torch_runs = [r for r in results if r["model"] == "torch"]
    if torch_runs and args.device != "cpu" and not any(r["device"].startswith("cuda") for r in torch_runs):
        print("  note: CUDA is not available on this machine: the torch MLP ran on CPU")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
