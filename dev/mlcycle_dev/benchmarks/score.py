"""Benchmark: scoring throughput with IO (the score step's own code path) against raw `model.predict`,
and peak memory against partition size.

    python -m mlcycle_dev.benchmarks.score [--sizes 100k,1m,3m] [--chunk-rows 10k,50k,200k] [--repeat 3]
                                       [--threads N] [--cases step,raw,whole] [--fit-rows 50k] [--json FILE]

Set-up (not timed): YarnIt-like rows (`mlcycle_dev.benchmarks.train.yarnit_rows`), the yarnit pipeline
(`build_model`, the use case's HistGradientBoosting) fitted on `--fit-rows` of them and saved as the
train step logs it (`mlflow.sklearn.save_model` with `pyfunc_predict_fn="predict_proba"`, its signature,
pinned requirements and `SKOPS_TRUSTED_TYPES`), and one validated-like `data.parquet` per size (the frame
written with `DataFrame.to_parquet(index=False)`, as the generate and validate steps write it).

Each case runs in a fresh interpreter, which imports `mlcycle.steps.score`, loads the model with
mlcycle's loader as the step does (`mlcycle.training.loading.load_folder`, without the registry's digest check)
and warms it up on 1,000 rows; the kernel's peak-RSS mark is
reset there, so "added" is what the case's data work added on top of a process ready to score. The
case's work then runs `--repeat` times; the fastest run counts, the peak is the highest over the runs:

- `step`: the score step's path for one role: its `score_partition` (`chunks(data.parquet, chunk_rows)`, per
  chunk `predictions()` then one parquet part into a scratch folder). Timed: all of it.
  `--chunk-rows` runs it at several chunk sizes (default the step's CHUNK_ROWS).
- `raw`: the rows read whole into memory first (not timed), then one `model.predict(features)` (the
  pyfunc, schema enforcement included); the JSON also has the bare sklearn `predict_proba` on the same
  frame, i.e. what the pyfunc wrapper costs.
- `whole`: the whole-partition baseline: `pd.read_parquet` of the whole file, `predictions()` on all
  rows, one parquet file. Timed: all of it. It shows what chunking saves in memory.

Every case also reports the time spent inside `model.predict` during its own fastest run (the model is
wrapped in a timer): "predict" is that share, and the rest is reading, building the prediction frame and
writing. Measured in the same run, it is steadier on a shared machine than a ratio of two processes.

The committing move of the parts (`Storage.writer`) and the MLflow registry round trips are not part of
any case. Threads are the libraries' defaults, as in the step (HistGradientBoosting predicts with OpenMP
on every core), unless `--threads` caps them (the model's fit in the set-up too); on a shared machine the
figures are indicative. `--in-process` runs the cases in this interpreter (the smoke test does); its
memory figures are then not each case's own.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from mlcycle_dev.benchmarks.harness import cpu_name, peak_rss_mib, reset_peak_rss, run_isolated, status_mib

CASES = ("step", "raw", "whole")
PARTITION = "2026-09-10"
WARMUP_ROWS = 1_000


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 100000, 100k or 1m")
    return int(float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()])


def _sizes(text: str) -> list[int]:
    return [_size(part) for part in text.split(",") if part.strip()]


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


# ----------------------------------------------------------------------------------------- set-up


def data_file(workdir: Path, rows: int) -> Path:
    return workdir / f"data-{rows}" / "data.parquet"


def model_dir(workdir: Path) -> Path:
    return workdir / "model"


def setup(workdir: Path, sizes: list[int], fit_rows: int, threads: int | None = None) -> dict[str, Any]:
    """Fit and save the yarnit model, and write one validated-like parquet file per size (not timed)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from threadpoolctl import threadpool_limits

    from mlcycle.config import get_usecase
    from mlcycle.steps.train import pip_requirements
    from mlcycle.training.model_io import feature_frame
    from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES, build_model
    from mlcycle_dev.benchmarks.train import yarnit_rows

    usecase = get_usecase("yarnit")
    train = yarnit_rows(fit_rows)
    features = feature_frame(usecase, train)
    with threadpool_limits(limits=threads):  # None: the libraries' defaults
        pipeline = build_model(usecase).fit(features, train[usecase.target.name].to_numpy())
    example = features.head(5)
    with warnings.catch_warnings():  # the train step's signature has the same integer-column hint
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, pipeline.predict_proba(example))
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir(workdir)),
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    del train, features
    table = yarnit_rows(max(sizes))
    files = {}
    for rows in sorted(set(sizes)):
        path = data_file(workdir, rows)
        path.parent.mkdir(parents=True)
        table.head(rows).to_parquet(path, index=False)
        files[rows] = path.stat().st_size
    del table
    gc.collect()
    trees = int(getattr(pipeline[-1], "n_iter_", 0))
    return {"model": usecase.model.family, "trees": trees, "features": len(usecase.features), "file_bytes": files}


