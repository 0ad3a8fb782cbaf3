"""The "MLflow run" and "Evidently report" extra links: URLs from step results shaped as the steps build them,
and no link (never an exception) when the result is missing or is not one of theirs."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import pytest

from mlcycle.orchestration import links
from mlcycle.orchestration.links import EvidentlyReportLink, MLflowRunLink, decode_result, report_url, run_url
from mlcycle.settings import REPO_ROOT
from mlcycle.specs.results import EvaluateResult, IngestResult, MonitorResult, TrainResult

BASE = "http://mlflow.example:5000"
ROOT = "s3://bucket/prefix/yarnit"
KEY = SimpleNamespace(dag_id="yarnit_monitoring", task_id="monitor", run_id="manual__2026-09-10", map_index=-1)


def train_result() -> dict[str, Any]:
    # As mlcycle.steps.train._result builds it: the candidate run in metrics.run_id.
    return TrainResult.of(
        "train",
        "yarnit",
        "2026-09-08",
        outputs={"model_uri": "models:/yarnit_model/3", "features": f"{ROOT}/features/ds=2026-09-08"},
        metrics={"model_version": "3", "run_id": "c0ffee", "parent_run_id": "beef", "test_roc_auc": 0.71},
    ).to_dict()


def evaluate_result() -> dict[str, Any]:
    return EvaluateResult.of(
        "evaluate",
        "yarnit",
        "2026-09-08",
        outputs={"decision": f"{ROOT}/evaluation/ds=2026-09-08/v3", "mlflow_run_id": "c0ffee"},
        metrics={
            "decision": "promote",
            "candidate_version": "3",
            "champion_version": None,
            "compute": {"mode": "soft", "factor": 2.0, "regressions": []},
        },
    ).to_dict()


def monitor_result(**outputs: str) -> dict[str, Any]:
    target = f"{ROOT}/monitoring/ds=2026-09-10"
    return MonitorResult.of(
        "monitor",
        "yarnit",
        "2026-09-10",
        outputs={
            "report": f"{target}/report.html",
            "monitoring": target,
            "mlflow_run_id": "a1b2",
            "mlflow_experiment_id": "7",
            **outputs,
        },
        metrics={
            "dataset_drift": False,
            "drift_share": 0.0,
            "drifted_columns": [],
            "prediction_drift": {"status": "pending", "reason": "no champion predictions yet"},
            "performance": {"status": "pending", "partition": "2026-09-08"},
            "new_labelled_rows": 0,
            "champion_version": "3",
        },
    ).to_dict()


def test_train_links_to_its_candidate_run_through_mlflows_direct_run_route() -> None:
    assert run_url(train_result(), BASE) == f"{BASE}/#/runs/c0ffee"
    assert report_url(train_result(), BASE) == ""


def test_evaluate_links_to_the_run_named_in_its_outputs() -> None:
    assert run_url(evaluate_result(), BASE) == f"{BASE}/#/runs/c0ffee"


def test_monitor_links_to_its_run_and_to_the_report_in_mlflows_artifact_view() -> None:
    result = monitor_result()
    assert run_url(result, BASE) == f"{BASE}/#/experiments/7/runs/a1b2"
    assert report_url(result, BASE) == f"{BASE}/#/experiments/7/runs/a1b2/artifacts/monitoring/2026-09-10/report.html"


def test_a_local_storage_root_gives_the_same_report_link() -> None:
    target = "/home/me/.mlcycle/data/yarnit/monitoring/ds=2026-09-10"
    result = monitor_result(report=f"{target}/report.html", monitoring=target)
    assert report_url(result, BASE).endswith("/artifacts/monitoring/2026-09-10/report.html")


@pytest.mark.parametrize(
    "result",
    [
        None,
        {},
        "not a result",
        {"step": "monitor"},
        {"step": "monitor", "outputs": "oops", "metrics": []},
        IngestResult.of(
            "ingest",
            "yarnit",
            "2026-09-10",
            outputs={"raw": f"{ROOT}/raw/ds=2026-09-10"},
            metrics={"digest": "ab12", "format": "parquet", "written": ["2026-09-10"]},
        ).to_dict(),
        {**train_result(), "metrics": {"model_version": "3"}},  # no run id
        {**monitor_result(), "metrics": {"dataset_drift": False}},  # lacks what its typed model requires
        {"step": ["monitor"]},  # not even a step name
    ],
    ids=["none", "empty", "text", "no-outputs", "malformed", "other-step", "no-run-id", "untyped", "odd-step"],
)
def test_no_link_when_the_result_lacks_what_it_needs(result: Any) -> None:
    assert run_url(result, BASE) == ""
    assert report_url(result, BASE) == ""


@pytest.mark.parametrize(
    "outputs",
    [
        {"mlflow_experiment_id": ""},  # a result from before the key existed: no artifact route without it
        {"mlflow_run_id": ""},
        {"report": "s3://elsewhere/report.html"},  # not inside the logged folder
    ],
)
def test_no_report_link_from_an_incomplete_monitor_result(outputs: dict[str, str]) -> None:
    assert report_url(monitor_result(**outputs), BASE) == ""


def test_ids_are_escaped_in_the_url() -> None:
    result = monitor_result(mlflow_run_id="a/b?c")
    assert run_url(result, BASE) == f"{BASE}/#/experiments/7/runs/a%2Fb%3Fc"


def test_decode_result_takes_every_stored_form() -> None:
    import json

    document = monitor_result()
    assert decode_result(document) == document
    assert decode_result(json.dumps(document)) == document
    assert decode_result(json.dumps(json.dumps(document))) == document
    assert decode_result(None) is None
    assert decode_result("{not json") is None
    assert decode_result("[1, 2]") is None


def test_the_mlflow_ui_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(links.MLFLOW_UI_URL_ENV, raising=False)
    assert links.mlflow_ui_url() == "http://127.0.0.1:5000"
    monkeypatch.setenv(links.MLFLOW_UI_URL_ENV, "https://mlflow.example.org/")
    assert links.mlflow_ui_url() == "https://mlflow.example.org"


def test_get_link_builds_the_url_from_the_tasks_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_result(ti_key: Any) -> dict[str, Any]:
        seen.append(ti_key)
        return monitor_result()

    monkeypatch.setattr(links, "step_result", fake_result)
    monkeypatch.setenv(links.MLFLOW_UI_URL_ENV, BASE)
    assert MLflowRunLink().get_link(None, ti_key=KEY) == f"{BASE}/#/experiments/7/runs/a1b2"
    assert (
        EvidentlyReportLink()
        .get_link(None, ti_key=KEY)
        .endswith("/runs/a1b2/artifacts/monitoring/2026-09-10/report.html")
    )
    assert seen == [KEY, KEY]


def test_get_link_without_a_readable_xcom_is_no_link_not_an_error() -> None:
    """The test session's Airflow DB is not migrated: the XCom query fails, the link is just absent."""
    assert links.step_result(KEY) is None
    assert MLflowRunLink().get_link(None, ti_key=KEY) == ""
    assert EvidentlyReportLink().get_link(None, ti_key=KEY) == ""


def test_the_plugin_registers_both_links_globally() -> None:
    spec = importlib.util.spec_from_file_location("mlcycle_links_plugin", REPO_ROOT / "plugins" / "mlcycle_links.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.MlcycleLinksPlugin
    assert plugin.name == "mlcycle_links"
    assert sorted(link.name for link in plugin.global_operator_extra_links) == ["Evidently report", "MLflow run"]
