"""The UIs through a real browser (headless Chromium driven by Playwright): Airflow's DAG list, a finished run's
grid, the promotion DAG's trigger form, MLflow's comparison of two training runs, an Evidently report, and the
plugin's extra links from a task to its MLflow run and report.

One module-scoped stack, built as cheaply as real runs allow: YarnIt data for 2026-09-01..10, Airflow 3's
api-server + scheduler + dag-processor (the scheduler creates no scheduled runs here:
`[scheduler] use_job_schedule=False`, so only the runs this module triggers exist), two training runs (2026-09-08,
then 2026-09-10, both `no_cache`: two distinct MLflow runs) and one monitoring run for 2026-09-10, started as soon
as the second training has validated that day, so it overlaps the second training. An MLflow server on the same
SQLite store starts alongside Airflow. Screenshots go to test-artifacts/browser/ (one per test, plus
`FAILED-<test>.png` when a test fails), with timings.json (how long the set-up took).

Chromium comes from the machine's packages (`apt-get install chromium`): Playwright's own browser download does
not work here, so it is launched by path (`executable_path`), with `--no-sandbox` (root, no user namespaces).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import USECASES_ENV
from mlcycle.orchestration.links import MLFLOW_UI_URL_ENV
from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle_dev.stack import AirflowServices, ManagedProcess, free_port, wait_until
from support.usecases import lenient_usecases

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium / chromium-browser on PATH (Debian: apt-get install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")

BIN = Path(sys.executable).parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
YARNIT_DAGS = ("yarnit_training", "yarnit_scoring", "yarnit_monitoring", "yarnit_promotion")
TRAINING_DAYS = ("2026-09-08", "2026-09-10")
MONITORING_DAY = "2026-09-10"
TRAINING_TASKS = ("ingest", "validate", "features", "train", "evaluate", "promote")
RUN_TIMEOUT = 900.0
# The SPAs render slowly on a busy 2-core machine (MLflow's first page load takes 5-15 s there).
UI_TIMEOUT_MS = 90_000
# MLflow 3.17 opens its "Assistant" side panel on the first visit; these local-storage entries (its
# useLocalStorage hook writes `<key>_v<version>` as JSON) keep it closed, so the screenshots show the page.
MLFLOW_QUIET_UI = """
try {
  localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
  localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
} catch (e) {}
"""


@dataclass
class Stack:
    airflow: AirflowServices
    mlflow_url: str
    training_runs: list[str]
    training_results: list[dict[str, Any]]
    monitoring_run: str
    monitor_result: dict[str, Any]

    @property
    def airflow_url(self) -> str:
        return self.airflow.base_url


def _return_value(airflow: AirflowServices, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}"
    value = airflow.request("GET", f"{path}/xcomEntries/return_value")["value"]
    return value if isinstance(value, dict) else json.loads(value)


def _succeeds(airflow: AirflowServices, dag_id: str, run_id: str) -> None:
    state = airflow.wait_for_run(dag_id, run_id, RUN_TIMEOUT)
    assert state == "success", f"{dag_id} {run_id} ended {state}: {airflow.task_states(dag_id, run_id)}"


def _finished_task(airflow: AirflowServices, dag_id: str, run_id: str, task_id: str) -> str | None:
    """The task's state once it has one that will not change by itself (None before)."""
    state = airflow.task_states(dag_id, run_id).get(task_id)
    return state if state in ("success", "failed", "upstream_failed", "skipped") else None


