"""Benchmark: one big YarnIt partition through validate, score and monitor on each engine (local vs Spark).

    python -m mlcycle_dev.benchmarks.engines --rows 10m,50m [--engines spark,local] [--cap-gib 10]
                                             [--driver-memory 4g] [--train-rows 2000] [--json FILE] [--workdir DIR]
    python -m mlcycle_dev.benchmarks.engines --render 30k.json,10m.json,50m.json   # saved runs: one table

Set-up (timed, reported apart): a fresh storage root and a local MLflow (`embedded_environment`); a use case
copy whose contract admits the benchmark's day (`table.row_count`; the benchmark numbers sessions with 9 digits,
which YarnIt's contract admits); a champion trained by the real steps on a small window (`generate`,
ingest, validate, features, train, evaluate, promote: `--train-rows` sessions a day, 7 days); then per size one
landing partition of exactly N rows as `part-*.parquet` files (`land_partition`: YarnIt days generated in chunks
of at most `CHUNK_BASE_ROWS`, each chunk its own seed and its own session numbers, so no process ever holds the
partition) and its ingest.

Then per size, per engine (the use case folder switched between `engine: local` and `engine: spark`, the latter
with `local_master: local[2]`), the three heavy steps, each as a user runs it: the `mlcycle` CLI in its own process:
validate, score (@champion only), monitor (the drift statistics against the champion's training split, as the
step does). Per step: wall seconds, CPU seconds and the peak RSS of the *process tree* (the step and, on Spark,
its JVM and Python workers; summed over the tree, sampled every `SAMPLE_SECONDS` from /proc), the load average
while it ran. Each step runs under a watchdog that kills its process tree (its own session) when the tree's RSS
passes `--cap-gib`: "exceeded N GiB" is then the measured figure. Where an engine's validate did not finish, the
other engine's validated partition (the same bytes: validate stores the delivery as it arrived) is what its
score and monitor read.

Equality between the engines, on the sizes both finish: validate's status and failed rules; score's rows,
positive decisions, and per row (streamed in partition order, never held whole) the same `prediction_id`s and
decisions and scores within 1e-9; monitor's drift verdicts (dataset, share, per column test and verdict,
prediction drift).

The machine may be shared: every figure comes with the load average it ran under; CPU seconds move less with
load than wall seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.config import USECASES_ENV
from mlcycle.settings import STORAGE_ROOT_ENV
from mlcycle.specs.names import Step
from mlcycle.storage.layout import VERSIONS_FOLDER
from mlcycle_dev.benchmarks.harness import cpu_name
from mlcycle_dev.benchmarks.nightly import (
    USECASE,
    LoadSampler,
    environment,
    generate,
    json_object,
    mlcycle_command,
    scaled_usecases,
)
from mlcycle_dev.benchmarks.score import _short, _sizes

ENGINES = ("spark", "local")
#: The training window (small: training is not what this benchmark measures) and the benchmark's days after it.
TRAIN_FIRST, TRAIN_LAST = dt.date(2026, 9, 1), dt.date(2026, 9, 7)
FIRST_DAY = dt.date(2026, 10, 1)
#: A chunk is one generated "day" (bounds what one process holds: a 50M-row partition never is in memory).
CHUNK_BASE_ROWS = 250_000
#: Rows per landing part file (several chunks, one row group each).
PART_ROWS = 2_000_000
SAMPLE_SECONDS = 0.5
KILLED = -9
STEPS = (Step.VALIDATE, Step.SCORE, Step.MONITOR)


# ------------------------------------------------------------------------------------- the process tree


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant of it (Linux /proc; children of each task of each process)."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # it exited between two reads: nothing of it left to count
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    queue.extend(int(c) for c in handle.read().split())
            except OSError:  # the thread exited: its children were re-parented and are found through others
                continue
    return found


def process_usage(pid: int) -> tuple[float, float] | None:
    """(RSS MiB, CPU seconds) of one process, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" of the command: field 3 (state) is index 0, so utime (14) is 11, stime (15) 12, rss (24) 21.
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return rss, cpu


@dataclass
class Watched:
    """One step's process tree, as the watchdog saw it."""

    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    exceeded: bool
    last_line: str


