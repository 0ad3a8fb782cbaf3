"""The UIs through a real browser (headless Chromium driven by Playwright): Airflow's DAG list, a finished run's
grid, the promotion DAG's trigger form, MLflow's comparison of two training runs, an Evidently report, and the
plugin's extra links from a task to its MLflow run and report.

The stack (YarnIt data for 2026-09-01..10, Airflow 3's api-server + scheduler + dag-processor, two training runs,
one monitoring run, an MLflow server on the same store) and the signed-in Chromium context are shared by this
folder's modules: `support.browser`, fixtures in tests/browser/conftest.py. Screenshots go to
test-artifacts/browser/ (one per test, plus `FAILED-<test>.png` when a test fails), with timings.json.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from support.browser import CHROMIUM, MONITORING_DAY, TRAINING_DAYS, YARNIT_DAGS, Stack, screenshot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium / chromium-browser on PATH (Debian: apt-get install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")

TRAINING_TASKS = ("ingest", "validate", "features", "train", "evaluate", "promote")


def test_airflow_lists_the_yarnit_dags(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.airflow_url}/dags")
    for dag_id in YARNIT_DAGS:
        sync_api.expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    screenshot(page, "airflow-dags")


def test_a_finished_training_run_shows_its_grid(stack: Stack, page: Any) -> None:
    run_id = stack.training_runs[0]
    page.goto(f"{stack.airflow_url}/dags/yarnit_training/runs/{urllib.parse.quote(run_id, safe='')}")
    sync_api.expect(page.get_by_text(run_id).first).to_be_visible()
    # The grid: a row per task, and in the run's column a cell per task (a link to that task instance).
    for task_id in TRAINING_TASKS:
        sync_api.expect(page.get_by_test_id(f"task-{task_id}")).to_be_visible()
        sync_api.expect(page.get_by_test_id(f"grid-{run_id}-{task_id}")).to_be_visible()
    # The run's own header says it finished well.
    sync_api.expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    screenshot(page, "airflow-training-grid")


def test_the_promotion_trigger_form_shows_its_params(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.airflow_url}/dags/yarnit_promotion")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    sync_api.expect(dialog.get_by_text("Run Parameters")).to_be_visible()
    for title in ("Action", "Model version", "Approver", "Reason", "Partition"):
        sync_api.expect(dialog).to_contain_text(title)
    # The widgets follow the Params' JSON schema: an enum is a choice, an integer a number field; the
    # descriptions and required fields are the DAG's own.
    sync_api.expect(dialog.get_by_role("combobox", name="Action")).to_be_visible()
    sync_api.expect(dialog.get_by_role("spinbutton", name="Model version")).to_be_visible()
    sync_api.expect(dialog.get_by_text("Needed to promote.")).to_be_visible()
    sync_api.expect(dialog.get_by_text("This field is required")).to_have_count(2)  # approver, reason
    screenshot(page, "airflow-promotion-trigger-form")
    page.keyboard.press("Escape")  # never submitted: nothing is promoted


def test_mlflow_compares_the_two_training_runs(stack: Stack, page: Any) -> None:
    run_ids = [result["metrics"]["run_id"] for result in stack.training_results]
    assert len(set(run_ids)) == 2, run_ids
    experiment_id = stack.monitor_result["outputs"]["mlflow_experiment_id"]
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])})
    page.goto(f"{stack.mlflow_url}/#/compare-runs?{query}")
    sync_api.expect(page.get_by_text("Comparing 2 Runs")).to_be_visible()
    for run_id in run_ids:
        sync_api.expect(page.get_by_text(run_id).first).to_be_visible()
    for day in TRAINING_DAYS:  # the candidate runs are named <model>-<partition>
        sync_api.expect(page.get_by_text(day).first).to_be_visible()
    screenshot(page, "mlflow-compare-training-runs")


def test_the_evidently_report_opens(stack: Stack, page: Any) -> None:
    report = Path(stack.monitor_result["outputs"]["report"])
    assert report.is_file(), report
    page.goto(report.as_uri())
    sync_api.expect(page.get_by_text("Dataset Drift").first).to_be_visible()
    sync_api.expect(page.get_by_text("Data Drift Summary").first).to_be_visible()
    sync_api.expect(page.get_by_text("price", exact=True).first).to_be_visible()  # a YarnIt feature's row
    screenshot(page, "evidently-report")


def _task_details(stack: Stack, page: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    page.goto(f"{stack.airflow_url}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/{task_id}/details")
    sync_api.expect(page.get_by_text("Extra Links")).to_be_visible()
    return page


def test_the_train_tasks_extra_link_opens_its_mlflow_run(stack: Stack, page: Any) -> None:
    run_id = stack.training_results[0]["metrics"]["run_id"]
    _task_details(stack, page, "yarnit_training", stack.training_runs[0], "train")
    link = page.get_by_role("link", name="MLflow run")
    sync_api.expect(link).to_have_attribute("href", f"{stack.mlflow_url}/#/runs/{run_id}")
    # A train task has no report: that button is not rendered.
    sync_api.expect(page.get_by_role("link", name="Evidently report")).to_have_count(0)
    screenshot(page, "airflow-train-extra-links")
    with page.context.expect_page() as opened:  # external links open in a new tab
        link.click()
    mlflow_page = opened.value
    # MLflow's `#/runs/<id>` route looks the run up and moves to its experiment's run page.
    mlflow_page.wait_for_url(f"**/#/experiments/*/runs/{run_id}*")
    sync_api.expect(mlflow_page.get_by_text(run_id).first).to_be_visible()
    sync_api.expect(mlflow_page.get_by_text(f"-{TRAINING_DAYS[0]}").first).to_be_visible()  # the run's name
    screenshot(mlflow_page, "mlflow-run-from-extra-link")


def test_the_monitor_tasks_extra_link_opens_the_evidently_report_in_mlflow(stack: Stack, page: Any) -> None:
    outputs = stack.monitor_result["outputs"]
    _task_details(stack, page, "yarnit_monitoring", stack.monitoring_run, "monitor")
    sync_api.expect(page.get_by_role("link", name="MLflow run")).to_have_attribute(
        "href", f"{stack.mlflow_url}/#/experiments/{outputs['mlflow_experiment_id']}/runs/{outputs['mlflow_run_id']}"
    )
    link = page.get_by_role("link", name="Evidently report")
    screenshot(page, "airflow-monitor-extra-links")
    with page.context.expect_page() as opened:
        link.click()
    report_page = opened.value
    report_page.wait_for_url(f"**/runs/{outputs['mlflow_run_id']}/artifacts/monitoring/{MONITORING_DAY}/report.html")
    # MLflow's artifact viewer renders the HTML in a sandboxed iframe.
    report = report_page.frame_locator("iframe").first
    sync_api.expect(report.get_by_text("Dataset Drift").first).to_be_visible()
    sync_api.expect(report.get_by_text("Data Drift Summary").first).to_be_visible()
    screenshot(report_page, "mlflow-evidently-report-from-extra-link")
