"""What the lifecycle page of one use case shows, read only from what the steps already wrote.

- the champion timeline: every registered version (MLflow registry tags written by train, evaluate and promote:
  gate decision and reasons, who promoted it and why, the approver, its @champion periods, the previous champion);
- per monitored day: the data and prediction drift verdicts (monitoring/ds=D/summary.json,
  prediction/summary.json) and the champion's performance on the day whose labels arrived (performance.json);
- quarantined partitions with their reasons (quarantine/ds=D/reason.json);
- pending approvals: Airflow's human-in-the-loop requests of the use case's DAGs still waiting for an answer;
- links: each version's MLflow run and model card, each day's Evidently reports in MLflow's artifact viewer.

Each section is read on its own: a failure (MLflow unreachable, an unreadable file, Airflow's DB) becomes that
section's error, shown on the page as an error, and never reads as an empty section.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlcycle.config import UseCase
from mlcycle.lifecycle.mlflow_rest import MlflowRest, MlflowUnavailable
from mlcycle.lifecycle.store import JsonStore, StoreError
from mlcycle.orchestration.links import MONITORING_ARTIFACT_DIR
from mlcycle.specs.names import DagFamily, ModelRole
from mlcycle.storage.layout import (
    PERFORMANCE_FILE,
    PERFORMANCE_REPORT_FILE,
    PREDICTION_DRIFT_SUB,
    REASON_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    Dataset,
    partition_uri,
)
from mlcycle.tags import Tag

# Tags the steps write on a version (steps/train.py, steps/evaluate.py, registry/champion.py, steps/promote.py).
PERIODS_TAG = Tag.CHAMPION_PERIODS
PREVIOUS_TAG = Tag.PREVIOUS_CHAMPION
RUN_TAG = Tag.RUN_ID
GATE_TAG, GATE_REASONS_TAG, GATE_RECORD_TAG = Tag.GATE_DECISION, Tag.GATE_REASONS, Tag.GATE_RECORD
# Where evaluate logs the model card and the decision record in the candidate's run.
MODEL_CARD_ARTIFACT = "model_card.md"
DECISION_ARTIFACT = "gate/decision.json"
PARENT_ROLE_TAG = Tag.ROLE


@dataclass(frozen=True)
class Links:
    """The addresses the page links to, as users' browsers reach them."""

    mlflow: str  # the MLflow UI
    airflow: str = ""  # Airflow's UI (its base URL; "" for a relative link on the same server)

    def run(self, experiment_id: str, run_id: str) -> str:
        return f"{self.mlflow}/#/experiments/{_q(experiment_id)}/runs/{_q(run_id)}"

    def artifact(self, experiment_id: str, run_id: str, path: str) -> str:
        quoted = "/".join(_q(part) for part in path.split("/") if part)
        return f"{self.run(experiment_id, run_id)}/artifacts/{quoted}"

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{_q(dag_id)}/runs/{_q(run_id)}"

    def airflow_task(self, dag_id: str, run_id: str, task_id: str, tab: str = "") -> str:
        page = f"{self.airflow_run(dag_id, run_id)}/tasks/{_q(task_id)}"
        return f"{page}/{tab}" if tab else page


@dataclass(frozen=True)
class Period:
    start: str
    end: str | None  # None: holds @champion now


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    trained_on: str  # the partition whose window trained it
    registered_at: str
    gate: str  # promote | reject | needs_manual_review | "" (not evaluated yet)
    gate_reasons: list[str]
    promoted_by: str  # gate | review | manual | "" (never promoted)
    approver: str
    reason: str
    review: str  # the person's answer to a needs_manual_review decision: approved | rejected | timed_out | ""
    reviewed_by: str
    review_reason: str
    promoted_at: str
    rolled_back_from: str
    previous_champion: str
    periods: list[Period]
    airflow_run: str  # <dag_id>/<run_id> that trained it
    run_url: str
    model_card_url: str
    decision_url: str
    decision_record: str  # the storage URI of the decision record (evaluation/ds=D/v<N>)


@dataclass(frozen=True)
class DayRow:
    day: str
    champion: str  # the version monitored
    dataset_drift: bool | None
    drift_share: float | None
    drift_share_threshold: float | None
    drifted_columns: list[str]
    prediction_drift: bool | None  # None: no prediction drift report that day
    performance_status: str  # computed | pending | "" (no performance.json)
    performance_day: str  # the labelled day (D - label delay)
    metric: str
    value: float | None
    reference: float | None
    drop: float | None
    rows: int
    performance_reason: str
    report_url: str = ""
    performance_report_url: str = ""
    run_url: str = ""


@dataclass(frozen=True)
class QuarantineRow:
    day: str
    profile: str
    rows: int | None
    failed: list[str]
    warnings: int
    uri: str


