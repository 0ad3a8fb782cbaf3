"""Template macros every mlcycle DAG registers (`user_defined_macros`), evaluated at run time only.

`mlcycle_partition` answers "which daily partition does this run process?" for every way a run starts (ADR 0010):
- a run with an Airflow partition key (scheduled, backfilled, Asset-triggered, or triggered with `partition_key`)
  processes that day, and only that day: a `partition` Param or conf naming another day fails the task
  (`PartitionConflictError`), since the grid and the REST API would show one day while the steps processed another;
- a run without a key (a manual trigger without one, the promotion DAG) processes the `partition` Param / conf;
- else its logical date's day, else the partition in the newest consumed Asset event's extra, else the day before
  the run was queued.

`mlcycle_result(ti, step)` is an upstream step's XCom validated into that step's typed result model
(`mlcycle.specs.results`): templates read `mlcycle_result(ti, 'train').model_version`, never nested keys, and
a result that lacks the key fails the task with an error naming the step and the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mlcycle.specs.catalog import spec_of
from mlcycle.specs.names import Step
from mlcycle.specs.options import Template
from mlcycle.specs.results import StepResultModel, parse_result


def _events(dag_run: Any) -> list[Any]:
    return list(getattr(dag_run, "consumed_asset_events", None) or [])


class PartitionConflictError(ValueError):
    """A run with a partition key was asked (Param or conf) to process another day."""


def _day(value: Any, what: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a day (YYYY-MM-DD)") from None


def mlcycle_partition(dag_run: Any, params: Mapping[str, Any] | None = None) -> str:
    conf = getattr(dag_run, "conf", None) or {}
    chosen = [
        (what, _day(value, what))
        for what, value in (
            ("the partition Param", (params or {}).get("partition")),
            ("conf's partition", conf.get("partition")),
        )
        if value
    ]
    key = getattr(dag_run, "partition_key", None)
    if key:
        day = _day(key, "the run's partition key")
        for what, other in chosen:
            if other != day:
                raise PartitionConflictError(
                    f"run {getattr(dag_run, 'run_id', '?')} has the partition key {day} but {what} is {other}: a run "
                    f"processes its partition key's day; trigger a run with partition_key {other} instead"
                )
        return day
    if chosen:
        return chosen[0][1]
    logical_date = getattr(dag_run, "logical_date", None)
    if logical_date is not None:
        return logical_date.date().isoformat()
    for event in reversed(_events(dag_run)):
        partition = (getattr(event, "extra", None) or {}).get("partition")
        if partition:
            return _day(partition, "the consumed Asset event's partition")
    run_after: dt.datetime = dag_run.run_after
    return (run_after.date() - dt.timedelta(days=1)).isoformat()


def mlcycle_trigger(dag_run: Any, params: Mapping[str, Any] | None = None) -> str:
    """A one-line answer to "why did this run start?", recorded on the MLflow runs it creates."""
    conf = {**(getattr(dag_run, "conf", None) or {})}
    if params and params.get("reason"):
        conf.setdefault("reason", params["reason"])
    events = _events(dag_run)
    if events:
        event = events[-1]
        extra = getattr(event, "extra", None) or {}
        source = f"{getattr(event, 'source_dag_id', '')}/{getattr(event, 'source_run_id', '')}"
        # A retraining request says why; another Asset's event (predictions produced) names the Asset and partition.
        asset = getattr(getattr(event, "asset", None), "name", None)
        produced = f"{asset} {getattr(event, 'partition_key', None) or ''} produced".replace("  ", " ")
        return f"asset: {extra.get('reason') or (produced if asset else 'retraining requested')} (from {source})"
    run_type = getattr(dag_run, "run_type", None)
    kind = str(getattr(run_type, "value", run_type) or "manual").lower()
    return f"{kind}: {conf['reason']}" if conf.get("reason") else kind


def mlcycle_result(ti: Any, step: str) -> StepResultModel[Any, Any]:
    """The result of the step task `step` in this DAG run, validated into the step's result model."""
    return parse_result(spec_of(step).result_model, step, ti.xcom_pull(task_ids=step))


def upstream(step: Step, attribute: str) -> Template:
    """A template for `attribute` of an upstream step's typed result; checked at parse time to exist."""
    model = spec_of(step).result_model
    if not hasattr(model, attribute) and attribute not in model.model_fields:
        raise AttributeError(f"the {step.value} step's result model {model.__name__} has no {attribute!r}")
    return Template(f"{{{{ mlcycle_result(ti, '{step.value}').{attribute} }}}}")


MACROS = {
    "mlcycle_partition": mlcycle_partition,
    "mlcycle_trigger": mlcycle_trigger,
    "mlcycle_result": mlcycle_result,
}
