"""Benchmark: the monitor step's drift check against Evidently's default ``DataDriftPreset`` on full data.

    python -m mlcycle_dev.benchmarks.drift [--sizes 20k] [--cases evidently,mlcycle,profile,full]
                                       [--json FILE]

The data: ``rows`` reference rows and ``rows`` current rows x 30 columns (18 numeric, 12 categorical),
seeded, each column labelled: 17 carry a shift that matters in practice (location 0.15 to 1 standard
deviation, spread x1.2 / x1.5, a 10 % price rise, a Poisson mean 3 -> 3.5, bimodal weights 50/50 ->
60/40; 5 % to 30 % of the rows changing level, a new level at 5 %, a 10 % level gone), 13 do not (10
unchanged, 3 with a negligible shift: 0.01 SD, values x1.005, 0.3 % of rows changing level).

The cases, each in a fresh interpreter (so its peak memory is its own; imports, a warm-up report on
500 rows and data generation happen before the clock starts and before the peak is reset):

- ``evidently``: ``Report([DataDriftPreset()])`` on all rows with Evidently's own method choice (above
  1,000 rows: normed Wasserstein >= 0.1 for numeric, Jensen-Shannon distance >= 0.1 for categorical):
  what a user gets out of the box.
- ``mlcycle``: :func:`mlcycle.monitoring.drift.run_drift_report` as the monitor step calls it (KS and
  chi-squared at p < 0.05 on a 10,000-row reference sketch and a seeded 10,000-row current sample),
  sketch built from the full reference inside the timed run.
- ``profile``: the same with the reference profile built beforehand (once per champion in production),
  saved to parquet and loaded: the steady-state daily cost.
- ``full``: KS and chi-squared on all rows (``sample_rows=None``), the previous behaviour: shows what a
  p-value test does on big data.

Every case writes its HTML + JSON report (part of the timed work: the report is the product). Printed
per size: seconds (wall clock, and CPU seconds of the process: steadier on a shared machine), the
run's peak RSS (and what it added to the data already in memory), verdict accuracy against the labels,
agreement with the ``evidently`` case, and the speed-ups over it (wall, CPU); then the per-column
verdicts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcycle_dev.benchmarks.harness import cpu_name, peak_rss_mib, reset_peak_rss, run_isolated, status_mib
from mlcycle_dev.benchmarks.train import _rss_mib

NUMERIC = "numeric"
CATEGORICAL = "categorical"

Draw = Callable[[Any, int], Any]  # (numpy Generator, rows) -> values


@dataclass(frozen=True)
class Column:
    """One labelled column: how its reference and current values are drawn, and whether that is drift."""

    name: str
    kind: str
    shifted: bool  # the label: True for a shift that matters in practice, False for none or a negligible one
    what: str
    reference: Draw
    current: Draw


def _normal(loc: float = 0.0, scale: float = 1.0) -> Draw:
    return lambda rng, n: rng.normal(loc, scale, n)


def _lognormal(factor: float = 1.0) -> Draw:
    return lambda rng, n: factor * rng.lognormal(0.0, 0.5, n)


def _exponential(mean: float = 1.0) -> Draw:
    return lambda rng, n: rng.exponential(mean, n)


def _poisson(lam: float) -> Draw:
    return lambda rng, n: rng.poisson(lam, n).astype("int64")


def _uniform() -> Draw:
    return lambda rng, n: rng.uniform(0.0, 10.0, n)


def _mixture(weight: float) -> Draw:
    """weight x N(-2, 1) + (1 - weight) x N(2, 1): a bimodal feature whose modes trade mass."""
    import numpy as np

    return lambda rng, n: np.where(rng.random(n) < weight, -2.0, 2.0) + rng.normal(0.0, 1.0, n)


def _categorical(p: list[float], levels: list[str] | None = None) -> Draw:
    import numpy as np

    names = np.array(levels or [f"v{i:02d}" for i in range(len(p))], dtype=object)
    probs = np.asarray(p, dtype=float) / float(np.sum(p))
    return lambda rng, n: names[rng.choice(len(names), size=n, p=probs)]


def _zipf(k: int, s: float = 1.1) -> list[float]:
    weights = [1.0 / (i + 1) ** s for i in range(k)]
    return [w / sum(weights) for w in weights]


_C5 = [0.35, 0.25, 0.2, 0.12, 0.08]
_C10 = [0.18, 0.15, 0.13, 0.11, 0.1, 0.09, 0.08, 0.07, 0.05, 0.04]


def _moved(p: list[float], frm: int, to: int, mass: float) -> list[float]:
    """``p`` with ``mass`` of probability moved from level ``frm`` to level ``to`` (total variation = mass)."""
    q = list(p)
    q[frm] -= mass
    q[to] += mass
    return q


def columns() -> list[Column]:
    """18 numeric + 12 categorical columns: 17 labelled shifted, 13 not (3 of those with a negligible shift).

    Shift sizes are in units a practitioner reads: numeric location in reference standard deviations
    (SD), spread as a ratio, categorical as total variation (the share of rows that changed level).
    """
    n, c = NUMERIC, CATEGORICAL
    same = [
        Column("n_normal", n, False, "N(0,1), unchanged", _normal(), _normal()),
        Column("n_lognormal", n, False, "lognormal, unchanged", _lognormal(), _lognormal()),
        Column("n_exponential", n, False, "exponential, unchanged", _exponential(), _exponential()),
        Column("n_poisson", n, False, "Poisson(3) integers, unchanged", _poisson(3.0), _poisson(3.0)),
        Column("n_uniform", n, False, "U(0,10), unchanged", _uniform(), _uniform()),
        Column("n_bimodal", n, False, "bimodal, unchanged", _mixture(0.5), _mixture(0.5)),
        Column("n_loc_0.01sd", n, False, "location +0.01 SD (negligible)", _normal(), _normal(0.01)),
        Column("n_lognormal_x1.005", n, False, "values x1.005 (negligible)", _lognormal(), _lognormal(1.005)),
        Column("c3", c, False, "3 levels, unchanged", _categorical([0.5, 0.3, 0.2]), _categorical([0.5, 0.3, 0.2])),
        Column("c5", c, False, "5 levels, unchanged", _categorical(_C5), _categorical(_C5)),
        Column("c10", c, False, "10 levels, unchanged", _categorical(_C10), _categorical(_C10)),
        Column("c30", c, False, "30 levels (Zipf), unchanged", _categorical(_zipf(30)), _categorical(_zipf(30))),
        Column(
            "c5_tv0.003",
            c,
            False,
            "0.3 % of rows change level (negligible)",
            _categorical(_C5),
            _categorical(_moved(_C5, 0, 1, 0.003)),
        ),
    ]
    shifted = [
        Column("n_loc_0.15sd", n, True, "location +0.15 SD", _normal(), _normal(0.15)),
        Column("n_loc_0.25sd", n, True, "location +0.25 SD", _normal(), _normal(0.25)),
        Column("n_loc_0.5sd", n, True, "location +0.5 SD", _normal(), _normal(0.5)),
        Column("n_loc_1sd", n, True, "location +1 SD", _normal(), _normal(1.0)),
        Column("n_scale_x1.2", n, True, "spread x1.2, same mean", _normal(), _normal(0.0, 1.2)),
        Column("n_scale_x1.5", n, True, "spread x1.5, same mean", _normal(), _normal(0.0, 1.5)),
        Column("n_lognormal_x1.1", n, True, "values x1.1 (a 10 % price rise)", _lognormal(), _lognormal(1.1)),
        Column("n_exponential_mean0.83", n, True, "mean 1 -> 0.83", _exponential(), _exponential(1 / 1.2)),
        Column("n_poisson_3.5", n, True, "Poisson mean 3 -> 3.5", _poisson(3.0), _poisson(3.5)),
        Column("n_bimodal_0.6", n, True, "modes' weights 50/50 -> 60/40", _mixture(0.5), _mixture(0.6)),
        Column(
            "c2_tv0.05",
            c,
            True,
            "binary 70/30 -> 65/35",
            _categorical([0.7, 0.3]),
            _categorical([0.65, 0.35]),
        ),
        Column(
            "c5_tv0.05",
            c,
            True,
            "5 % of rows move to another level",
            _categorical(_C5),
            _categorical(_moved(_C5, 0, 2, 0.05)),
        ),
        Column(
            "c10_tv0.08",
            c,
            True,
            "8 % of rows move to another level",
            _categorical(_C10),
            _categorical(_moved(_C10, 1, 7, 0.08)),
        ),
        Column(
            "c5_tv0.15",
            c,
            True,
            "15 % of rows move to another level",
            _categorical(_C5),
            _categorical(_moved(_C5, 0, 4, 0.15)),
        ),
        Column(
            "c5_tv0.3",
            c,
            True,
            "frequencies reversed (30 % of rows move)",
            _categorical(_C5),
            _categorical(_C5[::-1]),
        ),
        Column(
            "c5_new_level",
            c,
            True,
            "a new level takes 5 % of rows",
            _categorical([*_C5, 0.0]),
            _categorical([x * 0.95 for x in _C5] + [0.05]),
        ),
        Column(
            "c10_level_gone",
            c,
            True,
            "a 10 % level disappears",
            _categorical(_C10),
            _categorical(_moved(_C10, 4, 0, 0.10)),
        ),
    ]
    return same + shifted


def make_frames(rows: int, seed: int = 2024) -> tuple[Any, Any]:
    """(reference, current), ``rows`` rows each; every column has its own seeded stream."""
    import numpy as np
    import pandas as pd

    reference, current = {}, {}
    for i, col in enumerate(columns()):
        reference[col.name] = col.reference(np.random.default_rng([seed, i, 0]), rows)
        current[col.name] = col.current(np.random.default_rng([seed, i, 1]), rows)
    return pd.DataFrame(reference), pd.DataFrame(current)


# ------------------------------------------------------------------------------------- the cases

CASES = {
    "evidently": "Evidently DataDriftPreset() defaults, all rows",
    "mlcycle": "mlcycle: KS/chi2 on 10k sketch + 10k sample",
    "profile": "mlcycle, reference profile precomputed",
    "full": "KS/chi2 on all rows (sample_rows=None)",
}


def _split() -> tuple[list[str], list[str]]:
    cols = columns()
    return [c.name for c in cols if c.kind == NUMERIC], [c.name for c in cols if c.kind == CATEGORICAL]


def _evidently_default(reference: Any, current: Any, folder: Path) -> dict[str, dict[str, Any]]:
    """What a user gets out of the box: the preset with Evidently's own choice of method per column."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from mlcycle.monitoring.drift import read_column_results

    numeric, categorical = _split()
    # The same column typing as ours (left to itself, Evidently would also spend time inferring it).
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    (folder / "report.html").write_text(snapshot.get_html_str(as_iframe=False), encoding="utf-8")
    (folder / "report.json").write_text(snapshot.json(), encoding="utf-8")
    kinds = {c: NUMERIC for c in numeric} | {c: CATEGORICAL for c in categorical}
    results = read_column_results(snapshot.dict(), kinds)
    return {c: {"drifted": r.drifted, "method": r.stattest, "score": r.score} for c, r in results.items()}


