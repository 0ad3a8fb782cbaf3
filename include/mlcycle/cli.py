"""`mlcycle <step> --usecase U --partition YYYY-MM-DD [...]`: the one entry point of every lifecycle step.

The same argv runs in a local subprocess (embedded default) and as a Kubernetes pod (production).
Each step prints its JSON result as the last stdout line (and writes it to /airflow/xcom/return.json
inside a pod); the exit code says what happened (see `mlcycle.exitcodes`). Every argument is checked by
argparse before anything is read: a bad one, like a use case that cannot be loaded, is a usage error (64).
Step modules are imported only when their sub-command runs, so `mlcycle --help` and light steps do not pay
for heavy imports.

Sub-commands, flags and help texts are generated from the specs (`mlcycle.specs.catalog`): each body gets its
typed options model, and its result is checked against its result model before it is printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from mlcycle.exitcodes import STATUS_BY_CODE, ExitCode
from mlcycle.signals import exit_on_sigterm
from mlcycle.specs.catalog import SPECS, CommandSpec, spec_of
from mlcycle.specs.options import Options, argument_type, flag, partition_day, storage_root, usecase_name

XCOM_RETURN = Path("/airflow/xcom/return.json")
TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("mlcycle")

# OpenMP and the BLAS libraries start one thread per core of the host, not per the pod's CPU limit: under a limit of
# 2 cores on a 64-core node, 64 threads share 2 cores' time (tune: 525 s -> 125 s wall when capped).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPU limit of this process's cgroup in cores (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), None when there is none or no cgroup file system. A file that says something else is
    an error naming it: a limit misread would silently run the steps with the host's thread count."""
    v2 = cgroup_root / "cpu.max"
    if v2.is_file():
        text = v2.read_text().split()
        if len(text) == 2 and text[0] == "max":
            return None
        if len(text) == 2 and text[0].isdigit() and text[1].isdigit() and int(text[1]) > 0:
            return int(text[0]) / int(text[1])
        raise ValueError(f"{v2}: expected '<quota|max> <period>', found {' '.join(text)!r}")
    for folder in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"):
        quota, period = folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"
        if quota.is_file() and period.is_file():
            values = quota.read_text().strip(), period.read_text().strip()
            if values[0] == "-1":
                return None
            if values[0].isdigit() and values[1].isdigit() and int(values[1]) > 0:
                return int(values[0]) / int(values[1])
            raise ValueError(f"{quota}, {period}: expected a quota (or -1) and a positive period, found {values}")
    return None


def cap_threads_to_cpu_quota(environ: MutableMapping[str, str], cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """Set `THREAD_VARIABLES` to ceil(the cgroup's CPU quota) unless OMP_NUM_THREADS is set already; the cap set.

    Called before any step imports numpy or scikit-learn: the libraries read these variables when they load.
    """
    if environ.get("OMP_NUM_THREADS"):
        return None
    quota = cpu_quota(cgroup_root)
    if quota is None:
        return None
    threads = max(1, math.ceil(quota))
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(threads))
    return threads


class UsageErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE, never retried) instead of 2, with a JSON result naming the
    argument, so both launchers fail the task at once with that message."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        reason = f"usage: {message}"
        _termination_message(f"{STATUS_BY_CODE[ExitCode.USAGE]}: {reason}")
        _emit({"status": STATUS_BY_CODE[ExitCode.USAGE], "reason": reason})
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageErrorParser(
        prog="mlcycle",
        description=(
            "Run one step of the machine-learning lifecycle for one use case and one daily partition. "
            "Exit codes: 0 success, 65 rejected (contract/gate said no: do not retry), 99 nothing to do "
            "(skip), 64 usage error (bad argument or use case: do not retry), anything else an error (retry). "
            "The last stdout line is the step's JSON result."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    for command in SPECS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        if not command.service:
            sub.add_argument(
                "--usecase",
                required=True,
                type=argument_type(usecase_name),
                help="use case name (folder under include/usecases)",
            )
            if command.needs_partition:
                sub.add_argument(
                    "--partition",
                    required=True,
                    type=argument_type(partition_day),
                    help="the daily partition, YYYY-MM-DD",
                )
            sub.add_argument(
                "--storage-root",
                type=argument_type(storage_root),
                help="override MLCYCLE_STORAGE_ROOT (a folder or s3://bucket/prefix)",
            )
        command.options.add_arguments(sub)
    return parser


def load_body(command: CommandSpec) -> Callable[..., Any]:
    """The command's heavy body, imported only now (its dotted path is in the spec)."""
    module, _, function = command.body.rpartition(".")
    body: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return body


def _emit(document: dict[str, Any]) -> None:
    line = json.dumps(document, sort_keys=True, default=str)
    if XCOM_RETURN.parent.is_dir():  # inside a pod, KPO's xcom sidecar reads this file
        XCOM_RETURN.write_text(line)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _termination_message(message: str) -> None:
    # Kubernetes shows this file's content as the pod's failure reason; it exists only in a pod.
    if TERMINATION_LOG.exists():
        try:
            TERMINATION_LOG.write_text(message[:4000])
        except OSError:
            pass


def parse_options(parser: argparse.ArgumentParser, command: CommandSpec, args: argparse.Namespace) -> Options:
    """The command's typed options; what only the whole model can check (its validators) is a usage error too."""
    try:
        return command.options.from_namespace(args)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = flag(str(error["loc"][0])) if error["loc"] else command.options.__name__
        parser.error(f"argument {where}: {error['msg']}")


def run_command(args: argparse.Namespace, options: Options) -> int:
    """Run the sub-command in `args`; return its exit code (after printing the JSON result)."""
    from mlcycle.config import UseCaseConfigError, get_usecase
    from mlcycle.runinfo import AirflowRun
    from mlcycle.settings import storage_root
    from mlcycle.steps.base import NothingToDo, Rejected, StepContext
    from mlcycle.storage.partitions import Storage

    command = spec_of(args.command)
    day = getattr(args, "partition", None)  # a date: argparse checked it
    base = {"step": command.name, "usecase": args.usecase, "partition": day and day.isoformat()}
    started = time.perf_counter()
    try:
        usecase = get_usecase(args.usecase)
        storage = Storage(args.storage_root or storage_root())
        ctx = StepContext(usecase, day or _today(), storage, AirflowRun.from_env())
        result = load_body(command)(ctx, options)
        # A result model validates when it is built (`<X>Result.of`): a key that others read is missing fails
        # here, in the producer, not in a reader downstream. The type check makes sure it was that model.
        if not isinstance(result, command.result_model):
            raise TypeError(
                f"{command.body} returned {type(result).__name__}, not its spec's {command.result_model.__name__}"
            )
        document = result.to_dict()
        code = ExitCode.OK
    except UseCaseConfigError as exc:  # a person must fix the use case's files: retrying cannot help
        code, document = ExitCode.USAGE, {**base, "reason": str(exc)}
        log.error("use case %r cannot be used: %s", args.usecase, exc)
    except Rejected as exc:
        code, document = ExitCode.REJECTED, {**base, "reason": exc.reason, **exc.details}
        log.error("REJECTED: %s", exc.reason)
    except NothingToDo as exc:
        code, document = ExitCode.NOTHING_TO_DO, {**base, "reason": exc.reason, **exc.details}
        log.warning("nothing to do: %s", exc.reason)
    except Exception as exc:
        traceback.print_exc()
        code, document = ExitCode.ERROR, {**base, "reason": f"{type(exc).__name__}: {exc}"}
    document["status"] = STATUS_BY_CODE[code]
    document["seconds"] = round(time.perf_counter() - started, 3)
    if code != ExitCode.OK:
        _termination_message(f"{document['status']}: {document.get('reason', '')}")
    _emit(document)
    return int(code)


def _today() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC).date()


def main(argv: Sequence[str] | None = None) -> int:
    cap_threads_to_cpu_quota(os.environ)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    command = spec_of(args.command)
    options = parse_options(parser, command, args)
    if command.service:
        exit_code: int = load_body(command)(options)
        return exit_code
    with exit_on_sigterm():  # a killed step leaves through `finally`: the registry lease is released
        return run_command(args, options)


def entrypoint() -> int:
    """The `mlcycle` command (console script, `python -m mlcycle.cli`): `main`, then a quick interpreter exit.

    Once the result is printed, what is left is the interpreter's shutdown, whose garbage collections walk every
    object the step's imports created (GX, MLflow, sklearn, pydantic models): 2-25 s per step task at load 15-28,
    0.1-1 s with those objects frozen (docs/benchmarks.md, Orchestration overhead). `gc.freeze` leaves them to the
    process's end, which frees all memory anyway; atexit handlers (MLflow's) still run and module teardown still
    closes files. Tests call `main` in-process and are not affected.
    """
    import gc

    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(entrypoint())
