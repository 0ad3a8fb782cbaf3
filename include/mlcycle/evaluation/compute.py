"""Computing performance of a model version (ML Test Score, Monitoring 6): measured, logged, compared.

Four figures per version: training time and the train step's peak memory (logged by `train`), p95 single-row
predict latency and batch scoring throughput (measured by `evaluate`, for the candidate and the champion on the
same machine at the same time, since timings logged on another day measure another machine's load).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlcycle.specs.results import ComputeRegression
from mlcycle.training.model_io import predict_score

#: The run metrics that hold each figure; higher is worse for all but throughput.
FIT_SECONDS = "fit_seconds"
PEAK_MEMORY_MB = "train_peak_memory_mb"
LATENCY_P95_MS = "latency_p95_ms"
THROUGHPUT_ROWS_S = "throughput_rows_s"
HIGHER_IS_BETTER = {THROUGHPUT_ROWS_S}
REGRESSION_PREFIX = ComputeRegression.PREFIX


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far: a step runs as its own process (a subprocess or a pod)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# The batch throughput is timed on: at least `THROUGHPUT_MIN_ROWS` (a demo's test set of a few thousand rows
# predicts in milliseconds, where the call's fixed cost and the machine's noise decide the figure: 2.2x apart for
# one model in `make demo`), at most `THROUGHPUT_MAX_ROWS` (rows/s is settled long before; three passes over a
# 1M-rows-a-day test split, 1.9M rows, were a third of evaluate's CPU time).
THROUGHPUT_MIN_ROWS = 50_000
THROUGHPUT_MAX_ROWS = 200_000
THROUGHPUT_CALLS = 3


def throughput_rows_s(model: Any, inputs: pd.DataFrame) -> float:
    """Rows per second of one batch predict (the scoring step's call), after a warm-up call.

    On ``inputs`` repeated up to `THROUGHPUT_MIN_ROWS` rows, or its first `THROUGHPUT_MAX_ROWS`. With the
    machine's thread pools, as batch scoring runs; the best of `THROUGHPUT_CALLS` calls, since a slower call
    measures other processes on the machine, not the model.
    """
    if len(inputs) == 0:
        raise ValueError("throughput needs at least one row to predict")
    if len(inputs) < THROUGHPUT_MIN_ROWS:
        inputs = pd.concat([inputs] * -(-THROUGHPUT_MIN_ROWS // len(inputs)), ignore_index=True)
    inputs = inputs.iloc[:THROUGHPUT_MAX_ROWS]
    predict_score(model, inputs.iloc[:10])
    best = float("inf")
    for _ in range(THROUGHPUT_CALLS):
        started = time.perf_counter()
        predict_score(model, inputs)
        best = min(best, time.perf_counter() - started)
    return len(inputs) / max(best, 1e-9)


def regressions(
    candidate: Mapping[str, float | None], champion: Mapping[str, float | None], factor: float
) -> list[ComputeRegression]:
    """Each figure where the candidate is worse than ``factor`` times the champion (missing figures skip)."""
    out = []
    for name in (FIT_SECONDS, PEAK_MEMORY_MB, LATENCY_P95_MS, THROUGHPUT_ROWS_S):
        new, old = candidate.get(name), champion.get(name)
        if new is None or old is None or new <= 0 or old <= 0:
            continue
        worse = old / new if name in HIGHER_IS_BETTER else new / old
        if worse > factor:
            out.append(ComputeRegression(figure=name, candidate=new, champion=old, worse_by=worse, factor=factor))
    return out
