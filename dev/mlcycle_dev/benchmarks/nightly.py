"""Benchmark: the whole nightly lifecycle at N rows a day, each step against the essential call it wraps.

    python -m mlcycle_dev.benchmarks.nightly --rows 250k [--fixed-rows 1] [--days 14] [--threads N]
                                             [--importtime] [--markdown FILE] [--json FILE] [--workdir DIR]
                                             [--memory-cap-gib G]

Set-up (timed, reported apart): a fresh storage root and a local MLflow (SQLite + a local artifact folder,
`mlcycle.settings.embedded_environment`), and `mlcycle generate` of the use case's window (YarnIt, 14 days ending
`--partition`, about `--rows` sessions a day). Then every step runs as a user or a task runs it: the `mlcycle` CLI
in a subprocess, so each pays its interpreter start, imports and client set-up, in the nightly's order:

- training DAG: ingest and validate of the window (`--lookback 14`), features, train, evaluate, promote;
- scoring DAG: ingest, validate `--serving` (the day was validated by training: a manifest check), score;
- monitoring DAG: monitor, freshness.

Per step: wall seconds, the child's CPU seconds and peak RSS (`os.wait4`'s rusage of that child; this driver
imports no ML library, so the fork carries little of its own memory into the figure), and the load average while
it ran (the machine may be shared: every figure is indicative, and the table says how loaded it was). Right after
each step, on the same data, in a fresh interpreter, the essential call the step wraps
(`mlcycle_dev.benchmarks.nightly_essentials` says what each one is), the ratio step / essential, and the fixed
part: the same step on a `--fixed-rows` partition (a second root, same sequence). The use case is run from a
copy whose contract admits the benchmark's day sizes (`table.row_count`; YarnIt's is written for 2-5k rows a
day); every other rule applies. `--importtime` adds, per step,
how long importing the CLI and the step's module takes in a fresh interpreter and which packages cost most
(`python -X importtime`). `--markdown` writes the table for docs/benchmarks.md.
`--memory-cap-gib G` runs each step under a watchdog that kills it past G GiB resident and records
"exceeded G GiB" as its outcome (for sizes that may not fit the machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.config import USECASES_ENV
from mlcycle.settings import STORAGE_ROOT_ENV, embedded_environment
from mlcycle.specs.names import DagFamily, Step
from mlcycle_dev.benchmarks.harness import cpu_name, run_isolated
from mlcycle_dev.benchmarks.score import _short, _size

USECASE = "yarnit"
PARTITION = dt.date(2026, 9, 14)
OK, NOTHING_TO_DO = 0, 99


@dataclass
class StepRun:
    """One step's subprocess, as the nightly ran it."""

    dag: str
    step: str
    argv: list[str]
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    exit_code: int = 0
    load: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    essential: dict[str, Any] | None = None
    fixed_seconds: float | None = None
    fixed_exit_code: int | None = None
    imports: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        extra = [a for a in self.argv if a in ("--serving",)]
        lookback = self.argv[self.argv.index("--lookback") + 1] if "--lookback" in self.argv else None
        return self.step + (f" ({lookback} d)" if lookback else "") + "".join(f" {a}" for a in extra)

    @property
    def ratio(self) -> float | None:
        if not self.essential or self.essential["seconds"] <= 0:
            return None
        return self.wall_seconds / float(self.essential["seconds"])

    @property
    def cpu_ratio(self) -> float | None:
        """Step CPU s / essential CPU s: steadier than the wall ratio when other work shares the cores."""
        if not self.essential or not self.essential.get("cpu_seconds"):
            return None
        return self.cpu_seconds / float(self.essential["cpu_seconds"])


class LoadSampler:
    """The 1-minute load average, sampled every few seconds in a thread: how shared the machine was."""

    def __init__(self, every: float = 2.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), os.getloadavg()[0]))
            self._stop.wait(self._every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self, start: float, end: float) -> float:
        inside = [load for t, load in self.samples if start <= t <= end] or [os.getloadavg()[0]]
        return sum(inside) / len(inside)

    def span(self) -> tuple[float, float]:
        loads = [load for _, load in self.samples] or [os.getloadavg()[0]]
        return min(loads), max(loads)