def _mlflow_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return bool(response.status == 200)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)

    root = tmp_path_factory.mktemp("browser")
    mlflow_url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **embedded_environment(root),
        # Only the runs triggered below: unpausing a scheduled DAG would otherwise add today's run, which has
        # no data, fails at ingest and, with max_active_runs=1, would hold up the training runs while it retries.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        USECASES_ENV: str(lenient_usecases(root)),  # the monitoring run needs a champion, whatever the load
        # Read by the api-server, which resolves the plugin's extra links.
        MLFLOW_UI_URL_ENV: mlflow_url,
    }
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", "2026-09-10"]
    # Data generation and the MLflow server start while Airflow migrates its DB and starts (2 cores: they overlap
    # on I/O and imports). The MLflow server creates the tracking DB's schema before any step touches it.
    generating = subprocess.Popen(
        [*generate, "--rows", "700"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    server = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
        "--default-artifact-root", env["MLCYCLE_ARTIFACT_ROOT"],
        "--host", "127.0.0.1", "--port", mlflow_url.rsplit(":", 1)[1],
    ]  # fmt: skip
    # Without job execution: its job runners are ~1.3 GB of processes that nothing here uses.
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_server = ManagedProcess("mlflow-server", server, env=mlflow_env, log_path=root / "mlflow-server.log").start()
    try:
        with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as airflow:
            mark("airflow_started")
            output, _ = generating.communicate(timeout=600)
            assert generating.returncode == 0, f"mlcycle generate failed:\n{output[-3000:]}"
            airflow.wait_for_dags(YARNIT_DAGS, timeout=180)
            wait_until(lambda: _mlflow_healthy(mlflow_url), 180, "the MLflow server", processes=[mlflow_server])
            mark("mlflow_started")
            for dag_id in ("yarnit_training", "yarnit_monitoring"):
                airflow.unpause(dag_id)
            # Both queued now; max_active_runs=1 runs them one after the other.
            confs = [{"partition": day, "no_cache": True, "reason": "browser test"} for day in TRAINING_DAYS]
            training_runs = [airflow.trigger("yarnit_training", conf=conf)["dag_run_id"] for conf in confs]
            _succeeds(airflow, "yarnit_training", training_runs[0])
            mark("first_training_done")
            # Monitoring needs a champion (the first training) and validated data of its day, which the second
            # training validates first thing (its window ends on that day): start it then, in parallel.
            validated = wait_until(
                lambda: _finished_task(airflow, "yarnit_training", training_runs[1], "validate"),
                RUN_TIMEOUT,
                f"validate of {training_runs[1]}",
                processes=airflow.processes.values(),
            )
            assert validated == "success", airflow.task_states("yarnit_training", training_runs[1])
            monitoring_run = airflow.trigger("yarnit_monitoring", conf={"partition": MONITORING_DAY})["dag_run_id"]
            _succeeds(airflow, "yarnit_training", training_runs[1])
            mark("second_training_done")
            _succeeds(airflow, "yarnit_monitoring", monitoring_run)
            mark("monitoring_done")
            stack = Stack(
                airflow=airflow,
                mlflow_url=mlflow_url,
                training_runs=training_runs,
                training_results=[_return_value(airflow, "yarnit_training", r, "train") for r in training_runs],
                monitoring_run=monitoring_run,
                monitor_result=_return_value(airflow, "yarnit_monitoring", monitoring_run, "monitor"),
            )
            yield stack
            mark("browser_tests_done")
    finally:
        mlflow_server.stop()
        if generating.poll() is None:
            generating.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")


@pytest.fixture(scope="module")
def browser_context(stack: Stack) -> Iterator[Any]:
    """One Chromium context for every test, signed in to Airflow through the simple auth manager's form."""
    assert CHROMIUM is not None
    # `expect` has its own timeout (5 s by default), separate from the context's.
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 960})
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.add_init_script(MLFLOW_QUIET_UI)
        page = context.new_page()
        page.goto(f"{stack.airflow_url}/")
        page.wait_for_url("**/auth/login**")
        page.get_by_label("Username").fill(stack.airflow.username)
        page.get_by_label("Password").fill(stack.airflow.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        page.close()
        yield context
        context.close()
        browser.close()


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = browser_context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for number, open_page in enumerate(browser_context.pages):
            suffix = f"-{number}" if number else ""
            open_page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}{suffix}.png"))
    for open_page in browser_context.pages:
        open_page.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


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
