"""`python -m mlcycle_dev.stack up|down|status|env|restart|stop|start` -- the local production-like stack.

`make up` / `make down` call `up` / `down`. The session's state (PIDs, ports, credentials, environment) is in
`$MLCYCLE_HOME/stack/state.json`; `eval "$(python -m mlcycle_dev.stack env)"` points a shell at the stack.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcycle_dev.stack.local import (
    RESTARTABLE,
    LocalStack,
    default_root,
    down,
    load_state,
    restart_service,
    running_services,
    start_service,
    status,
    stop_service,
)
from mlcycle_dev.stack.process import ServiceError


def export_block(env: Mapping[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


def describe(state: Mapping[str, Any], total: float | None = None) -> str:
    """The `up` summary: URLs, credentials, start-up times, the environment to export."""
    services, credentials, seconds = state["services"], state["credentials"], state["startup_seconds"]
    root = state["root"]
    lines = [f"mlcycle local stack, session folder {root}" + (f", up in {total:.0f} s" if total else "")]
    lines.append("")
    lines.append(f"  {'service':<14} {'url / pid':<34} healthy after")
    for name, spec in services.items():
        where = spec["url"] or f"pid {spec['session']['pid']}"
        took = f"{seconds[name]} s" if name in seconds else ""
        if name == "postgres":
            took = f"{seconds.get('postgres', '?')} s (+ initdb {seconds.get('initdb', '?')} s)"
        if name == "api-server":
            took += f" (+ airflow db migrate {seconds.get('airflow-db-migrate', '?')} s)"
        lines.append(f"  {name:<14} {where:<34} {took}")
    env = state["env"]
    lines += [
        "",
        "Credentials (this session only):",
        f"  Airflow UI + REST API  {env.get('AIRFLOW_API_URL', '')}  "
        f"{credentials['airflow']['user']} / {credentials['airflow']['password']}",
        f"  MLflow UI + REST API   {env['MLFLOW_TRACKING_URI']}  "
        f"{credentials['mlflow_admin']['user']} / {credentials['mlflow_admin']['password']}  "
        f"(steps use {credentials['mlflow_pipeline']['user']} / {credentials['mlflow_pipeline']['password']})",
        f"  PostgreSQL             {services['postgres']['url']}  "
        f"{credentials['postgres']['user']} / {credentials['postgres']['password']}  "
        f"(databases {', '.join(state['databases'])})",
        f"  S3 API (moto)          {env['AWS_ENDPOINT_URL']}  key {credentials['s3']['access_key']} / "
        f"secret {credentials['s3']['secret_key']}  (buckets {', '.join(state['buckets'])})",
        "",
        "Point a shell (the mlcycle CLI, make backfill, mlcycle rerun, boto3, MLflow clients) at it:",
        '  eval "$(.venv/bin/python -m mlcycle_dev.stack env)"',
        "",
        export_block(env),
        "",
        "Stop it: make down",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle_dev.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="session folder (default $MLCYCLE_HOME/stack)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start every service, wait until healthy, print URLs and credentials")
    up.add_argument("--timeout", type=float, default=360.0, help="seconds each service may take to become healthy")
    up.add_argument(
        "--task-retry-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="override every task's retry delay with an Airflow cluster policy (tests; the DAGs say 2 minutes)",
    )
    commands.add_parser("down", help="stop exactly what `up` started")
    commands.add_parser("status", help="each recorded service: healthy, running (unhealthy) or stopped")
    commands.add_parser("env", help="print the export block of the running stack")
    for name, text in (
        ("restart", "stop one service and start it again"),
        ("stop", "stop one service"),
        ("start", "start a stopped service again"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("service", choices=RESTARTABLE)
    args = parser.parse_args(argv)
    root = (args.root or default_root()).resolve()

    try:
        if args.command == "up":
            started = time.monotonic()
            print("starting PostgreSQL, the S3 endpoint, MLflow and Airflow's services...", flush=True)
            stack = LocalStack(root, startup_timeout=args.timeout, task_retry_delay=args.task_retry_delay).start()
            print(describe(stack.state(), time.monotonic() - started))
            return 0
        if args.command == "down":
            print(f"stopping the stack recorded in {root}:")
            survivors = down(root)
            left = running_services(root)
            if survivors or left:
                print(f"still running: {left or survivors}", file=sys.stderr)
                return 1
            print("nothing left running")
            return 0
        if args.command == "status":
            found = status(root)
            if not found:
                print(f"no stack recorded under {root}")
                return 1
            for name, health in found.items():
                print(f"  {name:<14} {health}")
            return 0 if all(s == "healthy" for s in found.values()) else 1
        if args.command == "env":
            state = load_state(root)
            if state is None or not running_services(root):
                print(f"no running stack under {root} (make up)", file=sys.stderr)
                return 1
            print(export_block(state["env"]))
            return 0
        if args.command == "stop":
            survived = stop_service(root, args.service)
            print(f"{args.service}: stopped" + (f", survivors {survived}" if survived else ""))
            return 1 if survived else 0
        if args.command == "start":
            print(f"{args.service}: healthy after {start_service(root, args.service)} s")
            return 0
        print(f"{args.service}: restarted, healthy after {restart_service(root, args.service)} s")
        return 0
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
