"""`mlcycle rerun`: re-run one use case's day through Airflow's REST API, with the reason on record.

The run is a manual DAG run of `<usecase>_<dag>` whose Airflow partition key is the day (the grid shows it; every
rerunnable DAG is partition-aware, ADR 0010) and whose conf carries the same partition (orchestration/macros.py
checks they agree), the reason (recorded on the MLflow runs it creates, via
`mlcycle_trigger`) and, when it comes from an alert, the alert itself. Standard library and
the parse-safe specs only (`mlcycle.specs`: DAG families, options).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle.specs.catalog import RerunOptions
from mlcycle.specs.names import RERUNNABLE, DagFamily, Tool
from mlcycle.specs.results import RerunResult
from mlcycle.steps.base import Rejected, StepContext

# Airflow's default `[scheduler] allowed_run_id_pattern`.
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")


# Airflow's run_id column holds 250 characters.
_RUN_ID_MAX = 250


def safe_run_id(*parts: str) -> str:
    """A run id from short parts that Airflow accepts (unsafe characters become '-')."""
    run_id = "__".join(_RUN_ID_UNSAFE.sub("-", part) for part in parts if part)
    if len(run_id) > _RUN_ID_MAX:
        raise ValueError(f"run id {run_id[:80]!r}... is {len(run_id)} characters, over Airflow's {_RUN_ID_MAX}")
    return run_id


def alert_run_id(alertname: str, fingerprint: str, starts_at: str) -> str:
    """The run id of the rerun an alert asks for: the same alert (a repeat, a restart) gives the same id,
    different alerts never share one.

    Readable (`alert__<name>__<start>__`) and bounded, its uniqueness comes from a digest of the alert's
    identity (name, fingerprint, start): free-form labels can be long or differ only in unsafe characters.
    """
    identity = json.dumps([alertname, fingerprint, starts_at]).encode()
    digest = hashlib.sha256(identity).hexdigest()[:24]
    return safe_run_id("alert", alertname[:64], starts_at[:40], digest)


def rerun(
    client: AirflowClient,
    usecase: str,
    family: str | DagFamily,
    partition: str,
    reason: str,
    *,
    run_id: str | None = None,
    alert: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Trigger `<usecase>_<family>` for `partition`; return {dag_id, run_id, state, paused}.

    Raises ValueError on bad input and AirflowAPIError when Airflow says no (409: that run id exists).
    """
    if family not in RERUNNABLE:
        raise ValueError(f"--dag {str(family)!r}: expected one of {[f.value for f in RERUNNABLE]}")
    dag = DagFamily(family)
    day = dt.date.fromisoformat(partition)
    if len(reason.strip()) < 3:
        raise ValueError("--reason: say why (at least 3 characters); it is recorded on the run")
    dag_id = dag.dag_id(usecase)
    conf: dict[str, Any] = {"partition": day.isoformat(), "reason": reason.strip()}
    if alert:
        conf["alert"] = dict(alert)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    run = client.trigger(
        dag_id,
        conf=conf,
        run_id=run_id or safe_run_id("rerun", day.isoformat(), stamp),
        note=f"rerun of {day}: {reason.strip()}",
        partition_key=day.isoformat(),
    )
    paused = bool(client.request("GET", f"/api/v2/dags/{dag_id}").get("is_paused"))
    return {"dag_id": dag_id, "run_id": run["dag_run_id"], "state": run.get("state"), "paused": paused}


def main(ctx: StepContext, options: RerunOptions) -> RerunResult:
    partition = ctx.partition.isoformat()
    try:
        run = rerun(AirflowClient.from_env(), ctx.usecase.name, options.dag, partition, options.reason)
    except AirflowAPIError as exc:
        if exc.status in (400, 404, 409, 422):  # Airflow refused this request: retrying will not help
            raise Rejected(f"Airflow refused the rerun: {exc}") from None
        raise
    note = f"; the DAG is paused: unpause {run['dag_id']} for the run to start" if run["paused"] else ""
    return RerunResult.of(
        Tool.RERUN,
        ctx.usecase.name,
        partition,
        outputs={"dag_id": run["dag_id"], "run_id": run["run_id"]},
        metrics={"state": run["state"], "paused": run["paused"]},
        reason=f"triggered {run['dag_id']} run {run['run_id']} for {partition}{note}",
    )