def mlcycle_command() -> list[str]:
    """The `mlcycle` entry point of this environment, as a user runs it (else the module)."""
    script = Path(sys.executable).parent / "mlcycle"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mlcycle.cli"]


def scaled_usecases(folder: Path, rows: int) -> Path:
    """A copy of the use case whose contract's `table.row_count` admits `rows` a day (weekends and winter days
    have up to ~1.6x the base rows; the fixed-cost run's few): YarnIt's contract is written for 2-5k sessions a
    day; and whose gate has a latency budget a loaded machine meets. Every other rule and setting stays."""
    import shutil

    import yaml

    from mlcycle.config import usecases_dir

    target = folder / "usecases"
    shutil.copytree(usecases_dir() / USECASE, target / USECASE, dirs_exist_ok=True)
    contract_file = target / USECASE / "contract.yaml"
    contract = yaml.safe_load(contract_file.read_text())
    contract["table"]["row_count"] = {"min": 1, "max": max(100_000, 3 * rows)}
    contract_file.write_text(yaml.safe_dump(contract, sort_keys=False))
    # The gate's single-row latency probe measures the machine's load as much as the model on a shared machine
    # (221 ms against the 100 ms budget at load 16): a rejected candidate would leave scoring and monitoring with
    # nothing to do. The benchmark times the steps; the gate's verdict is not what it measures.
    usecase_file = target / USECASE / "usecase.yaml"
    usecase = yaml.safe_load(usecase_file.read_text())
    usecase["thresholds"]["gate"]["latency_p95_ms"] = 60_000
    usecase_file.write_text(yaml.safe_dump(usecase, sort_keys=False))
    return target


def environment(root: Path, threads: int | None, usecases: Path | None = None) -> dict[str, str]:
    env = {**os.environ, **embedded_environment(root)}
    if usecases is not None:
        env[USECASES_ENV] = str(usecases)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _rss_mib(pid: int) -> float | None:
    """The process's resident set (VmRSS) in MiB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):  # it ended between two polls: nothing left to watch
        return None
    return None


class MemoryWatchdog:
    """Kills a child whose resident memory passes `cap_mib` (polled twice a second), so that a step too large for
    the machine is measured as "exceeded N GiB" instead of leaving the kernel's OOM killer to pick a victim among
    the machine's other processes."""

    def __init__(self, pid: int, cap_mib: float) -> None:
        self.pid, self.cap_mib, self.exceeded = pid, cap_mib, False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            rss = _rss_mib(self.pid)
            if rss is None:
                return
            if rss > self.cap_mib:
                self.exceeded = True
                os.kill(self.pid, signal.SIGKILL)
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_child(
    argv: Sequence[str], env: dict[str, str], log: Path, memory_cap_mib: float | None = None
) -> tuple[int, float, float, float, str]:
    """Run `argv`, stdout and stderr to `log`; (exit code, wall s, CPU s, peak RSS MiB, last stdout line).

    With `memory_cap_mib`, a child that passes it is killed (exit -9) and its last line says so."""
    with open(log, "w") as out, tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        child = subprocess.Popen(list(argv), env=env, stdout=stdout, stderr=out, text=True)
        watchdog = MemoryWatchdog(child.pid, memory_cap_mib) if memory_cap_mib else None
        _, status, usage = os.wait4(child.pid, 0)
        if watchdog is not None:
            watchdog.stop()
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        stdout.seek(0)
        text = stdout.read()
        out.write(text)
    last = text.strip().splitlines()[-1] if text.strip() else ""
    peak = usage.ru_maxrss / 2**20 if sys.platform == "darwin" else usage.ru_maxrss / 2**10
    if watchdog is not None and watchdog.exceeded:
        last = json.dumps({"status": "memory", "reason": f"exceeded {watchdog.cap_mib / 1024:.1f} GiB (killed)"})
    return child.returncode, wall, usage.ru_utime + usage.ru_stime, peak, last