def run_watched(argv: Sequence[str], env: dict[str, str], log: Path, cap_mib: float) -> Watched:
    """Run ``argv`` in its own session, stdout and stderr to ``log``; kill its whole tree when the tree's RSS
    passes ``cap_mib``. CPU seconds: the larger of the reaped rusage (the step and the children it waited for)
    and the sum of the last CPU times sampled per process of the tree (a JVM the step never reaps)."""
    cpu_seen: dict[int, float] = {}
    peak, exceeded = 0.0, False
    with open(log, "w") as out, tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        child = subprocess.Popen(list(argv), env=env, stdout=stdout, stderr=out, text=True, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            rss = 0.0
            for member in tree_pids(child.pid):
                seen = process_usage(member)
                if seen is not None:
                    rss += seen[0]
                    cpu_seen[member] = seen[1]
            peak = max(peak, rss)
            if rss > cap_mib and not exceeded:
                exceeded = True
                os.killpg(child.pid, signal.SIGKILL)  # the step's own session: it and everything it started
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        if not exceeded:
            try:  # whatever the step left running (a JVM it did not stop) goes with it
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:  # nothing left in its session: the usual case
                pass
        stdout.seek(0)
        text = stdout.read()
        out.write(text)
    last = text.strip().splitlines()[-1] if text.strip() else ""
    cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_seen.values()))
    return Watched(child.returncode, wall, cpu, peak, exceeded, last)


# ------------------------------------------------------------------------------------------- the data


def session_ids(day: dt.date, first: int, rows: int) -> list[str]:
    """``rows`` session ids numbered from ``first`` (0-based) with the benchmark's 9-digit counter."""
    prefix = day.strftime("%Y%m%d")
    return [f"{prefix}-{n:09d}" for n in range(first + 1, first + rows + 1)]


def chunk_plan(rows: int, part_rows: int = PART_ROWS) -> list[int]:
    """Rows per landing part file: ``part_rows`` each, the remainder in the last."""
    if rows < 1:
        raise ValueError(f"a partition needs at least one row, got {rows}")
    return [min(part_rows, rows - start) for start in range(0, rows, part_rows)]