def _mlcycle(reference: Any, current: Any, folder: Path, sample_rows: int | None) -> dict[str, dict[str, Any]]:
    from mlcycle.monitoring.drift import run_drift_report, save_report

    numeric, categorical = _split()
    summary, snapshot = run_drift_report(
        reference, current, numeric=numeric, categorical=categorical, sample_rows=sample_rows
    )
    save_report(snapshot, summary, folder)
    return {c.column: {"drifted": c.drifted, "method": c.stattest, "score": c.score} for c in summary.columns}


def run_case(case: str, rows: int, seed: int) -> dict[str, Any]:
    """One case in this process; the clock and the memory peak cover the drift check and its report."""
    from mlcycle.monitoring.drift import run_drift_report
    from mlcycle.monitoring.reference_profile import build_reference_profile, load_reference_profile

    work = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    # Warm-up: Evidently's import (~11 s here) and the modules it loads lazily on its first report
    # (plotting) are paid once per step process whatever the data size; they are not the cost compared.
    numeric, categorical = _split()
    tiny_ref, tiny_cur = make_frames(500, seed + 1)
    run_drift_report(tiny_ref, tiny_cur, numeric=numeric[:2], categorical=categorical[:2])[1].get_html_str(
        as_iframe=False
    )

    reference, current = make_frames(rows, seed)
    if case == "profile":
        started = time.perf_counter()
        built = build_reference_profile(reference, numeric=numeric, categorical=categorical)
        profile_build_seconds = time.perf_counter() - started
        profile_path = built.save(work / "profile")
        reference = load_reference_profile(profile_path)
    gc.collect()
    process_peak = peak_rss_mib()
    rss_before = _rss_mib()
    reset = reset_peak_rss()
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    if case == "evidently":
        verdicts = _evidently_default(reference, current, work)
    else:
        verdicts = _mlcycle(reference, current, work, None if case == "full" else 10_000)
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_started
    peak = status_mib("VmHWM") if reset else None
    result: dict[str, Any] = {
        "case": case,
        "rows": rows,
        "columns": len(verdicts),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_before_mib": rss_before,
        "run_peak_rss_mib": peak,
        "run_extra_rss_mib": peak - rss_before if peak is not None else None,
        "process_peak_rss_mib": max(process_peak, peak_rss_mib()),
        "html_mib": (work / "report.html").stat().st_size / 2**20,
        "verdicts": verdicts,
    }
    if case == "profile":
        result["profile_build_seconds"] = profile_build_seconds
        result["profile_file_mib"] = profile_path.stat().st_size / 2**20
    return result