def json_object(line: str) -> dict[str, Any]:
    """A step's result line as a JSON object; {} for a line that is not one (a crash, a log line)."""
    try:
        document = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def generate(root: Path, rows: int, first: dt.date, last: dt.date, env: dict[str, str], logs: Path) -> dict[str, Any]:
    argv = [*mlcycle_command(), "generate", "--usecase", USECASE, "--start", str(first), "--end", str(last)]
    code, wall, _, _, line = run_child([*argv, "--rows", str(rows)], env, logs / "generate.log")
    if code != OK:
        raise RuntimeError(f"generate failed ({code}); see {logs / 'generate.log'}")
    per_day = json_object(line).get("metrics", {}).get("rows", {})
    return {"seconds": wall, "rows_per_day": per_day, "rows": sum(per_day.values())}


def nightly(
    root: Path,
    partition: dt.date,
    days: int,
    env: dict[str, str],
    logs: Path,
    load: LoadSampler,
    *,
    essentials: bool = False,
    checkpoint: Callable[[list[StepRun]], None] | None = None,
    memory_cap_mib: float | None = None,
) -> list[StepRun]:
    """Every step of one night, in order, each in its own `mlcycle` process; a step that fails stops its DAG.

    With `essentials`, each step's essential call runs right after it; `checkpoint` sees the runs after every step
    (a long run interrupted keeps what it measured)."""
    base = ["--usecase", USECASE, "--partition", partition.isoformat()]
    window = ["--lookback", str(days)]
    plan: list[tuple[DagFamily, Step, list[str]]] = [
        (DagFamily.TRAINING, Step.INGEST, window),
        (DagFamily.TRAINING, Step.VALIDATE, window),
        (DagFamily.TRAINING, Step.FEATURES, []),
        (DagFamily.TRAINING, Step.TRAIN, []),
        (DagFamily.TRAINING, Step.EVALUATE, ["--model-version", "{version}"]),
        (DagFamily.TRAINING, Step.PROMOTE, ["--decision", "{decision}"]),
        (DagFamily.SCORING, Step.INGEST, []),
        (DagFamily.SCORING, Step.VALIDATE, ["--serving"]),
        (DagFamily.SCORING, Step.SCORE, []),
        (DagFamily.MONITORING, Step.MONITOR, []),
        (DagFamily.MONITORING, Step.FRESHNESS, []),
    ]
    known: dict[str, str] = {}
    failed: set[str] = set()
    runs = []
    for dag, step, extra in plan:
        if dag.value in failed:  # not run: an earlier step of its DAG failed
            runs.append(StepRun(dag.value, step.value, [step.value, *extra], exit_code=-1))
            continue
        argv = [*mlcycle_command(), step.value, *base, *(a.format(**known) if "{" in a else a for a in extra)]
        run = StepRun(dag.value, step.value, argv)
        started = time.monotonic()
        log = logs / f"{len(runs):02d}-{dag.value}-{step.value}.log"
        code, wall, cpu, peak, line = run_child(argv, env, log, memory_cap_mib)
        run.exit_code, run.wall_seconds, run.cpu_seconds, run.peak_rss_mib = code, wall, cpu, peak
        run.load = load.mean(started, time.monotonic())
        run.result = json_object(line)
        if step == Step.TRAIN:
            known["version"] = str(run.result.get("metrics", {}).get("model_version", ""))
        if step == Step.EVALUATE:
            known["decision"] = str(run.result.get("outputs", {}).get("decision", ""))
        if code not in (OK, NOTHING_TO_DO):
            failed.add(dag.value)
        runs.append(run)
        print(
            f"  {dag.value:<10} {run.label:<24} exit {code:>3}  {wall:8.1f} s  CPU {cpu:8.1f} s  "
            f"peak {peak:7,.0f} MiB  load {run.load:4.1f}"
            + (f"  {run.result['reason']}" if run.result.get("status") == "memory" else ""),
            flush=True,
        )
        if essentials:
            essential(run, partition, days, known.get("version", ""), env, load)
        if checkpoint is not None:
            checkpoint(runs)
    return runs