def land_partition(folder: Path, day: dt.date, rows: int, part_rows: int = PART_ROWS) -> list[Path]:
    """A landing partition of exactly ``rows`` YarnIt sessions of ``day``, as ``part-NNNNN.parquet`` + _SUCCESS.

    Chunks of at most CHUNK_BASE_ROWS generated rows (seed = the chunk's number) are written one row group at a
    time, so memory is one chunk's; session ids are renumbered across chunks so the key stays unique."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.synthetic.yarnit import generate_day

    folder.mkdir(parents=True)
    written, done, seed = [], 0, 100
    for index, size in enumerate(chunk_plan(rows, part_rows)):
        path = folder / f"part-{index:05d}.parquet"
        writer: pq.ParquetWriter | None = None
        filled = 0
        while filled < size:
            frame = generate_day(day, seed=seed, base_rows=min(CHUNK_BASE_ROWS, size - filled))
            seed += 1
            frame = frame.head(size - filled)
            frame["session_id"] = session_ids(day, done, len(frame))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            filled += len(frame)
            done += len(frame)
        assert writer is not None
        writer.close()
        written.append(path)
    (folder / "_SUCCESS").write_text("{}")
    return written


def landed_parts(folder: Path, rows: int) -> list[Path] | None:
    """The parts of a complete landing partition of ``rows`` rows already at ``folder`` (`--land-only` wrote it
    ahead of the run), else None; a partial one is removed."""
    import pyarrow.parquet as pq

    if not folder.exists():
        return None
    parts = sorted(folder.glob("part-*.parquet"))
    if (folder / "_SUCCESS").exists() and sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == rows:
        return parts
    shutil.rmtree(folder)  # an interrupted landing: written again
    return None


def benchmark_usecases(workdir: Path, rows: int, driver_memory: str) -> dict[str, Path]:
    """The use case folders of each engine: `scaled_usecases` (row count, gate latency); the Spark copy with `engine: spark` in local mode on two cores."""
    import yaml

    spark = workdir / "spark" / "usecases"
    if spark.exists():  # a kept workdir's, from an earlier run
        return {"local": workdir / "local" / "usecases", "spark": spark}
    local = scaled_usecases(workdir / "local", rows)
    shutil.copytree(local, spark)
    config = spark / USECASE / "usecase.yaml"
    data = yaml.safe_load(config.read_text())
    data["engine"] = "spark"
    data["spark"] = {**data.get("spark", {}), "local_master": "local[2]", "driver_memory": driver_memory}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"local": local, "spark": spark}


# --------------------------------------------------------------------------------------------- the runs


@dataclass
class StepMeasure:
    """One step of one engine on one partition size."""

    rows: int
    engine: str
    step: str
    exit_code: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    exceeded_cap_gib: float | None = None
    load: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    log: str = ""

    @property
    def finished(self) -> bool:
        return self.exit_code == 0 and self.exceeded_cap_gib is None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.wall_seconds if self.finished and self.wall_seconds > 0 else None

    @property
    def rows_per_cpu_second(self) -> float | None:
        return self.rows / self.cpu_seconds if self.finished and self.cpu_seconds > 0 else None


def step_argv(step: str, day: dt.date, *extra: str) -> list[str]:
    return [*mlcycle_command(), step, "--usecase", USECASE, "--partition", day.isoformat(), *extra]


def train_champion(env: dict[str, str], logs: Path, rows_per_day: int) -> str:
    """A @champion trained by the real steps on TRAIN_FIRST..TRAIN_LAST; its version."""
    generate(Path(env[STORAGE_ROOT_ENV]), rows_per_day, TRAIN_FIRST, TRAIN_LAST, env, logs)
    window = ["--lookback", str((TRAIN_LAST - TRAIN_FIRST).days + 1)]
    known: dict[str, str] = {}
    plan: list[tuple[str, list[str]]] = [
        (Step.INGEST, window),
        (Step.VALIDATE, window),
        (Step.FEATURES, []),
        (Step.TRAIN, []),
        (Step.EVALUATE, ["--model-version", "{version}"]),
        (Step.PROMOTE, ["--decision", "{decision}"]),
    ]
    for step, extra in plan:
        argv = step_argv(step, TRAIN_LAST, *(a.format(**known) for a in extra))
        log = logs / f"train-{step}.log"
        done = run_watched(argv, env, log, float("inf"))
        if done.exit_code != 0:
            raise RuntimeError(f"set-up step {step} failed ({done.exit_code}); see {log}")
        result = json_object(done.last_line)
        if step == Step.TRAIN:
            known["version"] = str(result["metrics"]["model_version"])
        if step == Step.EVALUATE:
            known["decision"] = str(result["outputs"]["decision"])
        if step == Step.PROMOTE and result.get("metrics", {}).get("action") != "promote":
            raise RuntimeError(f"the set-up's candidate was not promoted; see {log}")
    return known["version"]


def partition_folder(root: Path, dataset: str, day: dt.date, sub: str | None = None) -> Path:
    folder = root / USECASE / dataset / f"ds={day.isoformat()}"
    return folder / sub if sub else folder


def remove_partition(folder: Path) -> None:
    """A partition's data (GBs at these sizes): the folder, or the version folder a committed link points to,
    and every other version of it (the storage layer keeps them beside the link)."""
    if folder.is_symlink():
        folder.unlink()
    versions = folder.parent / VERSIONS_FOLDER / folder.name
    for path in (folder, versions):
        if path.exists():
            shutil.rmtree(path)


def predictions_folder(root: Path, day: dt.date) -> Path:
    """The champion's committed predictions of ``day`` (the only role scored here)."""
    from mlcycle.specs.names import ModelRole
    from mlcycle.storage.layout import role_sub

    return partition_folder(root, "predictions", day, role_sub(ModelRole.CHAMPION))


def run_engine(
    engine: str,
    rows: int,
    day: dt.date,
    env: dict[str, str],
    usecases: Path,
    logs: Path,
    load: LoadSampler,
    cap_mib: float,
    kept: Path,
    steps: Sequence[str] = STEPS,
) -> list[StepMeasure]:
    """validate, score, monitor of ``day`` on one engine; the committed predictions moved to ``kept``."""
    root = Path(env[STORAGE_ROOT_ENV])
    env = {**env, USECASES_ENV: str(usecases)}
    validated = partition_folder(root, "validated", day)
    measures = []
    for step in steps:
        spare = None
        if step == Step.VALIDATE and validated.is_symlink():
            # Another engine's (a committed partition is a link to its version folder): unlinked so this engine
            # validates for real, and linked again if this one cannot finish (the version folder stays).
            spare = os.readlink(validated)
            validated.unlink()
        measure = StepMeasure(rows, engine, str(step))
        log = logs / f"{_short(rows)}-{engine}-{step}.log"
        started = time.monotonic()
        done = run_watched(step_argv(step, day), env, log, cap_mib)
        measure.exit_code, measure.wall_seconds = done.exit_code, done.wall_seconds
        measure.cpu_seconds, measure.peak_rss_mib = done.cpu_seconds, done.peak_rss_mib
        measure.exceeded_cap_gib = cap_mib / 2**10 if done.exceeded else None
        measure.load = load.mean(started, time.monotonic())
        measure.result, measure.log = json_object(done.last_line), str(log)
        measures.append(measure)
        outcome = f"exceeded {measure.exceeded_cap_gib:g} GiB" if done.exceeded else f"exit {done.exit_code}"
        print(
            f"  {_short(rows):>4} {engine:<6} {step:<9} {outcome:<18} {done.wall_seconds:8.1f} s  "
            f"CPU {done.cpu_seconds:8.1f} s  peak {done.peak_rss_mib:8,.0f} MiB  load {measure.load:4.1f}",
            flush=True,
        )
        if spare is not None and not measure.finished and not validated.is_symlink():
            validated.symlink_to(spare)
    served = predictions_folder(root, day)
    if served.is_symlink():  # after monitor, which reads them: this engine's predictions, kept for the comparison
        shutil.move(served.resolve(), kept / f"predictions-{engine}")
        served.unlink()
    return measures


