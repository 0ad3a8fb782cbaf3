"""The lifecycle page's data (`mlcycle.lifecycle`) on a prepared store: partitions committed by the steps' own
writer (`Storage`, local and S3), and an MLflow REST API answering as MLflow does (or failing as it can)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import get_usecase
from mlcycle.lifecycle.mlflow_rest import MlflowRest, rest_url
from mlcycle.lifecycle.page import usecase_page
from mlcycle.lifecycle.store import JsonStore
from mlcycle.lifecycle.view import Approval, ApprovalsUnavailable, Links, approvals_from_rows, build_view
from mlcycle.settings import REPO_ROOT
from mlcycle.storage.layout import (
    PERFORMANCE_FILE,
    PERFORMANCE_REPORT_FILE,
    PREDICTION_DRIFT_SUB,
    REASON_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    Dataset,
)
from mlcycle.storage.partitions import Storage
from support.fake_mlflow import UNAUTHENTICATED, Answer, fake_mlflow, unreachable_uri

USECASE = get_usecase("yarnit")
MLFLOW_UI = "http://mlflow.example"
LINKS = Links(mlflow=MLFLOW_UI, airflow="/af")
DRIFT_DAY, CALM_DAY, BROKEN_DAY = dt.date(2026, 9, 18), dt.date(2026, 9, 15), dt.date(2026, 9, 16)
HOSTILE = "<script>alert(1)</script>"


def _summary(drift: bool, share: float, columns: list[str]) -> dict[str, Any]:
    return {"dataset_drift": drift, "drift_share": share, "drift_share_threshold": 0.3, "drifted_columns": columns}


def _commit(storage: Storage, dataset: str, day: dt.date, files: dict[str, Any], manifest: dict[str, Any]) -> None:
    with storage.writer(storage.partition_uri("yarnit", dataset, day), manifest) as staging:
        for name, content in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(content if isinstance(content, str) else json.dumps(content))


def _prepare(storage: Storage) -> None:
    """Two monitored days (one drifted, with performance; one calm, performance pending) and a quarantined day."""
    _commit(
        storage,
        Dataset.MONITORING,
        DRIFT_DAY,
        {
            SUMMARY_FILE: _summary(True, 0.5, ["price", "device"]),
            f"{PREDICTION_DRIFT_SUB}/{SUMMARY_FILE}": _summary(True, 1.0, ["score"]),
            PERFORMANCE_FILE: {
                "status": "computed",
                "partition": "2026-09-17",
                "metric": "roc_auc",
                "value": 0.757,
                "reference": 0.804,
                "drop": 0.047,
                "rows": 2723,
                "model_version": "1",
                "reason": "",
            },
            REPORT_FILE: "<html>drift</html>",
            PERFORMANCE_REPORT_FILE: "<html>performance</html>",
        },
        {"step": "monitor", "champion": "1"},
    )
    _commit(
        storage,
        Dataset.MONITORING,
        CALM_DAY,
        {
            SUMMARY_FILE: _summary(False, 0.14, ["device"]),
            PERFORMANCE_FILE: {"status": "pending", "partition": "2026-09-14", "reason": "labels not joined yet"},
            REPORT_FILE: "<html>drift</html>",
        },
        {"step": "monitor", "champion": "1"},
    )
    reason = {
        "profile": "training",
        "rows": 3080,
        "failed": ["[hard] table: columns missing ['price']"],
        "warnings": [],
    }
    _commit(storage, Dataset.QUARANTINE, BROKEN_DAY, {REASON_FILE: reason}, {"step": "validate"})


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


VERSIONS = {
    "model_versions": [
        {
            "name": "yarnit_model",
            "version": "2",
            "run_id": "run2",
            "creation_timestamp": 1790000000000,
            "tags": _tags(
                **{
                    "mlcycle.partition": "2026-09-17",
                    "mlcycle.run_id": "run2",
                    "mlcycle.gate.decision": "needs_manual_review",
                    "mlcycle.gate.reasons": f"possible leakage: roc_auc 0.99; {HOSTILE}",
                    "mlcycle.promoted_by": "review",
                    "mlcycle.approver": "ada",
                    "mlcycle.reason": "reviewed the slices",
                    "mlcycle.review": "approved",
                    "mlcycle.reviewed_by": "ada",
                    "mlcycle.review_reason": "reviewed the slices",
                    "mlcycle.previous_champion": "1",
                    "mlcycle.champion_periods": json.dumps([["2026-09-18T06:00:00+00:00", None]]),
                    "airflow.dag_id": "yarnit_training",
                    "airflow.run_id": "manual__2",
                }
            ),
        },
        {
            "name": "yarnit_model",
            "version": "1",
            "run_id": "run1",
            "creation_timestamp": 1789000000000,
            "tags": _tags(
                **{
                    "mlcycle.partition": "2026-09-14",
                    "mlcycle.run_id": "run1",
                    "mlcycle.gate.decision": "promote",
                    "mlcycle.gate.reasons": "roc_auc=0.80 no champion yet",
                    "mlcycle.promoted_by": "gate",
                    "mlcycle.champion_periods": json.dumps(
                        [["2026-09-14T06:00:00+00:00", "2026-09-18T06:00:00+00:00"]]
                    ),
                }
            ),
        },
    ]
}
RUNS = {
    "runs": [
        {"info": {"run_id": "mon-new"}, "data": {"tags": _tags(**{"mlcycle.partition": "2026-09-18"})}},
        {"info": {"run_id": "mon-old"}, "data": {"tags": _tags(**{"mlcycle.partition": "2026-09-18"})}},
        {"info": {"run_id": "mon-calm"}, "data": {"tags": _tags(**{"mlcycle.partition": "2026-09-15"})}},
    ]
}
REGISTRY_ANSWERS = {
    ("GET", "/api/2.0/mlflow/registered-models/get"): {
        "registered_model": {
            "aliases": [{"alias": "champion", "version": "2"}, {"alias": "challenger", "version": "2"}]
        }
    },
    ("GET", "/api/2.0/mlflow/model-versions/search"): VERSIONS,
    ("GET", "/api/2.0/mlflow/experiments/get-by-name"): {"experiment": {"experiment_id": "7"}},
    ("POST", "/api/2.0/mlflow/runs/search"): RUNS,
}


def _registry(method: str, path: str) -> Answer | None:
    found = REGISTRY_ANSWERS.get((method, path))
    return None if found is None else Answer(200, json.dumps(found))


@pytest.fixture
def mlflow() -> Iterator[MlflowRest]:
    with fake_mlflow(Answer(404, json.dumps({"error_code": "ENDPOINT_NOT_FOUND"})), _registry) as fake:
        yield MlflowRest(fake.uri)


@pytest.fixture
def store(tmp_path: Path) -> JsonStore:
    root = str(tmp_path / "data")
    _prepare(Storage(root))
    return JsonStore(root)


def _no_approvals(dag_ids: Sequence[str]) -> list[Approval]:
    return []


def test_the_view_reads_the_timeline_the_days_the_quarantine_and_links(store: JsonStore, mlflow: MlflowRest) -> None:
    view = build_view(USECASE, store, mlflow, LINKS, _no_approvals)
    assert view.errors == {}
    assert (view.champion, view.challenger) == ("2", "2")
    v1, v2 = view.versions  # oldest first, whatever order MLflow answers in
    assert (v1.version, v1.gate, v1.promoted_by, v1.aliases) == ("1", "promote", "gate", [])
    assert [(p.start, p.end) for p in v1.periods] == [("2026-09-14T06:00:00+00:00", "2026-09-18T06:00:00+00:00")]
    assert (v2.gate, v2.approver, v2.reason, v2.previous_champion) == (
        "needs_manual_review",
        "ada",
        "reviewed the slices",
        "1",
    )
    assert v2.gate_reasons == ["possible leakage: roc_auc 0.99", HOSTILE]
    assert v2.periods[0].end is None and v2.aliases == ["challenger", "champion"]
    assert v2.run_url == f"{MLFLOW_UI}/#/experiments/7/runs/run2"
    assert v2.model_card_url == f"{MLFLOW_UI}/#/experiments/7/runs/run2/artifacts/model_card.md"
    assert v2.airflow_run == "yarnit_training/manual__2"

    calm, drifted = view.days
    assert (calm.day, calm.dataset_drift, calm.performance_status, calm.prediction_drift) == (
        "2026-09-15",
        False,
        "pending",
        None,
    )
    assert (drifted.dataset_drift, drifted.drift_share, drifted.drifted_columns) == (True, 0.5, ["price", "device"])
    assert (drifted.prediction_drift, drifted.value, drifted.reference, drifted.performance_day) == (
        True,
        0.757,
        0.804,
        "2026-09-17",
    )
    # The newest monitoring run of a day holds its live reports; a report never logged gets no link.
    assert drifted.report_url == f"{MLFLOW_UI}/#/experiments/7/runs/mon-new/artifacts/monitoring/2026-09-18/report.html"
    assert drifted.performance_report_url.endswith("/runs/mon-new/artifacts/monitoring/2026-09-18/performance.html")
    assert calm.performance_report_url == "" and calm.report_url.endswith(
        "/runs/mon-calm/artifacts/monitoring/2026-09-15/report.html"
    )

    [quarantined] = view.quarantine
    assert (quarantined.day, quarantined.rows, quarantined.failed) == (
        "2026-09-16",
        3080,
        ["[hard] table: columns missing ['price']"],
    )

    page = usecase_page(view)
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # registry text is escaped
    assert 'data-testid="chart"' in page and 'data-testid="timeline"' in page
    assert "approver <b>ada</b>" in page and 'class="error"' not in page
    assert (v2.review, v2.reviewed_by, v2.promoted_by) == ("approved", "ada", "review")
    assert '<span class="badge approved">approved</span> by <b>ada</b>: reviewed the slices' in page


def test_mlflow_unreachable_is_an_error_on_the_page_never_no_champion(store: JsonStore) -> None:
    uri = unreachable_uri()
    view = build_view(USECASE, store, MlflowRest(uri, timeout=2), LINKS, _no_approvals)
    assert uri in view.errors["registry"] and view.champion is None
    assert [d.day for d in view.days] == ["2026-09-15", "2026-09-18"]  # what the store holds is still shown
    assert all(d.report_url == "" for d in view.days)
    page = usecase_page(view)
    assert 'data-testid="error-registry"' in page and "could not be read" in page
    assert "none yet" not in page and "No version is registered yet" not in page


def test_refused_credentials_are_named(store: JsonStore) -> None:
    with fake_mlflow(UNAUTHENTICATED) as fake:
        view = build_view(USECASE, store, MlflowRest(fake.uri, username="u", password="wrong"), LINKS, _no_approvals)
    assert "HTTP 401" in view.errors["registry"] and "MLFLOW_TRACKING_USERNAME" in view.errors["registry"]


def test_no_registered_model_yet_is_not_an_error(store: JsonStore) -> None:
    missing = Answer(404, json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}))
    empty = {("GET", "/api/2.0/mlflow/model-versions/search"): {}, ("POST", "/api/2.0/mlflow/runs/search"): {}}

    def answers(method: str, path: str) -> Answer | None:
        found = empty.get((method, path))
        return None if found is None else Answer(200, json.dumps(found))

    with fake_mlflow(missing, answers) as fake:
        view = build_view(USECASE, store, MlflowRest(fake.uri), LINKS, _no_approvals)
    assert view.errors == {} and view.champion is None and view.versions == []
    assert "none yet" in usecase_page(view)


def test_an_unreadable_summary_is_a_monitoring_error_naming_the_file(tmp_path: Path, mlflow: MlflowRest) -> None:
    root = str(tmp_path / "data")
    _commit(Storage(root), Dataset.MONITORING, CALM_DAY, {SUMMARY_FILE: "{not json"}, {"step": "monitor"})
    view = build_view(USECASE, JsonStore(root), mlflow, LINKS, _no_approvals)
    assert f"monitoring/ds={CALM_DAY}/{SUMMARY_FILE}" in view.errors["monitoring"]
    assert view.errors.keys() == {"monitoring"} and view.champion == "2"


def test_a_half_written_partition_is_not_shown(tmp_path: Path, mlflow: MlflowRest) -> None:
    root = tmp_path / "data"
    folder = root / "yarnit" / Dataset.QUARANTINE / f"ds={BROKEN_DAY}"
    folder.mkdir(parents=True)
    (folder / REASON_FILE).write_text("{}")  # no _SUCCESS: a writer still busy, or killed
    view = build_view(USECASE, JsonStore(str(root)), mlflow, LINKS, _no_approvals)
    assert view.quarantine == [] and view.errors == {}


def test_pending_approvals_and_their_failure(store: JsonStore, mlflow: MlflowRest) -> None:
    asked: list[Sequence[str]] = []
    created = dt.datetime(2026, 9, 18, 2, 30, tzinfo=dt.UTC)
    row = {
        "dag_id": "yarnit_training",
        "run_id": "scheduled__2026-09-18",
        "task_id": "review",
        "map_index": -1,
        "state": "deferred",
        "subject": "Promote version 2?",
        "body": "possible leakage",
        "options": ["Approve", "Reject"],
        "assignees": [{"id": "1", "name": "ada"}],
        "created_at": created,
    }

    def approvals(dag_ids: Sequence[str]) -> list[Approval]:
        asked.append(dag_ids)
        return approvals_from_rows([row], LINKS)

    view = build_view(USECASE, store, mlflow, LINKS, approvals)
    assert asked == [["yarnit_training", "yarnit_scoring", "yarnit_monitoring", "yarnit_promotion"]]
    [approval] = view.approvals
    assert approval.url == "/af/dags/yarnit_training/runs/scheduled__2026-09-18/tasks/review/required_actions"
    assert (approval.created_at, approval.assignees) == ("2026-09-18T02:30:00+00:00", ["ada"])
    assert "Promote version 2?" in usecase_page(view)

    def failing(dag_ids: Sequence[str]) -> list[Approval]:
        raise ApprovalsUnavailable("Airflow's metadata DB did not answer")

    broken = build_view(USECASE, store, mlflow, LINKS, failing)
    assert broken.errors == {"approvals": "Airflow's metadata DB did not answer"}
    assert 'data-testid="error-approvals"' in usecase_page(broken)


def test_the_registry_is_read_from_the_steps_tracking_server_or_else_the_mlflow_ui() -> None:
    assert rest_url({"MLFLOW_TRACKING_URI": "https://mlflow.internal/"}) == "https://mlflow.internal"
    embedded = {"MLFLOW_TRACKING_URI": "sqlite:///x/mlflow.db", "MLCYCLE_MLFLOW_UI_URL": "http://127.0.0.1:5001/"}
    assert rest_url(embedded) == "http://127.0.0.1:5001"


def test_an_s3_store_is_read_through_each_partitions_manifest(
    monkeypatch: pytest.MonkeyPatch, mlflow: MlflowRest
) -> None:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3
    from moto.server import ThreadedMotoServer

    from mlcycle_dev.stack.process import free_port
    from support.s3 import use_s3_endpoint

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        use_s3_endpoint(monkeypatch, endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lifecycle")
        storage = Storage("s3://lifecycle/root")
        _prepare(storage)
        _prepare(storage)  # a second commit of each day: the manifest names the live version's prefix
        view = build_view(USECASE, JsonStore(storage.root), mlflow, LINKS, _no_approvals)
        assert view.errors == {}
        assert [(d.day, d.dataset_drift) for d in view.days] == [("2026-09-15", False), ("2026-09-18", True)]
        assert [q.day for q in view.quarantine] == ["2026-09-16"]

        monkeypatch.setenv("AWS_ENDPOINT_URL", unreachable_uri())  # the endpoint is gone: an error, not "no data"
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        gone = build_view(USECASE, JsonStore(storage.root), mlflow, LINKS, _no_approvals)
        assert "cannot list s3://lifecycle/root/yarnit/monitoring" in gone.errors["monitoring"]
        assert "quarantine" in gone.errors
    finally:
        server.stop()


def test_an_airflow_db_that_cannot_answer_is_an_approvals_error_not_no_approval() -> None:
    """The test session's Airflow DB is not migrated: the HITL query fails, and says so."""
    from mlcycle.lifecycle.airflow_db import pending_approvals

    with pytest.raises(ApprovalsUnavailable, match="human-in-the-loop query"):
        pending_approvals(["yarnit_training"], LINKS)