def essential(
    run: StepRun, partition: dt.date, days: int, version: str, env: dict[str, str], load: LoadSampler
) -> None:
    """The step's essential call on the same data, in a fresh interpreter, right after the step (same load)."""
    from mlcycle_dev.benchmarks.nightly_essentials import ESSENTIALS

    # Scoring's ingest and validate find the day done by training: only a manifest check is left.
    window = "--lookback" in run.argv or run.step not in (Step.INGEST, Step.VALIDATE)
    if run.step not in ESSENTIALS or run.exit_code != OK or not window:
        return
    argv = [sys.executable, "-m", "mlcycle_dev.benchmarks.nightly_essentials", run.step, "--days", str(days)]
    argv += ["--root", env[STORAGE_ROOT_ENV], "--partition", partition.isoformat(), "--version", version]
    started = time.monotonic()
    run.essential = run_isolated(argv, f"essential {run.step}", env)
    run.essential["load"] = load.mean(started, time.monotonic())
    print(f"  {'':<10} essential {run.essential['seconds']:8.1f} s  ({run.essential['what']})", flush=True)


def import_profile(step: str, env: dict[str, str], top: int = 6) -> dict[str, Any]:
    """Importing the CLI and the step's module in a fresh interpreter: wall seconds and the costliest packages
    (`-X importtime` self time summed per top-level package)."""
    from mlcycle.specs.catalog import spec_of

    module = spec_of(step).body.rpartition(".")[0]
    code = f"import mlcycle.cli, {module}"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{out.stderr[-2000:]}")
    per_package: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        package = name.strip().split(".")[0]
        per_package[package] = per_package.get(package, 0) + int(self_us)
    ranked = sorted(per_package.items(), key=lambda item: -item[1])[:top]
    return {"module": module, "wall_seconds": wall, "top": [(name, us / 1e6) for name, us in ranked]}


# ----------------------------------------------------------------------------------------------- the table


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def table_rows(runs: list[StepRun]) -> list[list[str]]:
    rows = []
    for r in runs:
        status = {OK: "", NOTHING_TO_DO: " (nothing to do)", -1: " (not run)"}.get(
            r.exit_code, f" (exit {r.exit_code})"
        )
        fixed = _seconds(r.fixed_seconds) + ("" if r.fixed_exit_code in (None, OK) else f" (exit {r.fixed_exit_code})")
        rows.append(
            [
                r.dag,
                r.label + status,
                _seconds(r.wall_seconds),
                _seconds(r.essential["seconds"]) if r.essential else "—",
                f"{r.ratio:.2f}x" if r.ratio is not None else "—",
                fixed,
                f"{r.peak_rss_mib:,.0f}",
                _seconds(r.cpu_seconds),
                _seconds(r.essential.get("cpu_seconds")) if r.essential else "—",
                f"{r.cpu_ratio:.2f}x" if r.cpu_ratio is not None else "—",
                f"{r.load:.1f}",
                r.essential["what"] if r.essential else "only fixed work",
            ]
        )
    return rows


HEADER = [
    "DAG",
    "step",
    "wall s",
    "essential s",
    "step / essential",
    "fixed s",
    "peak MiB",
    "CPU s",
    "essential CPU s",
    "CPU step / essential",
    "load",
    "essential call",
]


def totals(runs: list[StepRun]) -> dict[str, Any]:
    per_dag: dict[str, float] = {}
    for r in runs:
        per_dag[r.dag] = per_dag.get(r.dag, 0.0) + r.wall_seconds
    return {
        "per_dag_seconds": per_dag,
        "night_seconds": sum(per_dag.values()),
        "fixed_seconds": sum(r.fixed_seconds or 0.0 for r in runs),
        "peak_rss_mib": max((r.peak_rss_mib for r in runs), default=0.0),
        "essential_seconds": sum(r.essential["seconds"] for r in runs if r.essential),
    }


