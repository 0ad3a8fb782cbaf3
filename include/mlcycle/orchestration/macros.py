"""Template macros every mlcycle DAG registers (`user_defined_macros`), evaluated at run time only.

`mlcycle_partition` answers "which daily partition does this run process?" for every way a run starts:
- a `partition` Param (manual trigger / backfill form) wins;
- a scheduled run with data-interval semantics processes the day its interval starts;
- a run triggered by a retraining request (Asset event) processes the partition named in the event;
- otherwise (a manual run without a logical date) the day before the run was queued.

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


def mlcycle_partition(dag_run: Any, params: Mapping[str, Any] | None = None) -> str:
    if params and params.get("partition"):
        return str(dt.date.fromisoformat(str(params["partition"])))
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("partition"):
        return str(dt.date.fromisoformat(str(conf["partition"])))
    logical_date = getattr(dag_run, "logical_date", None)
    if logical_date is not None:
        return logical_date.date().isoformat()
    for event in reversed(_events(dag_run)):
        partition = (getattr(event, "extra", None) or {}).get("partition")
        if partition:
            return str(dt.date.fromisoformat(str(partition)))
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
        return f"asset: {extra.get('reason', 'retraining requested')} (from {source})"
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