# ----------------------------------------------------------------------------------------------- equality


def _batches(folder: Path, columns: list[str]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    for part in sorted(folder.glob("part-*.parquet")):
        yield from pq.ParquetFile(part).iter_batches(batch_size=1_000_000, columns=columns)


def compare_predictions(first: Path, second: Path) -> dict[str, Any]:
    """Row by row in partition order (part files in name order), streamed: ids, decisions, max |score diff|."""
    import numpy as np
    import pyarrow as pa

    columns = ["prediction_id", "decision", "score"]
    rows = id_mismatches = decision_mismatches = 0
    max_diff = 0.0
    left, right = _batches(first, columns), _batches(second, columns)
    pending: list[pa.RecordBatch] = []
    for batch in left:
        # The two engines' row groups have different sizes: take as many rows from the other side.
        need = batch.num_rows
        taken = []
        while need > 0:
            other = pending.pop(0) if pending else next(right, None)
            if other is None:
                raise ValueError(f"{second} has fewer rows than {first} ({rows + batch.num_rows - need} seen)")
            if other.num_rows > need:
                pending.insert(0, other.slice(need))
                other = other.slice(0, need)
            taken.append(other)
            need -= other.num_rows
        mine = batch.to_pydict()
        theirs = pa.Table.from_batches(taken).to_pydict()
        id_mismatches += sum(a != b for a, b in zip(mine["prediction_id"], theirs["prediction_id"], strict=True))
        decision_mismatches += sum(a != b for a, b in zip(mine["decision"], theirs["decision"], strict=True))
        diff = np.abs(np.asarray(mine["score"], dtype="float64") - np.asarray(theirs["score"], dtype="float64"))
        max_diff = max(max_diff, float(diff.max()) if len(diff) else 0.0)
        rows += batch.num_rows
    if pending or next(right, None) is not None:
        raise ValueError(f"{second} has more rows than {first} ({rows})")
    return {
        "rows": rows,
        "id_mismatches": id_mismatches,
        "decision_mismatches": decision_mismatches,
        "max_score_diff": max_diff,
        "equal": id_mismatches == 0 and decision_mismatches == 0 and max_diff <= 1e-9,
    }


def validate_facts(result: dict[str, Any]) -> dict[str, Any]:
    """What must match between engines in a validate result: the verdict, the rules evaluated and the failed
    rules with their counts (not the sampled values: each engine samples the offending values its own way)."""
    # A passed day's summary is among the metrics; a rejected day's (exit 65) at the top of the result.
    summary = result.get("metrics", {}).get("summary") or result.get("summary") or {}
    failed = sorted(
        (f.get("rule"), f.get("column"), f.get("severity"), f.get("unexpected_count"))
        for f in summary.get("failed", [])
    )
    counts = {k: summary.get(k) for k in ("success", "evaluated", "hard_failures", "soft_failures")}
    return {"status": result.get("status"), **counts, "failed": failed}


def drift_facts(result: dict[str, Any]) -> dict[str, Any]:
    """What must match between engines in a monitor result: the drift verdicts."""
    metrics = result.get("metrics", {})
    return {
        "dataset_drift": metrics.get("dataset_drift"),
        "drift_share": metrics.get("drift_share"),
        "drifted_columns": metrics.get("drifted_columns"),
        "prediction_drift": metrics.get("prediction_drift"),
        "columns": [(c["column"], c["test"], c["drifted"]) for c in metrics.get("columns", [])],
    }


def compare_engines(measures: list[StepMeasure], kept: Path) -> dict[str, Any]:
    """The engines' results on one size, step by step, where both finished."""
    by = {(m.engine, m.step): m for m in measures}
    engines = sorted({m.engine for m in measures})
    if len(engines) != 2:
        return {}
    first, second = engines
    equality: dict[str, Any] = {}
    for step, facts in ((Step.VALIDATE, validate_facts), (Step.MONITOR, drift_facts)):
        a, b = by.get((first, step)), by.get((second, step))
        if a and b and a.finished and b.finished:
            equality[str(step)] = {"equal": facts(a.result) == facts(b.result), first: facts(a.result)}
            if not equality[str(step)]["equal"]:
                equality[str(step)][second] = facts(b.result)
    a, b = by.get((first, Step.SCORE)), by.get((second, Step.SCORE))
    if a and b and a.finished and b.finished:
        equality[str(Step.SCORE)] = compare_predictions(kept / f"predictions-{first}", kept / f"predictions-{second}")
        for key in ("rows", "positive_decisions"):
            equality[str(Step.SCORE)][f"same_{key}"] = a.result["metrics"][key] == b.result["metrics"][key]
    return equality


# --------------------------------------------------------------------------------------------- the table


def _figure(value: float | None, fmt: str = ",.0f") -> str:
    return "—" if value is None else format(value, fmt)


def markdown_table(measures: list[StepMeasure]) -> str:
    lines = [
        "| rows | step | engine | wall s | CPU s | rows/s | rows per CPU s | peak RSS (tree) | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in sorted(measures, key=lambda m: (m.rows, STEPS.index(Step(m.step)), m.engine)):
        if m.exceeded_cap_gib is not None:
            peak = f"**exceeded {m.exceeded_cap_gib:g} GiB** (killed at {m.wall_seconds:,.0f} s)"
        else:
            peak = f"{m.peak_rss_mib:,.0f} MiB" + ("" if m.exit_code == 0 else f" (exit {m.exit_code})")
        lines.append(
            f"| {_short(m.rows)} | {m.step} | {m.engine} | {_figure(m.wall_seconds, ',.1f')} | "
            f"{_figure(m.cpu_seconds, ',.1f')} | {_figure(m.rows_per_second)} | {_figure(m.rows_per_cpu_second)} | "
            f"{peak} | {m.load:.1f} |"
        )
    return "\n".join(lines)


def marginal_rates(measures: list[StepMeasure]) -> str:
    """Per engine and step, the rows per CPU second that each size adds over the smallest finished one:
    (rows - rows₀) / (CPU s - CPU s₀), the fixed part (imports, JVM start, GX set-up) taken out (docs/scale.md)."""
    lines = ["| engine | step | from | to | marginal rows per CPU s |", "|---|---|---|---|---|"]
    done = sorted((m for m in measures if m.finished), key=lambda m: (m.engine, STEPS.index(Step(m.step)), m.rows))
    for (engine, step), group in itertools.groupby(done, key=lambda m: (m.engine, m.step)):
        base, *larger = list(group)
        for m in larger:
            rate = (
                (m.rows - base.rows) / (m.cpu_seconds - base.cpu_seconds) if m.cpu_seconds > base.cpu_seconds else None
            )
            lines.append(f"| {engine} | {step} | {_short(base.rows)} | {_short(m.rows)} | {_figure(rate)} |")
    return "\n".join(lines)


def render(files: list[str]) -> str:
    """The table and the marginal rates of saved runs (``--json`` files), one table across them."""
    measures = [StepMeasure(**m) for f in files for m in json.loads(Path(f).read_text())["measures"]]
    return markdown_table(measures) + "\n\n" + marginal_rates(measures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=_sizes, default=[10_000_000], help="partition sizes, e.g. 10m,50m")
    parser.add_argument("--engines", default=",".join(ENGINES), help="in this order per size (default spark,local)")
    parser.add_argument("--steps", default=",".join(STEPS), help="in this order (default validate,score,monitor)")
    parser.add_argument("--cap-gib", type=float, default=10.0, help="kill a step's process tree above this RSS")
    parser.add_argument("--driver-memory", default="4g", help="the Spark driver's JVM (local mode: all of Spark)")
    parser.add_argument("--train-rows", type=int, default=2_000, help="sessions a day of the training window")
    parser.add_argument("--part-rows", type=int, default=PART_ROWS, help="rows per landing part file")
    parser.add_argument(
        "--land-only", action="store_true", help="write the landing partitions (and train) only; a later run uses them"
    )
    parser.add_argument("--json", default=None, help="also write the measures and equality to this file")
    parser.add_argument(
        "--workdir",
        default=None,
        help="keep everything here; a second run reuses its champion (default: a temp folder)",
    )
    parser.add_argument(
        "--render", default=None, help="print the table of saved --json runs (comma-separated) and stop"
    )
    args = parser.parse_args(argv)
    if args.render:
        print(render([f for f in args.render.split(",") if f]))
        return 0
    engines = [e for e in args.engines.split(",") if e]
    steps = [s for s in args.steps.split(",") if s]
    if unknown := sorted(set(steps) - set(STEPS)):
        parser.error(f"unknown step(s) {unknown}; expected some of {list(STEPS)}")
    if unknown := sorted(set(engines) - set(ENGINES)):
        parser.error(f"unknown engine(s) {unknown}; expected some of {list(ENGINES)}")

    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-engines-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        folders = benchmark_usecases(workdir, max(args.rows), args.driver_memory)
        env = environment(workdir / "root", None, folders["local"])
        root = Path(env[STORAGE_ROOT_ENV])
        report: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count(), "sizes": [], "measures": []}
        with LoadSampler() as load:
            started = time.perf_counter()
            trained = workdir / "champion.json"
            if trained.exists():  # a kept workdir (--workdir) has its champion already: training is not measured
                report["champion"] = json.loads(trained.read_text())["version"]
            else:
                report["champion"] = train_champion(env, logs, args.train_rows)
                trained.write_text(json.dumps({"version": report["champion"]}))
            report["train_seconds"] = time.perf_counter() - started
            print(
                f"Engines on one YarnIt partition; CPU {report['cpu']}, {report['cores']} cores; champion "
                f"v{report['champion']} trained in {report['train_seconds']:.0f} s",
                flush=True,
            )
            for index, rows in enumerate(args.rows):
                day = FIRST_DAY + dt.timedelta(days=index)
                started = time.perf_counter()
                parts = landed_parts(partition_folder(root, "landing", day), rows)
                if parts is None:
                    parts = land_partition(partition_folder(root, "landing", day), day, rows, args.part_rows)
                landed = time.perf_counter() - started
                if args.land_only:
                    print(f"  {_short(rows):>4} landed {len(parts)} parts in {landed:.0f} s", flush=True)
                    continue
                ingest = run_watched(step_argv(Step.INGEST, day), env, logs / f"{_short(rows)}-ingest.log", 1e12)
                if ingest.exit_code != 0:
                    raise RuntimeError(f"ingest of {_short(rows)} failed; see {logs}")
                size_bytes = sum(p.stat().st_size for p in parts)
                print(
                    f"  {_short(rows):>4} landed {len(parts)} parts, {size_bytes / 2**20:,.0f} MiB in {landed:.0f} s;"
                    f" ingest {ingest.wall_seconds:.0f} s",
                    flush=True,
                )
                kept = workdir / "kept" / _short(rows)
                shutil.rmtree(kept, ignore_errors=True)  # an interrupted run's
                kept.mkdir(parents=True)
                measures = []
                for engine in engines:
                    measures += run_engine(
                        engine, rows, day, env, folders[engine], logs, load, args.cap_gib * 2**10, kept, steps
                    )
                try:
                    equality = compare_engines(measures, kept)
                except (OSError, ValueError, KeyError) as exc:
                    # Safe to keep going: the measures stand on their own, and the failure is the reported equality.
                    equality = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {_short(rows):>4} equality: {json.dumps(equality)}", flush=True)
                shutil.rmtree(kept)  # the predictions: GBs at these sizes
                for dataset in ("landing", "raw", "validated"):
                    remove_partition(partition_folder(root, dataset, day))
                report["sizes"].append(
                    {
                        "rows": rows,
                        "parts": len(parts),
                        "bytes": size_bytes,
                        "land_seconds": landed,
                        "equality": equality,
                    }
                )
                report["measures"] += [asdict(m) for m in measures]
                report["table"] = markdown_table(
                    [StepMeasure(**{k: v for k, v in m.items()}) for m in report["measures"]]
                )
                if args.json:  # after every size: a long run interrupted keeps what it measured
                    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
            low, high = load.span()
        report["load_span"] = [low, high]
        print(report.get("table", ""))
        print(f"load average {low:.1f}-{high:.1f} over the run")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
