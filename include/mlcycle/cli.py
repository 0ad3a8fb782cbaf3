"""`mlcycle <step> --usecase U --partition YYYY-MM-DD [...]`: the one entry point of every lifecycle step.

The same argv runs in a local subprocess (embedded default) and as a Kubernetes pod (production).
Each step prints its JSON result as the last stdout line (and writes it to /airflow/xcom/return.json
inside a pod); the exit code says what happened (see `mlcycle.exitcodes`). Step modules are imported
only when their sub-command runs, so `mlcycle --help` and light steps do not pay for heavy imports.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.exitcodes import STATUS_BY_CODE, ExitCode

XCOM_RETURN = Path("/airflow/xcom/return.json")
TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("mlcycle")


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str
    description: str
    args: tuple[Arg, ...] = ()
    needs_partition: bool = True
    #: A long-running service (no use case, no JSON result): `module.main(args)` returns the exit code.
    service: bool = False


_LOOKBACK = Arg(
    ("--lookback",),
    {
        "type": int,
        "default": 1,
        "metavar": "DAYS",
        "help": "also process the DAYS-1 partitions before --partition that are not done yet "
        "(the training DAG uses its window; default 1: this partition only)",
    },
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "ingest",
        "mlcycle.steps.ingest",
        "copy a landing partition into an immutable raw snapshot with its digest",
        "Reads <root>/<usecase>/landing/ds=D/data.parquet or data.csv (UTF-8, comma-delimited, header) and "
        "commits <root>/<usecase>/raw/ds=D/: the original bytes, with a manifest recording digest and format. "
        "Re-running with unchanged landing data changes nothing. A missing landing partition is an error "
        "(retried: data may still arrive).",
        (_LOOKBACK,),
    ),
    Command(
        "validate",
        "mlcycle.steps.validate",
        "check a raw partition against the use case's data contract (Great Expectations)",
        "Compiles the use case's contract into a Great Expectations suite and validates raw/ds=D, with the "
        "training profile (every rule) or, with --serving, the serving profile (no rules on the target). "
        "Passing data is committed to validated/ds=D (manifest: profile, summary, soft warnings); data failing "
        "a hard rule, or unreadable input, goes to quarantine/ds=D with reason.json and the step exits "
        "REJECTED (65). validation.json (the full GX result) and report.html are stored with the partition "
        "and logged to the DAG run's MLflow parent run under validation/<D>/.",
        (
            _LOOKBACK,
            Arg(
                ("--serving",),
                {
                    "action": "store_true",
                    "help": "validate with the serving profile: every rule except those on the target, which may "
                    "be absent (the scoring DAG's gate)",
                },
            ),
        ),
    ),
    Command(
        "features",
        "mlcycle.steps.features",
        "build the train/valid/test splits of the training window ending at the partition",
        "Reads the partitions of the window (usecase.yaml: split.window_days) validated with the training "
        "profile, keeps the "
        "model's columns and cuts them by time: the latest test_days are test, the valid_days before "
        "are valid, the rest train. Exits NOTHING_TO_DO (99) when fewer than split.min_partitions exist.",
    ),
    Command(
        "train",
        "mlcycle.steps.train",
        "fit the use case's model on the splits, log it to MLflow and register it as @challenger",
        "Fits the model family of usecase.yaml (preprocessing inside the logged pipeline), logs params, "
        "per-split metrics, datasets (with digests) and Airflow tags to one parent run per DAG run, and "
        "registers the model version with the @challenger alias. If a version was already trained on the "
        "same data digests, config and code, it is reused (a cache hit) unless --cache off.",
        (Arg(("--cache",), {"choices": ["on", "off"], "default": "on", "help": "reuse an identical earlier run"}),),
    ),
    Command(
        "evaluate",
        "mlcycle.steps.evaluate",
        "compare a candidate version with the current @champion on the same frozen test set",
        "Scores the candidate and the current champion on the partition's test split, applies the gate "
        "thresholds and writes a decision record (promote / reject) that pins the champion it saw.",
        (Arg(("--model-version",), {"required": True, "help": "the candidate model version"}),),
    ),
    Command(
        "promote",
        "mlcycle.steps.promote",
        "move @champion (compare-and-set), from a gate decision or a manual promote/rollback",
        "With --decision: applies a gate decision record; skipped (99) unless it says promote. With "
        "--action promote --model-version V: promotes a reviewed version. With --action rollback: "
        "returns @champion to the version it replaced. The champion is only moved if it is still the one "
        "the decision saw (else REJECTED, 65).",
        (
            Arg(("--decision",), {"help": "URI of a decision record written by `evaluate`"}),
            Arg(("--action",), {"choices": ["promote", "rollback"], "default": "promote"}),
            Arg(("--model-version",), {"help": "version to promote (manual promotion)"}),
            Arg(("--approver",), {"default": "", "help": "who approved a manual promotion"}),
            Arg(("--reason",), {"default": "", "help": "why (recorded on the model version)"}),
        ),
    ),
    Command(
        "score",
        "mlcycle.steps.score",
        "score a validated partition with @champion, and shadow-score it with @challenger",
        "Resolves @champion (and @challenger, if it is another version) to versions at the start, streams "
        "validated/ds=D in chunks and commits predictions/ds=D/role=champion (served) and role=challenger "
        "(shadow, never served) with prediction_id, model name/version/role, score, decision and scored_for. "
        "A failing shadow is reported, not fatal. Exits NOTHING_TO_DO (99) when there is no champion yet.",
    ),
    Command(
        "monitor",
        "mlcycle.steps.monitor",
        "Evidently reports: data drift, prediction drift and (once labels arrived) performance",
        "Compares validated/ds=D with the champion's training split (KS for numeric, chi-squared for "
        "categorical columns by default), the champion's served scores on D with its scores on that split, "
        "and, for D minus target.label_delay_days, the served predictions joined with the labels against the "
        "version's test metric at training time. Stores report.html/json, summary.json, prediction/, "
        "performance.html/json under monitoring/ds=D, logs them to the DAG run's MLflow run and returns the "
        "per-column verdicts, performance and new labelled rows (what the retraining policy reads).",
    ),
    Command(
        "freshness",
        "mlcycle.steps.freshness",
        "alert when the champion is older than its budget or training has stopped",
        "Counts, in partitions up to --partition, the champion's age (days since the end of its training "
        "window) and the gap since the newest training window of any registered version, against "
        "usecase.yaml's freshness budgets. Over budget: REJECTED (65) with a one-line reason, so the task "
        "fails without retry and its alert links docs/runbooks/model-stale.md.",
    ),
    Command(
        "report",
        "mlcycle.steps.report",
        "list every registered version of the use case's model and when it held @champion",
        "Reads the MLflow registry: versions, aliases, gate decisions, the Airflow run that trained each, "
        "the @champion periods, previous champions and approvers (the audit trail for rollbacks).",
        needs_partition=False,
    ),
    Command(
        "rerun",
        "mlcycle.rerun",
        "re-run one day of a use case through Airflow's REST API, with the reason on record",
        "Triggers <usecase>_<dag> (scoring by default) for --partition as a manual DAG run whose conf carries "
        "the partition and the reason (recorded on the MLflow runs the rerun creates). Talks to "
        "AIRFLOW_API_URL with AIRFLOW_API_TOKEN, or AIRFLOW_USERNAME/AIRFLOW_PASSWORD. Every alert message "
        "ends with the rerun command that fits it. Airflow refusing the run (unknown DAG, run id exists) is "
        "REJECTED (65); Airflow unreachable is an error.",
        (
            Arg(("--dag",), {"choices": ["scoring", "monitoring", "training"], "default": "scoring"}),
            Arg(("--reason",), {"required": True, "help": "why (at least 3 characters)"}),
        ),
    ),
    Command(
        "alert-receiver",
        "mlcycle.alert_receiver",
        "serve an Alertmanager webhook that turns firing alerts into DAG runs",
        "POST /alerts (Alertmanager webhook format, version 4) with `Authorization: Bearer "
        "$MLCYCLE_WEBHOOK_TOKEN`: each firing alert labelled with a known `usecase` becomes a run of "
        "<usecase>_<dag> (label `dag`, default by alert name) for label `partition` (default: the day before "
        "the alert started), the alert in the run's conf. Repeats of an alert are deduplicated; malformed "
        "or unauthenticated requests are refused (400/401). GET /healthz for probes.",
        (
            Arg(("--host",), {"default": "127.0.0.1", "help": "0.0.0.0 in a pod"}),
            Arg(("--port",), {"type": int, "default": 8085}),
        ),
        needs_partition=False,
        service=True,
    ),
    Command(
        "generate",
        "mlcycle.steps.generate",
        "write synthetic YarnIt landing partitions (the demo data source)",
        "Generates deterministic daily partitions (seeded by --seed and the date) into "
        "landing/ds=D for D in [--start, --end], with optional scenarios switched on for date ranges.",
        (
            Arg(("--start",), {"required": True, "help": "first day, YYYY-MM-DD"}),
            Arg(("--end",), {"required": True, "help": "last day, YYYY-MM-DD (inclusive)"}),
            Arg(("--seed",), {"type": int, "default": 7}),
            Arg(("--rows",), {"type": int, "default": 3000, "help": "base rows per day"}),
            Arg(
                ("--scenario",),
                {
                    "action": "append",
                    "default": [],
                    "metavar": "NAME:FROM[:TO]",
                    "help": "e.g. covariate_shift:2026-09-15:2026-09-21 (repeatable)",
                },
            ),
        ),
        needs_partition=False,
    ),
)


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
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        if command.service:
            for arg in command.args:
                sub.add_argument(*arg.flags, **arg.options)
            continue
        sub.add_argument("--usecase", required=True, help="use case name (folder under include/usecases)")
        if command.needs_partition:
            sub.add_argument("--partition", required=True, help="the daily partition, YYYY-MM-DD")
        sub.add_argument("--storage-root", help="override MLCYCLE_STORAGE_ROOT (a folder or s3://bucket/prefix)")
        for arg in command.args:
            sub.add_argument(*arg.flags, **arg.options)
    return parser


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

    command = next(c for c in COMMANDS if c.name == args.command)
    partition = getattr(args, "partition", None)
    base = {"step": command.name, "usecase": args.usecase, "partition": partition}
    started = time.perf_counter()
    try:
        usecase = get_usecase(args.usecase)
        day = parse_partition(partition) if partition else None
        storage = Storage(args.storage_root or storage_root())
        ctx = StepContext(usecase, day or _today(), storage, AirflowRun.from_env())
        module = importlib.import_module(command.module)
        step: Callable[[StepContext, argparse.Namespace], Any] = module.main
        result = step(ctx, args)
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
    command = next(c for c in COMMANDS if c.name == args.command)
    if command.service:
        service: Callable[[argparse.Namespace], int] = importlib.import_module(command.module).main
        return service(args)
    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