@dataclass(frozen=True)
class Approval:
    """A human-in-the-loop request of one of the use case's DAG runs, not answered yet."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str
    subject: str
    body: str
    options: list[str]
    created_at: str
    assignees: list[str]
    url: str = ""  # its "Required actions" page in Airflow's UI


@dataclass
class LifecycleView:
    usecase: str
    description: str
    registered_model: str
    metric: str
    label_delay_days: int
    mlflow_url: str
    champion: str | None = None
    challenger: str | None = None
    experiment_url: str = ""
    versions: list[VersionRow] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    # Section -> what went wrong reading it (shown as an error on the page).
    errors: dict[str, str] = field(default_factory=dict)


ApprovalReader = Callable[[Sequence[str]], list[Approval]]


def build_view(
    usecase: UseCase, store: JsonStore, mlflow: MlflowRest, links: Links, approvals: ApprovalReader
) -> LifecycleView:
    """The page's data for one use case; each section's failure lands in `errors` under the section's name."""
    view = LifecycleView(
        usecase=usecase.name,
        description=usecase.description,
        registered_model=usecase.registered_model_name,
        metric=usecase.thresholds.gate.metric,
        label_delay_days=usecase.target.label_delay_days,
        mlflow_url=mlflow.base_url,
    )
    experiment_id: str | None = None
    monitoring_runs: dict[str, str] = {}
    try:
        aliases = mlflow.aliases(usecase.registered_model_name)
        view.champion, view.challenger = aliases.get(ModelRole.CHAMPION), aliases.get(ModelRole.CHALLENGER)
        experiment_id = mlflow.experiment_id(usecase.experiment_name)
        if experiment_id is not None:
            view.experiment_url = f"{links.mlflow}/#/experiments/{_q(experiment_id)}"
        view.versions = _versions(mlflow, usecase, aliases, experiment_id, links)
        if experiment_id is not None:
            monitoring_runs = _monitoring_runs(mlflow, experiment_id, DagFamily.MONITORING.dag_id(usecase.name))
    except MlflowUnavailable as exc:
        view.errors["registry"] = str(exc)
    try:
        view.days = _days(store, usecase, experiment_id, monitoring_runs, links)
    except StoreError as exc:
        view.errors["monitoring"] = str(exc)
    try:
        view.quarantine = _quarantine(store, usecase)
    except StoreError as exc:
        view.errors["quarantine"] = str(exc)
    try:
        view.approvals = approvals([family.dag_id(usecase.name) for family in DagFamily])
    except ApprovalsUnavailable as exc:
        view.errors["approvals"] = str(exc)
    return view


class ApprovalsUnavailable(RuntimeError):
    """Airflow's human-in-the-loop requests could not be read."""


def _versions(
    mlflow: MlflowRest, usecase: UseCase, aliases: dict[str, str], experiment_id: str | None, links: Links
) -> list[VersionRow]:
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    rows = []
    for raw in mlflow.model_versions(usecase.registered_model_name):
        tags: dict[str, str] = raw["tags"]
        number = str(raw["version"])
        run_id = tags.get(RUN_TAG) or str(raw.get("run_id") or "")
        with_run = bool(experiment_id and run_id)
        gate_reasons = [r.strip() for r in tags.get(GATE_REASONS_TAG, "").split(";") if r.strip()]
        rows.append(
            VersionRow(
                version=number,
                aliases=sorted(by_version.get(number, [])),
                trained_on=tags.get(Tag.PARTITION, ""),
                registered_at=_from_millis(raw.get("creation_timestamp")),
                gate=tags.get(GATE_TAG, ""),
                gate_reasons=gate_reasons,
                promoted_by=tags.get(Tag.PROMOTED_BY, ""),
                approver=tags.get(Tag.APPROVER, ""),
                reason=tags.get(Tag.REASON, ""),
                review=tags.get(Tag.REVIEW, ""),
                reviewed_by=tags.get(Tag.REVIEWED_BY, ""),
                review_reason=tags.get(Tag.REVIEW_REASON, ""),
                promoted_at=tags.get(Tag.PROMOTED_AT, ""),
                rolled_back_from=tags.get(Tag.ROLLED_BACK_FROM, ""),
                previous_champion=tags.get(PREVIOUS_TAG, ""),
                periods=_periods(tags.get(PERIODS_TAG, "")),
                airflow_run=_airflow_run(tags),
                run_url=links.run(experiment_id, run_id) if with_run and experiment_id else "",
                model_card_url=links.artifact(experiment_id, run_id, MODEL_CARD_ARTIFACT)
                if with_run and experiment_id and tags.get(GATE_TAG)
                else "",
                decision_url=links.artifact(experiment_id, run_id, DECISION_ARTIFACT)
                if with_run and experiment_id and tags.get(GATE_TAG)
                else "",
                decision_record=tags.get(GATE_RECORD_TAG, ""),
            )
        )
    return rows


