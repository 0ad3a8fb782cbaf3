"""`mlcycle <step> --usecase U --partition YYYY-MM-DD [...]`: the one entry point of every lifecycle step.

The same argv runs in a local subprocess (embedded default) and as a Kubernetes pod (production).
Each step prints its JSON result as the last stdout line (and writes it to /airflow/xcom/return.json
inside a pod); the exit code says what happened (see `mlcycle.exitcodes`). Step modules are imported
only when their sub-command runs, so `mlcycle --help` and light steps do not pay for heavy imports.

Sub-commands, flags and help texts are generated from the specs (`mlcycle.specs.catalog`): each body gets its
typed options model, and its result is checked against its result model before it is printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlcycle.exitcodes import STATUS_BY_CODE, ExitCode
from mlcycle.signals import exit_on_sigterm
from mlcycle.specs.catalog import SPECS, CommandSpec, spec_of
from mlcycle.specs.options import Options

XCOM_RETURN = Path("/airflow/xcom/return.json")
TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("mlcycle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlcycle",
        description=(
            "Run one step of the machine-learning lifecycle for one use case and one daily partition. "
            "Exit codes: 0 success, 65 rejected (contract/gate said no: do not retry), "
            "99 nothing to do (skip), anything else an error (retry). The last stdout line is the "
            "step's JSON result."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    for command in SPECS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        if not command.service:
            sub.add_argument("--usecase", required=True, help="use case name (folder under include/usecases)")
            if command.needs_partition:
                sub.add_argument("--partition", required=True, help="the daily partition, YYYY-MM-DD")
            sub.add_argument("--storage-root", help="override MLCYCLE_STORAGE_ROOT (a folder or s3://bucket/prefix)")
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


def run_command(args: argparse.Namespace) -> int:
    """Run the sub-command in `args`; return its exit code (after printing the JSON result)."""
    from mlcycle.config import get_usecase
    from mlcycle.runinfo import AirflowRun
    from mlcycle.settings import storage_root
    from mlcycle.steps.base import NothingToDo, Rejected, StepContext
    from mlcycle.storage.partitions import Storage, parse_partition

    command = spec_of(args.command)
    partition = getattr(args, "partition", None)
    base = {"step": command.name, "usecase": args.usecase, "partition": partition}
    started = time.perf_counter()
    try:
        usecase = get_usecase(args.usecase)
        day = parse_partition(partition) if partition else None
        storage = Storage(args.storage_root or storage_root())
        ctx = StepContext(usecase, day or _today(), storage, AirflowRun.from_env())
        options: Options = command.options.from_namespace(args)
        result = load_body(command)(ctx, options)
        # A result model validates when it is built (`<X>Result.of`): a key that others read is missing fails
        # here, in the producer, not in a reader downstream. The type check makes sure it was that model.
        if not isinstance(result, command.result_model):
            raise TypeError(
                f"{command.body} returned {type(result).__name__}, not its spec's {command.result_model.__name__}"
            )
        document = result.to_dict()
        code = ExitCode.OK
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
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    command = spec_of(args.command)
    if command.service:
        exit_code: int = load_body(command)(command.options.from_namespace(args))
        return exit_code
    with exit_on_sigterm():  # a killed step leaves through `finally`: the registry lease is released
        return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
