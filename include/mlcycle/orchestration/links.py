"""Operator extra links from step tasks to MLflow: "MLflow run" and "Evidently report" (Airflow + stdlib only).

Registered as *global* extra links by `plugins/mlcycle_links.py`. In Airflow 3 a global link is resolved by the
api-server when the task-instance page asks for its links (`GET .../taskInstances/{task}/links`): `get_link`
runs there, with the serialized operator and the task instance's key. So the links:

- read only the step's JSON result (the `return_value` XCom that both launchers, local subprocess and Kubernetes
  pod, push: the step contract), straight from the metadata DB, as the api-server's own `XComOperatorLink` does,
  and read it through the step's typed result model (`mlcycle.specs.results`: stdlib + pydantic);
- decide from the result's `step` whether they apply (tune / train / evaluate / monitor), not from the task id or the
  operator class, so they work for every launcher and every use case without touching the DAGs;
- take the MLflow UI's address from the api-server's environment (`MLCYCLE_MLFLOW_UI_URL`), i.e. the address
  users' browsers reach, decided where the UI is served and applied to old runs too;
- return "" (Airflow then shows no button) whenever anything is missing, and never raise: a link must not be
  able to break the task page.

The Evidently report opens in MLflow's artifact viewer of the monitoring run (the monitor step logs the report
folder there under `monitoring/<partition>/`). MLflow's server reads the artifact from wherever the artifact
store is (local folder, S3, proxied `mlflow-artifacts:`) with its own credentials, so the link works the same
with S3 storage; serving the file from Airflow would need S3 access (boto3) in the api-server instead.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperatorLink

from mlcycle.specs.catalog import spec_of
from mlcycle.specs.names import Step
from mlcycle.specs.results import MonitorResult, ResultError, StepResultModel, parse_result

log = logging.getLogger(__name__)

MLFLOW_UI_URL_ENV = "MLCYCLE_MLFLOW_UI_URL"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
# Where mlcycle.steps.monitor logs the report folder in the monitoring run (`_log_to_mlflow`).
MONITORING_ARTIFACT_DIR = "monitoring"
RUN_LINK_STEPS = frozenset({Step.TUNE, Step.TRAIN, Step.EVALUATE, Step.MONITOR})
REPORT_LINK_STEPS = frozenset({Step.MONITOR})


def mlflow_ui_url() -> str:
    """The MLflow UI's base URL as users' browsers reach it (no trailing slash)."""
    return (os.environ.get(MLFLOW_UI_URL_ENV) or DEFAULT_MLFLOW_UI_URL).rstrip("/")


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _typed(result: Mapping[str, Any] | None, steps: frozenset[Step]) -> StepResultModel[Any, Any] | None:
    """The result read through its step's model when that step is one of `steps`; None when it is not one, or
    lacks what its model requires (a result from an older mlcycle, a malformed XCom): no link, not an error."""
    step = result.get("step") if isinstance(result, Mapping) else None
    if not isinstance(step, str) or step not in steps:
        return None
    model = spec_of(step).result
    if model is None:
        return None
    try:
        return parse_result(model, step, result)
    except ResultError:
        return None


def run_url(result: Mapping[str, Any] | None, base_url: str) -> str:
    """The MLflow UI page of the run a tune / train / evaluate / monitor result names, or "".

    train names its candidate run in `metrics.run_id`; evaluate and monitor in `outputs.mlflow_run_id` (each
    result model's `mlflow_run_id`). With an experiment id the run page is addressed directly; without one,
    MLflow's `#/runs/<id>` route finds it.
    """
    typed = _typed(result, RUN_LINK_STEPS)
    if typed is None or not typed.mlflow_run_id:
        return ""
    run_id, experiment_id = typed.mlflow_run_id, typed.mlflow_experiment_id
    if experiment_id:
        return f"{base_url}/#/experiments/{_quote(experiment_id)}/runs/{_quote(run_id)}"
    return f"{base_url}/#/runs/{_quote(run_id)}"


def report_url(result: Mapping[str, Any] | None, base_url: str) -> str:
    """MLflow's artifact view of the Evidently drift report that a monitor result logged, or "".

    The artifact view needs the experiment id in its route (`#/runs/<id>` drops the artifact path).
    """
    typed = _typed(result, REPORT_LINK_STEPS)
    if not isinstance(typed, MonitorResult):
        return ""
    run_id, experiment_id, partition = typed.mlflow_run_id, typed.mlflow_experiment_id, typed.partition
    report, folder = typed.outputs.report, typed.outputs.monitoring
    if not (run_id and experiment_id and partition):
        return ""
    prefix = folder.rstrip("/") + "/"
    if not report.startswith(prefix):
        return ""
    # The report's path inside the logged folder (report.html), under the folder's artifact path.
    artifact = "/".join(
        _quote(part) for part in (MONITORING_ARTIFACT_DIR, partition, *report[len(prefix) :].split("/")) if part
    )
    return f"{base_url}/#/experiments/{_quote(experiment_id)}/runs/{_quote(run_id)}/artifacts/{artifact}"


def decode_result(value: Any) -> dict[str, Any] | None:
    """A `return_value` XCom as stored in the DB (a dict, or its JSON text, possibly encoded twice) -> dict."""
    for _ in range(2):
        if isinstance(value, bytes | str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
    return value if isinstance(value, dict) else None


def step_result(ti_key: Any) -> dict[str, Any] | None:
    """The task instance's `return_value` XCom, read from the metadata DB in the api-server; None if absent.

    Plain JSON decoding, not `XComModel.deserialize_value`: like Airflow's own `XComOperatorLink`, a link never
    instantiates classes named in stored data.
    """
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.execute(
                XComModel.get_many(
                    key="return_value",
                    run_id=ti_key.run_id,
                    dag_ids=ti_key.dag_id,
                    task_ids=ti_key.task_id,
                    map_indexes=ti_key.map_index,
                ).with_only_columns(XComModel.value)
            ).first()
    except Exception:  # the page must render whatever happens here; the reason goes to the api-server log
        log.warning("mlcycle links: cannot read the return_value XCom of %s", ti_key, exc_info=True)
        return None
    return decode_result(row[0]) if row is not None else None


class MLflowRunLink(BaseOperatorLink):
    """ "MLflow run": the MLflow run that a tune, train, evaluate or monitor step logged to."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return run_url(step_result(ti_key), mlflow_ui_url())


class EvidentlyReportLink(BaseOperatorLink):
    """ "Evidently report": the drift report of a monitor step, in MLflow's artifact viewer."""

    name = "Evidently report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_url(step_result(ti_key), mlflow_ui_url())


GLOBAL_LINKS: tuple[BaseOperatorLink, ...] = (MLflowRunLink(), EvidentlyReportLink())
