"""Benchmark: the Great Expectations gate against a hand-written pandas/numpy pass of the same checks.

    python -m mlcycle_dev.benchmarks.validate [--sizes 100000,1000000,5000000]

For each size, both implementations validate the same YarnIt-shaped frame (the 18 columns of the
YarnIt contract, with its ~65 rules: schema, types, nulls, ranges, sets, regexes, keys, the day window,
statistics, cardinality, a cross-column rule, volume and label rate) in a fresh interpreter each, so
that peak memory is theirs alone. The hand-written pass is the practical lower bound: one vectorised
pandas expression per rule, computing the same verdicts and unexpected counts.

Printed per size and implementation: seconds (the fastest of ``--repeat`` runs), rows/s, the peak
resident memory of the process while validating and how much of it the validation added on top of
the frame, and the GX / hand-written time ratio; and the fixed cost (a 2,000-row frame). A warm-up on
a small frame runs first in each process (imports and GX's lazy set-up are not the per-row cost
being measured).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2026, 9, 10)
HISTORY_DAYS = 7
DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000)


# ------------------------------------------------------------------------------------- the data


def bench_contract() -> Any:
    """The YarnIt contract, with room for a partition of millions of rows (a longer session number)."""
    import yaml

    from mlcycle.config import DEFAULT_USECASES_DIR
    from mlcycle.schema import parse_contract

    data = yaml.safe_load((DEFAULT_USECASES_DIR / "yarnit" / "contract.yaml").read_text())
    data["columns"]["session_id"]["regex"] = r"^\d{8}-\d{7}$"
    data["table"]["row_count"]["max"] = 10_000_000
    return parse_contract(data, source="benchmark contract")


def make_frame(rows: int) -> Any:
    """A valid YarnIt day of ``rows`` rows: a generated 100k-row day, tiled, with fresh session ids."""
    import numpy as np
    import pandas as pd

    from mlcycle.synthetic.yarnit import generate_day

    base = generate_day(DAY, base_rows=min(rows, 100_000))
    frame = base.iloc[np.resize(np.arange(len(base)), rows)].reset_index(drop=True)
    numbers = pd.Series(np.arange(1, rows + 1)).astype(str).str.zfill(7)
    frame["session_id"] = (f"{DAY:%Y%m%d}-" + numbers).astype(object)
    return frame.sort_values("event_ts", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------- the hand-written pass


def handwritten(df: Any, contract: Any, *, partition: dt.date, history: list[int]) -> dict[str, Any]:
    """The checks of :func:`mlcycle.contracts.compile.build_suite` in plain pandas/numpy.

    Returns ``{"success", "evaluated", "failed": [rule names]}`` with the same verdicts as GX; every
    row-level rule also counts its unexpected rows, as GX does.
    """
    import pandas as pd

    checks: dict[str, bool] = {}
    counts: dict[str, int] = {}
    severity: dict[str, str] = {}
    n = len(df)

    def record(name: str, ok: bool, sev: str, bad: int | None = None) -> None:
        checks[name], severity[name] = bool(ok), sev
        if bad is not None:
            counts[name] = int(bad)

    names = contract.column_names()
    record("columns", set(df.columns) == set(names), "hard")
    forbidden = {c.lower() for c in contract.forbidden_columns}
    record("forbidden_columns", not any(str(c).lower() in forbidden for c in df.columns), "hard")
    rc = contract.table.row_count
    if rc is not None:
        record("row_count", (rc.min is None or n >= rc.min) and (rc.max is None or n <= rc.max), rc.severity)
    volume = contract.table.volume
    bounds = volume.bounds(history) if volume is not None else None
    if bounds is not None:
        low, high, _ = bounds
        record("volume", (low is None or n >= low) and (high is None or n <= high), volume.severity)
    start = pd.Timestamp(partition, tz="UTC")
    end = start + pd.Timedelta(days=1)
    for name in names:
        spec, s = contract.columns[name], df[name]
        null = s.isna()
        nonnull = s[~null]
        sev = contract.severity_of
        if spec.type == "string":
            bad_type = 0 if pd.api.types.infer_dtype(nonnull, skipna=True) in ("string", "empty") else len(nonnull)
        elif spec.type == "timestamp":
            bad_type = 0 if isinstance(s.dtype, pd.DatetimeTZDtype) else n
        else:
            bad_type = 0 if s.dtype == ("int64" if spec.type == "int" else "float64") else n
        record(f"type:{name}", bad_type == 0, "hard", bad_type)
        if spec.null_fraction_allowed < 1.0:
            nulls = int(null.sum())
            record(f"not_null:{name}", nulls <= spec.null_fraction_allowed * n, sev("not_null", name), nulls)
        if spec.min is not None or spec.max is not None:
            inside = nonnull.between(
                spec.min if spec.min is not None else -float("inf"), spec.max if spec.max is not None else float("inf")
            )
            bad = int((~inside).sum())
            record(f"range:{name}", bad == 0, sev("range", name), bad)
        if spec.allowed is not None:
            bad = int((~nonnull.isin(spec.allowed)).sum())
            record(f"allowed:{name}", bad == 0, sev("allowed", name), bad)
        if spec.regex is not None:
            bad = int((~nonnull.astype(str).str.contains(spec.regex, regex=True)).sum())
            record(f"regex:{name}", bad == 0, sev("regex", name), bad)
        if spec.unique:
            bad = int(nonnull.duplicated(keep=False).sum())
            record(f"unique:{name}", bad == 0, sev("unique", name), bad)
        for stat in ("mean", "median"):
            rule = getattr(spec, stat)
            if rule is not None:
                value = getattr(nonnull, stat)()
                ok = (
                    pd.notna(value)
                    and (rule.min is None or value >= rule.min)
                    and (rule.max is None or value <= rule.max)
                )
                record(f"{stat}:{name}", bool(ok), rule.severity)
        if spec.distinct is not None:
            distinct = nonnull.nunique()
            ok = (spec.distinct.min is None or distinct >= spec.distinct.min) and (
                spec.distinct.max is None or distinct <= spec.distinct.max
            )
            record(f"distinct:{name}", ok, spec.distinct.severity)
        if contract.key == [name]:
            bad = int(nonnull.duplicated(keep=False).sum())
            record(f"key_unique:{name}", bad == 0, sev("key_unique", name), bad)
        if name == contract.timestamp:
            bad = int((~((nonnull >= start) & (nonnull < end))).sum())
            record(f"timestamp_in_partition:{name}", bad == 0, "hard", bad)
    for rule in contract.compare_rules():
        a, b = df[rule.left], df[rule.right]
        both = a.notna() & b.notna()
        ok_rows = {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b}[rule.op]
        bad = int((both & ~ok_rows).sum())
        record(f"compare:{rule.left}", bad == 0, rule.severity, bad)
    rate = contract.table.label_positive_rate
    if rate is not None and contract.target is not None:
        value = df[contract.target].mean()
        ok = (rate.min is None or value >= rate.min) and (rate.max is None or value <= rate.max)
        record("label_positive_rate", bool(ok), rate.severity)
    failed = [k for k, ok in checks.items() if not ok]
    return {
        "success": not any(severity[k] == "hard" for k in failed),
        "evaluated": len(checks),
        "failed": failed,
        "unexpected": sum(counts.values()),
    }


_TABLE_RULES = ("columns", "forbidden_columns", "row_count", "volume", "label_positive_rate")


def agreement() -> list[str]:
    """Check that both implementations fail the same rules on a few broken frames; returns mismatches."""
    import numpy as np

    from mlcycle.contracts.gx_runner import validate_frame

    contract = bench_contract()
    base = make_frame(3_000)
    history = [3_000] * HISTORY_DAYS
    broken = {
        "clean": base,
        "negative price": base.assign(price=-base["price"]),
        "unknown code": base.assign(country=base["country"].replace({"GB": "UK"})),
        "minutes": base.assign(session_duration_s=base["session_duration_s"] / 60),
        "duplicate key": base.assign(session_id=base["session_id"].iloc[0]),
        "pii": base.assign(email="x@example.org"),
        "nulls": base.assign(discount_pct=np.nan),
        "day shift": base.assign(event_ts=base["event_ts"] + np.timedelta64(1, "D")),
        "compare": base.assign(days_since_last_purchase=base["customer_tenure_days"] + 1.0),
        "few rows": base.head(100),
        "labels": base.assign(purchased=0),
    }
    mismatches = []
    for name, frame in broken.items():
        result = validate_frame(frame, contract, partition=DAY, history=history, sample_rows=0)
        by_gx = {f.rule if f.rule in _TABLE_RULES else f"{f.rule}:{f.column}" for f in result.failures}
        by_hand = set(handwritten(frame, contract, partition=DAY, history=history)["failed"])
        if by_gx != by_hand:
            mismatches.append(f"{name}: gx {sorted(by_gx)} != hand-written {sorted(by_hand)}")
    return mismatches


# ------------------------------------------------------------------------------------ a worker


def _rss_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc), so that RSS growth during the check is the
    check's own allocations rather than reuse of what building the frame left behind."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so VmHWM measures from here on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(impl: str, rows: int, repeat: int = 1) -> dict[str, Any]:
    """Validate a frame of ``rows`` rows with ``impl`` (gx | pandas) in this process, ``repeat`` times;
    report the fastest run and the highest peak memory."""
    from mlcycle.contracts.gx_runner import validate_frame

    contract = bench_contract()
    history = [rows] * HISTORY_DAYS

    def check(frame: Any) -> dict[str, Any]:
        if impl == "pandas":
            return handwritten(frame, contract, partition=DAY, history=history)
        result = validate_frame(frame, contract, partition=DAY, history=history)
        return {"success": result.success, "evaluated": result.evaluated, "failed": result.messages()}

    small = make_frame(2_000)
    check(small)  # imports, GX's lazy set-up
    started = time.perf_counter()
    check(small)
    fixed = time.perf_counter() - started  # what a 2,000-row day costs: the fixed part
    frame = make_frame(rows)
    runs, peaks, added = [], [], []
    for _ in range(repeat):
        _release_free_memory()
        exact_peak = _reset_peak()
        before = _rss_mb("VmRSS")
        started = time.perf_counter()
        outcome = check(frame)
        runs.append(time.perf_counter() - started)
        peak = _rss_mb("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if peak is not None:
            peaks.append(peak)
            if before is not None:
                added.append(peak - before)
    return {
        "impl": impl,
        "rows": rows,
        "columns": frame.shape[1],
        "seconds": min(runs),
        "runs": runs,
        "fixed_seconds": fixed,
        "success": outcome["success"],
        "evaluated": outcome["evaluated"],
        "failed": outcome["failed"],
        "peak_mb": max(peaks) if peaks else None,
        "added_mb": max(added) if added else None,
        "peak_exact": exact_peak,
    }


def run_case(impl: str, rows: int, repeat: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlcycle_dev.benchmarks.validate",
            "--worker",
            impl,
            "--rows",
            str(rows),
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{impl} on {rows} rows failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _sizes(text: str) -> list[int]:
    values = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", part)
        if match is None:
            raise argparse.ArgumentTypeError(f"bad size {part!r}: use e.g. 100000, 100k or 1m")
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
        values.append(int(float(match.group(1)) * scale))
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="e.g. 100k,1m (default 100k,1m,5m)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    parser.add_argument("--worker", choices=["gx", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.repeat)))
        return 0

    print("Data contract gate: Great Expectations vs a hand-written pandas pass of the same checks")
    mismatches = agreement()
    print(f"  same failed rules on 11 broken and clean frames: {'yes' if not mismatches else mismatches}")
    print(
        f"  {'rows':>10} {'impl':>7} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9} {'added MiB':>9} {'ratio':>6}  verdict"
    )
    measured = []
    healthy = True
    for rows in args.sizes:
        pandas_run, gx_run = run_case("pandas", rows, args.repeat), run_case("gx", rows, args.repeat)
        ratio = gx_run["seconds"] / pandas_run["seconds"] if pandas_run["seconds"] > 0 else float("nan")
        for run in (pandas_run, gx_run):
            verdict = "pass" if run["success"] and not run["failed"] else f"FAIL {run['failed'][:2]}"
            healthy = healthy and verdict == "pass"
            shown = f"{ratio:5.2f}x" if run is gx_run else ""
            print(
                f"  {rows:>10,} {run['impl']:>7} {run['seconds']:8.2f} {rows / run['seconds']:>11,.0f} "
                f"{run['peak_mb']:9.0f} {run['added_mb']:9.0f} {shown:>6}  {verdict} ({run['evaluated']} checks)"
            )
        measured.append({"rows": rows, "pandas": pandas_run, "gx": gx_run, "ratio": ratio})
    print("  ratio = GX seconds / hand-written seconds (fastest of --repeat runs each);")
    print("  peak = the process's peak RSS while validating; added = peak - RSS before validating")
    if measured:
        first = measured[0]
        print(
            f"  fixed cost, a 2,000-row day: gx {first['gx']['fixed_seconds']:.2f} s, "
            f"hand-written {first['pandas']['fixed_seconds']:.3f} s"
        )
    if args.json:
        print(json.dumps(measured))
    return 0 if healthy and not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