def test_the_plugin_mounts_the_page_and_adds_its_views_without_loading_the_app() -> None:
    """Every Airflow component imports plugins: the page's app (FastAPI, Airflow's auth) loads on first use only."""
    from mlcycle.lifecycle.app import URL_PREFIX  # where the app's routes expect to be mounted

    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('p', {str(REPO_ROOT / 'plugins' / 'mlcycle_lifecycle.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "plugin = module.MlcycleLifecyclePlugin\n"
        "print(plugin.fastapi_apps[0]['url_prefix'], sorted(v['destination'] for v in plugin.external_views))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('mlcycle.lifecycle', 'fastapi'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    mounted, loaded = done.stdout.strip().splitlines()[-2:]
    assert mounted == f"{URL_PREFIX} ['dag', 'nav']"
    assert loaded == "[]"


# Rows as the HITL operators leave them: two requests still waiting (one deferred, one parked awaiting input), one
# answered, one whose task ended without an answer (a timeout), and one of another use case's DAG.
_HITL_SCRIPT = """
import datetime as dt, json, sys, uuid
from sqlalchemy import insert
from airflow.models.dagrun import DagRun
from airflow.models.hitl import HITLDetail
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from mlcycle.lifecycle.airflow_db import pending_approvals
from mlcycle.lifecycle.view import Links

now = dt.datetime(2026, 9, 18, 3, 0, tzinfo=dt.UTC)
cases = [
    ("yarnit_training", "review", "deferred", None),
    ("yarnit_promotion", "approve", "awaiting_input", None),
    ("yarnit_training", "answered", "success", now),
    ("yarnit_training", "timed_out", "failed", None),
    ("other_training", "review", "deferred", None),
]
with create_session() as session:
    for number, (dag_id, task_id, state, responded) in enumerate(cases):
        run_id = f"run-{number}"
        session.execute(insert(DagRun.__table__).values(
                dag_id=dag_id, run_id=run_id, run_type="manual", run_after=now, logical_date=None, data_interval_end=None
            ))
        ti_id = uuid.uuid4()
        session.execute(
            insert(TaskInstance.__table__).values(
                id=ti_id, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1, pool="default_pool", state=state
            )
        )
        session.add(
            HITLDetail(
                ti_id=ti_id, options=["Approve", "Reject"], subject=f"{task_id}?", body="decision record", params={},
                assignees=[{"id": "7", "name": "ada"}], created_at=now + dt.timedelta(minutes=number),
                responded_at=responded, responded_by={"id": "7", "name": "ada"} if responded else None,
            )
        )
found = pending_approvals(["yarnit_training", "yarnit_promotion"], Links(mlflow="m", airflow="/af"))
print(json.dumps([[a.dag_id, a.task_id, a.state, a.created_at, a.assignees, a.url] for a in found]))
"""


@pytest.mark.integration
def test_pending_approvals_are_the_unanswered_requests_of_waiting_tasks_in_airflows_db(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
    }
    migrate = [str(Path(sys.executable).parent / "airflow"), "db", "migrate"]
    subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=300, check=True)
    done = subprocess.run([sys.executable, "-c", _HITL_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        ["yarnit_training", "review", "deferred", "2026-09-18T03:00:00+00:00", ["ada"],
         "/af/dags/yarnit_training/runs/run-0/tasks/review/required_actions"],
        ["yarnit_promotion", "approve", "awaiting_input", "2026-09-18T03:01:00+00:00", ["ada"],
         "/af/dags/yarnit_promotion/runs/run-1/tasks/approve/required_actions"],
    ]  # fmt: skip