# ------------------------------------------------------------------------------------------ a case


class TimedModel:
    """A model whose `predict` adds up its own time: the share of a scoring run spent predicting, measured
    in that same run (on a shared machine, comparing two processes' times is noisier)."""

    def __init__(self, model: Any) -> None:
        self.model, self.seconds = model, 0.0
        # The score step reads the version's logged signature (its input columns) from the pyfunc's metadata.
        self.metadata = model.metadata

    def predict(self, frame: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.model.predict(frame)
        finally:
            self.seconds += time.perf_counter() - started


def run_case(
    case: str, workdir: Path, rows: int, chunk_rows: int, repeat: int = 1, threads: int | None = None
) -> dict[str, Any]:
    """One case, in this process: load the model as the score step does, then time the case's work
    `repeat` times (the fastest run counts; the peak memory is the highest over the runs), with at most
    `threads` native threads (OpenMP, BLAS) when given."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    from mlcycle.config import get_usecase
    from mlcycle.specs.names import ModelRole
    from mlcycle.steps.score import Scorer, predictions, score_partition
    from mlcycle.training.loading import load_folder
    from mlcycle.training.model_io import feature_frame, predict_score

    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    usecase = get_usecase("yarnit")
    path = data_file(workdir, rows)
    limiter = threadpool_limits(limits=threads) if threads else None  # until this case returns
    started = time.perf_counter()
    model = load_folder(model_dir(workdir), "the benchmark's model")
    load_seconds = time.perf_counter() - started
    warm = next(pq.ParquetFile(path).iter_batches(batch_size=WARMUP_ROWS)).to_pandas()
    predictions(usecase, warm, Scorer(ModelRole.CHAMPION, "1", model), PARTITION)  # lazy set-up is not per-row cost
    del warm
    gc.collect()
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into a child's ru_maxrss across fork + exec.
    load_peak = status_mib("VmHWM") or peak_rss_mib()  # imports, model load and warm-up
    rss_ready = status_mib("VmRSS")
    exact = reset_peak_rss()

    result: dict[str, Any] = {
        "case": case,
        "rows": rows,
        "chunk_rows": chunk_rows if case == "step" else None,
        "threads": threads or "default",
    }
    features = feature_frame(usecase, pd.read_parquet(path)) if case == "raw" else None  # reading not timed
    runs: list[float] = []
    predict_runs: list[float] = []  # seconds inside model.predict, per run

    def step_path(scorer: Scorer) -> int:
        """The score step's own loop (steps/score.py `score_partition`), for one role."""
        return score_partition(usecase, path, [scorer], PARTITION, chunk_rows)

    for _ in range(max(1, repeat)):
        timed = TimedModel(model)
        scorer = Scorer(ModelRole.CHAMPION, "1", timed)
        with tempfile.TemporaryDirectory(prefix="mlcycle-bench-score-") as scratch:
            if case == "step":
                scorer.staging = Path(scratch)
                started = time.perf_counter()
                result["parts"] = step_path(scorer)
                runs.append(time.perf_counter() - started)
                scored, positives = scorer.rows, scorer.positives
            elif case == "whole":
                started = time.perf_counter()
                table = pd.read_parquet(path)
                out = predictions(usecase, table, scorer, PARTITION)
                out.to_parquet(Path(scratch) / "part-00000.parquet", index=False)
                runs.append(time.perf_counter() - started)
                scored, positives = len(out), int(out["decision"].sum())
                del table, out
            else:
                started = time.perf_counter()
                score = predict_score(timed, features)
                runs.append(time.perf_counter() - started)
                scored, positives = len(score), int((score >= usecase.model.decision_threshold).sum())
            result["written_bytes"] = sum(p.stat().st_size for p in Path(scratch).iterdir())
        predict_runs.append(timed.seconds)
        gc.collect()
    if case == "raw":
        # The same frame through the bare sklearn pipeline: what the pyfunc wrapper (schema enforcement) costs.
        bare = []
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            proba = model.get_raw_model().predict_proba(features)[:, 1]
            bare.append(time.perf_counter() - started)
        result["sklearn_seconds"] = min(bare)
        result["sklearn_rows_per_second"] = rows / min(bare)
        result["same_scores"] = bool(np.allclose(score, proba))
    peak = status_mib("VmHWM") if exact else None
    if peak is None:
        peak = peak_rss_mib()
    result.update(
        {
            "seconds": min(runs),
            "runs": runs,
            # The fastest run's time inside model.predict, and the rest of it (reading, frames, writing).
            "predict_seconds": predict_runs[runs.index(min(runs))],
            "predict_share": predict_runs[runs.index(min(runs))] / min(runs),
            "rows_per_second": rows / min(runs),
            "scored_rows": scored,
            "positive_decisions": positives,
            "model_load_seconds": load_seconds,
            "rss_ready_mib": rss_ready,
            "peak_rss_mib": peak,
            "added_rss_mib": peak - rss_ready if exact and rss_ready is not None else None,
            "process_peak_rss_mib": max(peak, load_peak),
            "peak_exact": exact,
            "cpu_count": os.cpu_count(),
        }
    )
    if limiter is not None:
        limiter.restore_original_limits()
    return result


def _run_isolated(
    case: str, workdir: Path, rows: int, chunk_rows: int, repeat: int, threads: int | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "mlcycle_dev.benchmarks.score",
        "--case",
        f"{case}:{rows}:{chunk_rows}",
        "--workdir",
        str(workdir),
        "--repeat",
        str(repeat),
        *(["--threads", str(threads)] if threads else []),
    ]
    return run_isolated(command, f"{case}:{rows}:{chunk_rows}")


# ----------------------------------------------------------------------------------------- report


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"  {'case':<6} {'rows':>6} {'chunk':>6} {'seconds':>8} {'rows/s':>11} {'x raw':>6} {'predict':>7} "
        f"{'ready MiB':>9} {'peak MiB':>9} {'added MiB':>9}"
    )
    raw = {r["rows"]: r for r in results if r["case"] == "raw"}
    for r in results:
        ratio = r["seconds"] / raw[r["rows"]]["seconds"] if r["rows"] in raw else None
        print(
            f"  {r['case']:<6} {_short(r['rows']):>6} {_short(r['chunk_rows']) if r['chunk_rows'] else '-':>6} "
            f"{r['seconds']:8.2f} {r['rows_per_second']:>11,.0f} {'' if ratio is None else f'{ratio:5.2f}x':>6} "
            f"{r['predict_share']:7.0%} "
            f"{_mib(r['rss_ready_mib']):>9} {_mib(r['process_peak_rss_mib']):>9} {_mib(r['added_rss_mib']):>9}"
        )
    print(
        "  x raw = case seconds / raw pyfunc predict seconds on the same rows, two processes (step: the IO and"
        " bookkeeping overhead);\n  predict = the share of the case's own time inside model.predict, same run;\n  ready = RSS after imports, model load and warm-up; peak = the process's peak RSS"
        " (model load included); added = the case's own peak above ready. Fastest of --repeat runs."
    )
    for r in results:
        if r["case"] == "raw":
            print(
                f"  raw {_short(r['rows'])}: bare sklearn predict_proba {r['sklearn_rows_per_second']:,.0f} rows/s"
                f" (pyfunc wrapper {r['seconds'] / r['sklearn_seconds']:.2f}x), same scores: {r['same_scores']}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=_sizes, default=[100_000], help="partition rows, e.g. 100k,1m,3m (default 100k)"
    )
    parser.add_argument(
        "--chunk-rows", type=_sizes, default=None, help="step-path chunk sizes, e.g. 10k,50k,200k (default: CHUNK_ROWS)"
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case; the fastest counts (default 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="cap native threads (OpenMP) per case (default: as the step runs)"
    )
    parser.add_argument("--fit-rows", type=_size, default=50_000, help="rows the model is fitted on (default 50k)")
    parser.add_argument("--in-process", action="store_true", help="run the cases here (tests; RSS not per case)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # CASE:ROWS:CHUNK, run in this process
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.case:
        case, rows, chunk = args.case.split(":")
        print(json.dumps(run_case(case, Path(args.workdir), int(rows), int(chunk), args.repeat, args.threads)))
        return 0

    from mlcycle.steps.score import CHUNK_ROWS

    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    chunk_sizes = args.chunk_rows or [CHUNK_ROWS]
    results = []
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-score-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        info = setup(workdir, args.sizes, args.fit_rows, args.threads)
        print(
            f"Scoring throughput on YarnIt-like data: {info['model']} ({info['trees']} trees) fitted on "
            f"{args.fit_rows:,} rows, {info['features']} features; "
            f"{'one process' if args.in_process else 'one fresh interpreter per case'}, fastest of {args.repeat}, "
            f"threads {args.threads or 'default'}; CPU: {cpu_name()}, {os.cpu_count()} cores; "
            f"set-up {time.perf_counter() - started:.1f}s"
        )
        for rows in args.sizes:
            plan = [(c, chunk) for c in cases for chunk in (chunk_sizes if c == "step" else [0])]
            for case, chunk in plan:
                if args.in_process:
                    result = run_case(case, workdir, rows, chunk, args.repeat, args.threads)
                else:
                    result = _run_isolated(case, workdir, rows, chunk, args.repeat, args.threads)
                result["file_bytes"] = info["file_bytes"][rows]
                results.append(result)
    _print_table(results)
    for result in results:
        print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
