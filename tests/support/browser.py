"""What the browser tests (tests/browser) share: the populated stack they drive, a signed-in Chromium context and
screenshots.

The stack, built once per test session folder (tests/browser/conftest.py, package scope) as cheaply as real runs
allow: YarnIt data for 2026-09-01..10, Airflow 3's api-server + scheduler + dag-processor (the scheduler creates
no scheduled runs here: `[scheduler] use_job_schedule=False`, so only the runs triggered here exist), two training
runs (2026-09-08, then 2026-09-10, both `no_cache`: two distinct MLflow runs) and one monitoring run for
2026-09-10, started as soon as the second training has validated that day, so it overlaps the second training.
An MLflow server on the same SQLite store starts alongside Airflow. Screenshots go to test-artifacts/browser/
(one per test, plus `FAILED-<test>.png` when a test fails), with timings.json (how long the set-up took).

Chromium comes from the machine's packages (`apt-get install chromium`): Playwright's own browser download does
not work here, so it is launched by path (`executable_path`), with `--no-sandbox` (root, no user namespaces).
Playwright is imported inside the functions: this module loads wherever a browser test is collected.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcycle.config import USECASES_ENV
from mlcycle.orchestration.links import MLFLOW_UI_URL_ENV
from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle_dev.stack import AirflowServices, ManagedProcess, free_port, wait_until
from support.usecases import lenient_usecases

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BIN = Path(sys.executable).parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
YARNIT_DAGS = ("yarnit_training", "yarnit_scoring", "yarnit_monitoring", "yarnit_promotion")
TRAINING_DAYS = ("2026-09-08", "2026-09-10")
MONITORING_DAY = "2026-09-10"
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
    storage_root: str

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


def mlflow_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return bool(response.status == 200)


def mlflow_server(env: Mapping[str, str], url: str, log_path: Path) -> ManagedProcess:
    """An MLflow server on the environment's tracking store and artifact root, at `url` (started, not yet ready)."""
    server = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
        "--default-artifact-root", env["MLCYCLE_ARTIFACT_ROOT"],
        "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
    ]  # fmt: skip
    # Without job execution: its job runners are ~1.3 GB of processes that nothing here uses.
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return ManagedProcess("mlflow-server", server, env=mlflow_env, log_path=log_path).start()


@contextlib.contextmanager
def populated_stack(root: Path) -> Iterator[Stack]:
    """The stack of the module doc, stopped when the block ends."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)

    mlflow_url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **embedded_environment(root),
        # Only the runs triggered below: unpausing a scheduled DAG would otherwise add today's run, which has
        # no data, fails at ingest and, with max_active_runs=1, would hold up the training runs while it retries.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        USECASES_ENV: str(lenient_usecases(root)),  # the monitoring run needs a champion, whatever the load
        # Read by the api-server, which resolves the plugin's extra links and serves the lifecycle page.
        MLFLOW_UI_URL_ENV: mlflow_url,
    }
    generate = [str(BIN / "mlcycle"), "generate", "--usecase", "yarnit", "--start", "2026-09-01", "--end", "2026-09-10"]
    # Data generation and the MLflow server start while Airflow migrates its DB and starts (2 cores: they overlap
    # on I/O and imports). The MLflow server creates the tracking DB's schema before any step touches it.
    generating = subprocess.Popen(
        [*generate, "--rows", "700"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    server = mlflow_server(env, mlflow_url, root / "mlflow-server.log")
    try:
        with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as airflow:
            mark("airflow_started")
            output, _ = generating.communicate(timeout=600)
            assert generating.returncode == 0, f"mlcycle generate failed:\n{output[-3000:]}"
            airflow.wait_for_dags(YARNIT_DAGS, timeout=180)
            wait_until(lambda: mlflow_healthy(mlflow_url), 180, "the MLflow server", processes=[server])
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
            yield Stack(
                airflow=airflow,
                mlflow_url=mlflow_url,
                training_runs=training_runs,
                training_results=[_return_value(airflow, "yarnit_training", r, "train") for r in training_runs],
                monitoring_run=monitoring_run,
                monitor_result=_return_value(airflow, "yarnit_monitoring", monitoring_run, "monitor"),
                storage_root=env["MLCYCLE_STORAGE_ROOT"],
            )
            mark("browser_tests_done")
    finally:
        server.stop()
        if generating.poll() is None:
            generating.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")


@contextlib.contextmanager
def signed_in_context(airflow_url: str, username: str, password: str) -> Iterator[Any]:
    """One Chromium context signed in to Airflow through the simple auth manager's form."""
    from playwright import sync_api

    assert CHROMIUM is not None
    # `expect` has its own timeout (5 s by default), separate from the context's.
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 960})
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.add_init_script(MLFLOW_QUIET_UI)
        page = context.new_page()
        page.goto(f"{airflow_url}/")
        page.wait_for_url("**/auth/login**")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        page.close()
        yield context
        context.close()
        browser.close()


@contextlib.contextmanager
def page_for_test(context: Any, name: str, failed: Any) -> Iterator[Any]:
    """A new page for one test; every open page is screenshotted as FAILED-<test> when `failed()` says so."""
    page = context.new_page()
    yield page
    if failed():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for number, open_page in enumerate(context.pages):
            suffix = f"-{number}" if number else ""
            open_page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}{suffix}.png"))
    for open_page in context.pages:
        open_page.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