def _monitoring_runs(mlflow: MlflowRest, experiment_id: str, dag_id: str) -> dict[str, str]:
    """partition -> the newest monitoring parent run that logged that day's reports."""
    found: dict[str, str] = {}
    runs = mlflow.runs(experiment_id, f"tags.`{PARENT_ROLE_TAG}` = 'parent' and tags.`airflow.dag_id` = '{dag_id}'")
    for run in runs:  # newest first: the first run of a day is the one whose reports are live
        day = run["tags"].get(Tag.PARTITION, "")
        if day and day not in found:
            found[day] = str(run["info"]["run_id"])
    return found


def _days(
    store: JsonStore, usecase: UseCase, experiment_id: str | None, runs: dict[str, str], links: Links
) -> list[DayRow]:
    rows = []
    for day in store.partitions(usecase.name, Dataset.MONITORING):
        uri = partition_uri(store.root, usecase.name, Dataset.MONITORING, day)
        manifest = store.manifest(uri) or {}
        summary = store.json_file(uri, SUMMARY_FILE) or {}
        prediction = store.json_file(uri, f"{PREDICTION_DRIFT_SUB}/{SUMMARY_FILE}")
        performance = store.json_file(uri, PERFORMANCE_FILE) or {}
        text = day.isoformat()
        run_id = runs.get(text, "")
        artifacts = f"{MONITORING_ARTIFACT_DIR}/{text}"
        files = manifest.get("files", {})
        with_run = bool(experiment_id and run_id)
        rows.append(
            DayRow(
                day=text,
                champion=str(manifest.get("champion", "")),
                dataset_drift=summary.get("dataset_drift"),
                drift_share=summary.get("drift_share"),
                drift_share_threshold=summary.get("drift_share_threshold"),
                drifted_columns=list(summary.get("drifted_columns", [])),
                prediction_drift=None if prediction is None else prediction.get("dataset_drift"),
                performance_status=str(performance.get("status", "")),
                performance_day=str(performance.get("partition", "")),
                metric=str(performance.get("metric") or usecase.thresholds.gate.metric),
                value=performance.get("value"),
                reference=performance.get("reference"),
                drop=performance.get("drop"),
                rows=int(performance.get("rows") or 0),
                performance_reason=str(performance.get("reason", "")),
                report_url=links.artifact(experiment_id, run_id, f"{artifacts}/{REPORT_FILE}")
                if with_run and experiment_id and REPORT_FILE in files
                else "",
                performance_report_url=links.artifact(experiment_id, run_id, f"{artifacts}/{PERFORMANCE_REPORT_FILE}")
                if with_run and experiment_id and PERFORMANCE_REPORT_FILE in files
                else "",
                run_url=links.run(experiment_id, run_id) if with_run and experiment_id else "",
            )
        )
    return rows


def _quarantine(store: JsonStore, usecase: UseCase) -> list[QuarantineRow]:
    rows = []
    for day in store.partitions(usecase.name, Dataset.QUARANTINE):
        uri = partition_uri(store.root, usecase.name, Dataset.QUARANTINE, day)
        reason = store.json_file(uri, REASON_FILE)
        if reason is None:
            raise StoreError(f"{uri} is committed but has no {REASON_FILE}")
        rows.append(
            QuarantineRow(
                day=day.isoformat(),
                profile=str(reason.get("profile", "")),
                rows=reason.get("rows"),
                failed=[str(f) for f in reason.get("failed", [])],
                warnings=len(reason.get("warnings", [])),
                uri=f"{uri}/{REASON_FILE}",
            )
        )
    return rows


def approvals_from_rows(rows: Sequence[dict[str, Any]], links: Links) -> list[Approval]:
    """Approvals from the HITL rows read in Airflow's DB (see `mlcycle.lifecycle.airflow_db`), oldest first."""
    found = [
        Approval(
            dag_id=row["dag_id"],
            run_id=row["run_id"],
            task_id=row["task_id"],
            map_index=int(row.get("map_index", -1)),
            state=str(row.get("state") or ""),
            subject=str(row.get("subject") or ""),
            body=str(row.get("body") or ""),
            options=[str(o) for o in row.get("options") or []],
            created_at=_iso(row.get("created_at")),
            assignees=[str(a.get("name") or a.get("id")) for a in row.get("assignees") or []],
            url=links.airflow_task(row["dag_id"], row["run_id"], row["task_id"], "required_actions"),
        )
        for row in rows
    ]
    return sorted(found, key=lambda a: a.created_at)


def _periods(text: str) -> list[Period]:
    if not text:
        return []
    try:
        loaded = json.loads(text)
    except ValueError:
        raise MlflowUnavailable(f"tag {PERIODS_TAG} is not JSON: {text[:200]!r}") from None
    return [Period(str(start), None if end is None else str(end)) for start, end in loaded]


def _airflow_run(tags: dict[str, str]) -> str:
    dag_id, run_id = tags.get("airflow.dag_id", ""), tags.get("airflow.run_id", "")
    return f"{dag_id}/{run_id}" if dag_id and run_id else ""


def _from_millis(value: Any) -> str:
    if value in (None, ""):
        return ""
    return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC).isoformat(timespec="seconds")


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return "" if value is None else str(value)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