def print_table(runs: list[StepRun]) -> None:
    rows = [HEADER, *table_rows(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print(
            "  "
            + "  ".join(
                cell.ljust(w) if i < 2 or i == len(row) - 1 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def markdown(runs: list[StepRun], facts: dict[str, Any]) -> str:
    if "command" not in facts:  # an interrupted run's checkpoint: the steps measured so far
        facts = {**facts, "totals": totals(runs)}
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in table_rows(runs))]) + "\n"
    lines = [
        f"`{facts['command']}`: {_short(facts['rows_per_day'])} rows/day (base), {facts['rows']:,} rows in the "
        f"{facts['days']}-day window, day {facts['partition']} ({facts['day_rows']:,} rows); {facts['cpu']}, "
        f"{facts['cores']} cores, shared with other work: load average {facts['load_min']:.1f}-{facts['load_max']:.1f} "
        f"during the run; {facts['date']}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in table_rows(runs)),
    ]
    t = facts["totals"]
    dags = ", ".join(f"{dag} {seconds:,.0f} s" for dag, seconds in t["per_dag_seconds"].items())
    lines += [
        "",
        f"Whole night {t['night_seconds']:,.0f} s ({dags}); essential calls {t['essential_seconds']:,.0f} s; "
        f"fixed part {t['fixed_seconds']:,.0f} s ({facts['fixed_rows']} base row(s) a day); peak {t['peak_rss_mib']:,.0f} MiB.",
    ]
    imported = [r for r in runs if r.imports]
    if imported:
        lines += ["", "| step | import s (CLI + step module) | costliest packages (self s) |", "|---|---|---|"]
        for r in imported:
            assert r.imports is not None
            top = ", ".join(f"{name} {seconds:.1f}" for name, seconds in r.imports["top"])
            lines.append(f"| {r.dag} {r.label} | {r.imports['wall_seconds']:.1f} | {top} |")
    return "\n".join(lines) + "\n"


def comparison(before: list[StepRun], after: list[StepRun]) -> str:
    """Markdown: the same steps of two runs of the same command (e.g. before and after a change), side by side."""
    lines = [
        "| DAG | step | wall s before | wall s after | CPU s before | CPU s after | peak MiB before | peak MiB after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for old, new in zip(before, after, strict=False):
        if (old.dag, old.step) != (new.dag, new.step):
            raise ValueError(f"the runs differ: {old.dag} {old.step} against {new.dag} {new.step}")
        lines.append(
            f"| {old.dag} | {old.label} | {_seconds(old.wall_seconds)} | {_seconds(new.wall_seconds)} | "
            f"{_seconds(old.cpu_seconds)} | {_seconds(new.cpu_seconds)} | {old.peak_rss_mib:,.0f} | {new.peak_rss_mib:,.0f} |"
        )
    return "\n".join(lines) + "\n"


@contextmanager
def _workdir(given: str | None) -> Iterator[Path]:
    if given:
        path = Path(given).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-nightly-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=_size, default=250_000, help="base rows a day, e.g. 250k, 1m (default 250k)")
    parser.add_argument("--days", type=int, default=14, help="the training window (the use case's: 14)")
    parser.add_argument("--partition", type=dt.date.fromisoformat, default=PARTITION, help="the night's day")
    parser.add_argument(
        "--fixed-rows",
        type=int,
        default=500,
        help="base rows a day of the fixed-cost run (0: skip it; default 500: the contract's statistical rules, e.g. "
        "the label rate, cannot pass on a few rows, and a rejected day takes another path)",
    )
    parser.add_argument("--threads", type=int, default=None, help="OMP/BLAS threads per step (default: libraries')")
    parser.add_argument(
        "--memory-cap-gib", type=float, default=None, help="kill a step past this resident memory (a watchdog)"
    )
    parser.add_argument("--importtime", action="store_true", help="also profile each step's imports")
    parser.add_argument("--workdir", default=None, help="keep the stores and logs here (default: a temporary folder)")
    parser.add_argument("--markdown", default=None, help="write the table (markdown) to this file")
    parser.add_argument("--json", default=None, help="write every figure to this file")
    parser.add_argument("--render", default=None, help="only print (and --markdown) the table of this --json file")
    parser.add_argument("--compare", nargs=2, default=None, metavar=("BEFORE", "AFTER"), help="two --json files")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = ([StepRun(**s) for s in json.loads(Path(f).read_text())["steps"]] for f in args.compare)
        print(comparison(before, after), end="")
        return 0
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        steps = [StepRun(**step) for step in saved.pop("steps")]
        print_table(steps)
        if args.markdown:
            Path(args.markdown).write_text(markdown(steps, saved))
        return 0
    first = args.partition - dt.timedelta(days=args.days - 1)

    print(
        f"Nightly lifecycle of {USECASE}: {_short(args.rows)} base rows/day, {args.days}-day window ending "
        f"{args.partition}; CPU: {cpu_name()}, {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with _workdir(args.workdir) as work, LoadSampler() as load:
        main_root, logs = work / "night", work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        usecases = scaled_usecases(work, max(args.rows, args.fixed_rows))
        env = environment(main_root, args.threads, usecases)
        data = generate(main_root, args.rows, first, args.partition, env, logs)
        print(f"  set-up: generate {data['rows']:,} rows in {data['seconds']:.1f} s", flush=True)

        def checkpoint(runs: list[StepRun]) -> None:
            if args.json:
                Path(args.json).write_text(
                    json.dumps({"partial": True, "steps": [asdict(r) for r in runs]}, default=str)
                )

        cap = args.memory_cap_gib * 1024 if args.memory_cap_gib else None
        runs = nightly(
            main_root,
            args.partition,
            args.days,
            env,
            logs,
            load,
            essentials=True,
            checkpoint=checkpoint,
            memory_cap_mib=cap,
        )
        if args.fixed_rows:
            fixed_root, fixed_logs = work / "fixed", logs / "fixed"
            fixed_logs.mkdir(exist_ok=True)
            fixed_env = environment(fixed_root, args.threads, usecases)
            tiny = generate(fixed_root, args.fixed_rows, first, args.partition, fixed_env, fixed_logs)
            print(f"  fixed-cost run: {tiny['rows']:,} rows in the window", flush=True)
            for run, small in zip(
                runs, nightly(fixed_root, args.partition, args.days, fixed_env, fixed_logs, load), strict=True
            ):
                run.fixed_seconds, run.fixed_exit_code = small.wall_seconds, small.exit_code
        if args.importtime:
            for run in runs:
                run.imports = import_profile(run.step, env)
        low, high = load.span()
    day_rows = int(data["rows_per_day"].get(args.partition.isoformat(), 0))
    facts = {
        "command": "python -m mlcycle_dev.benchmarks.nightly " + shlex.join(sys.argv[1:] if argv is None else argv),
        "rows_per_day": args.rows,
        "rows": data["rows"],
        "day_rows": day_rows,
        "days": args.days,
        "partition": args.partition.isoformat(),
        "fixed_rows": args.fixed_rows,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_min": low,
        "load_max": high,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "generate_seconds": data["seconds"],
    }
    facts["totals"] = totals(runs)
    print_table(runs)
    t = facts["totals"]
    print(
        f"  whole night {t['night_seconds']:,.0f} s ({', '.join(f'{k} {v:,.0f} s' for k, v in t['per_dag_seconds'].items())}); "
        f"essential {t['essential_seconds']:,.0f} s; fixed {t['fixed_seconds']:,.0f} s; peak {t['peak_rss_mib']:,.0f} MiB; "
        f"load average {low:.1f}-{high:.1f} (shared machine)"
    )
    if args.markdown:
        Path(args.markdown).write_text(markdown(runs, facts))
    if args.json:
        Path(args.json).write_text(json.dumps({**facts, "steps": [asdict(r) for r in runs]}, indent=2, default=str))
    failed = [r.label for r in runs if r.exit_code not in (OK, NOTHING_TO_DO)]
    if failed:
        print(f"  steps that failed: {failed} (logs under {logs if args.workdir else 'the temporary folder'})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