def _cpu_seconds() -> float:
    """User + system CPU time of this process: on a shared machine, steadier than the wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_isolated(case: str, rows: int, seed: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "mlcycle_dev.benchmarks.drift", "--case", f"{case}:{rows}", "--seed", str(seed)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # Evidently's numpy warnings would flood the output
    return run_isolated(command, f"{case}:{rows}", env)


# ------------------------------------------------------------------------------------ reporting


def parse_size(text: str) -> int:
    """``100k`` -> 100000, ``1m`` -> 1000000, ``2500`` -> 2500."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def _print_size(rows: int, results: dict[str, dict[str, Any]]) -> None:
    labels = {c.name: c.shifted for c in columns()}
    base = results.get("evidently")
    print(f"\n{rows:,} reference rows vs {rows:,} current rows x {len(labels)} columns")
    print(
        f"  {'case':46s} {'seconds':>8s} {'CPU s':>7s} {'peak RSS':>9s} {'(+ run)':>9s} {'right vs labels':>16s} "
        f"{'same as evidently':>18s} {'speed-up':>9s} {'(CPU)':>6s}"
    )
    for case, r in results.items():
        verdicts = {c: v["drifted"] for c, v in r["verdicts"].items()}
        right = sum(verdicts[c] == labels[c] for c in labels)
        same = sum(verdicts[c] == base["verdicts"][c]["drifted"] for c in labels) if base else None
        speedup = base["seconds"] / r["seconds"] if base else None
        cpu_speedup = base["cpu_seconds"] / r["cpu_seconds"] if base else None
        peak = "n/a" if r["run_peak_rss_mib"] is None else f"{r['run_peak_rss_mib']:.0f}"
        extra = "n/a" if r["run_extra_rss_mib"] is None else f"+{r['run_extra_rss_mib']:.0f}"
        print(
            f"  {CASES[case]:46s} {r['seconds']:8.2f} {r['cpu_seconds']:7.2f} {peak:>9s} {extra:>9s} {right:>9d}/{len(labels)} "
            f"({right / len(labels):4.0%}) "
            + (f"{same:>11d}/{len(labels)} ({same / len(labels):4.0%})" if same is not None else f"{'':>18s}")
            + (f" {speedup:8.1f}x {cpu_speedup:5.1f}x" if speedup is not None and cpu_speedup is not None else "")
        )
        if case == "profile":
            print(
                f"  {'':46s} (profile built once in {r['profile_build_seconds']:.2f}s; "
                f"{r['profile_file_mib']:.2f} MiB of parquet)"
            )
    cases = list(results)
    print(f"  per column (x = flagged as drifted; label: S shifted, - not):  {'  '.join(f'{c:>9s}' for c in cases)}")
    for col in columns():
        marks = "  ".join(f"{'x' if results[c]['verdicts'][col.name]['drifted'] else '.':>9s}" for c in cases)
        wrong = [c for c in cases if results[c]["verdicts"][col.name]["drifted"] != col.shifted]
        print(
            f"    {col.name:24s} {'S' if col.shifted else '-'} {col.what:42.42s}  {marks}"
            + (f"   wrong: {', '.join(wrong)}" if wrong else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20k", help="comma-separated rows per side, e.g. 100k,1m")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic data")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # CASE:ROWS, run in this process
    args = parser.parse_args(argv)

    if args.case:
        case, rows = args.case.split(":")
        print(json.dumps(run_case(case, int(rows), args.seed)))
        return 0

    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    print(f"Drift check benchmark (one fresh interpreter per case; CPU: {cpu_name()}, {os.cpu_count()} cores)")
    everything: list[dict[str, Any]] = []
    for rows in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
        results = {case: _run_isolated(case, rows, args.seed) for case in cases}
        _print_size(rows, results)
        everything += results.values()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(everything, handle, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
