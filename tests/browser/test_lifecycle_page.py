"""The lifecycle page (plugins/mlcycle_lifecycle.py) in Airflow's UI, through headless Chromium: the nav entry,
the page of YarnIt in Airflow's frame, its links into MLflow, the tab on a DAG's page, and its refusal of a
request without Airflow's login.

What it shows is checked against the sources it reads, asked separately here: the registry's aliases and
versions (MLflow's REST API), the committed monitoring and quarantine partitions (`Storage`), the waiting
human-in-the-loop requests (Airflow's REST API).

Which store: by default the populated stack this folder's tests share (tests/browser/conftest.py). With
`MLCYCLE_BROWSER_DEMO_HOME=<MLCYCLE_HOME of a finished make demo>` (CI runs it after `make demo`), the demo's
store instead, served by an api-server and an MLflow server of its own (its Airflow DB and MLflow store are only
read): the screenshots then show YarnIt's three weeks. Screenshots: test-artifacts/browser/lifecycle-*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlcycle.orchestration.links import MLFLOW_UI_URL_ENV
from mlcycle.settings import embedded_environment
from mlcycle.storage.layout import Dataset
from mlcycle.storage.partitions import Storage
from mlcycle_dev.stack import AirflowServices, free_port, wait_until
from support.browser import CHROMIUM, mlflow_healthy, mlflow_server, page_for_test, screenshot, signed_in_context

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium / chromium-browser on PATH (Debian: apt-get install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")

DEMO_HOME_ENV = "MLCYCLE_BROWSER_DEMO_HOME"
USECASE, MODEL = "yarnit", "yarnit_model"
PAGE = "/mlcycle/lifecycle/usecases/yarnit"


@dataclass
class Site:
    airflow: AirflowServices
    mlflow_url: str
    storage_root: str


@contextlib.contextmanager
def _demo_site(home: Path, scratch: Path) -> Iterator[Site]:
    """An api-server and an MLflow server on a finished demo's stores; Airflow's own files (passwords, logs) in
    `scratch`, so the demo's folder is only read."""
    if not (home / "airflow" / "airflow.db").is_file() or not (home / "mlflow.db").is_file():
        raise FileNotFoundError(f"{DEMO_HOME_ENV}={home}: no airflow/airflow.db and mlflow.db there (run make demo)")
    mlflow_url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **embedded_environment(home),
        "AIRFLOW_HOME": str(scratch / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        MLFLOW_UI_URL_ENV: mlflow_url,
    }
    server = mlflow_server(env, mlflow_url, scratch / "mlflow-server.log")
    try:
        with AirflowServices(env, components=("api-server",)) as airflow:
            wait_until(lambda: mlflow_healthy(mlflow_url), 180, "the MLflow server", processes=[server])
            yield Site(airflow, mlflow_url, env["MLCYCLE_STORAGE_ROOT"])
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    demo = os.environ.get(DEMO_HOME_ENV)
    if not demo:
        stack = request.getfixturevalue("stack")
        yield Site(stack.airflow, stack.mlflow_url, stack.storage_root)
        return
    with _demo_site(Path(demo).resolve(), tmp_path_factory.mktemp("lifecycle")) as built:
        yield built


@pytest.fixture(scope="module")
def context(site: Site, request: pytest.FixtureRequest) -> Iterator[Any]:
    if not os.environ.get(DEMO_HOME_ENV):
        yield request.getfixturevalue("browser_context")
        return
    with signed_in_context(site.airflow.base_url, site.airflow.username, site.airflow.password) as signed_in:
        yield signed_in


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    def failed() -> bool:
        report = getattr(request.node, "rep_call", None)
        return bool(report is not None and report.failed)

    with page_for_test(context, request.node.name, failed) as opened:
        yield opened


def _mlflow(site: Site, path: str, **query: str) -> dict[str, Any]:
    url = f"{site.mlflow_url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        loaded: dict[str, Any] = json.load(response)
        return loaded


def _frame(page: Any) -> Any:
    return page.frame_locator("iframe").first


def test_the_nav_entry_opens_yarnits_lifecycle_page(site: Site, page: Any) -> None:
    aliases = {
        a["alias"]: a["version"]
        for a in _mlflow(site, "registered-models/get", name=MODEL)["registered_model"]["aliases"]
    }
    versions = _mlflow(site, "model-versions/search", filter=f"name='{MODEL}'")["model_versions"]
    storage = Storage(site.storage_root)
    monitored = storage.list_partitions(USECASE, Dataset.MONITORING)
    quarantined = storage.list_partitions(USECASE, Dataset.QUARANTINE)
    waiting = site.airflow.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": "false"})
    waiting_here = [d for d in waiting["hitl_details"] if d["task_instance"]["dag_id"].startswith(f"{USECASE}_")]
    assert monitored and versions, "the store holds no monitored day or no version: nothing to show"

    page.set_viewport_size({"width": 1440, "height": 2200})
    page.goto(f"{site.airflow.base_url}/")
    page.get_by_role("link", name="ML lifecycle").first.click()  # Airflow's nav bar: the plugin's external view
    frame = _frame(page)
    frame.get_by_test_id(f"usecase-{USECASE}").click()
    sync_api.expect(frame.get_by_test_id("lifecycle-title")).to_have_text(f"{USECASE}: ML lifecycle")
    sync_api.expect(frame.get_by_test_id("card-champion")).to_contain_text(f"v{aliases['champion']}")
    for day in monitored:
        sync_api.expect(frame.get_by_test_id(f"day-{day}")).to_be_visible()
    for day in quarantined:
        sync_api.expect(frame.get_by_test_id(f"quarantine-{day}")).to_contain_text("[hard]")
    for version in versions:
        sync_api.expect(frame.get_by_test_id(f"version-{version['version']}")).to_be_visible()
    sync_api.expect(frame.get_by_test_id(f"version-{aliases['champion']}")).to_contain_text("@champion")
    sync_api.expect(frame.get_by_test_id("chart")).to_be_visible()
    sync_api.expect(frame.get_by_test_id("timeline")).to_be_visible()
    if waiting_here:
        sync_api.expect(frame.get_by_test_id("approvals").locator("tr")).to_have_count(len(waiting_here) + 1)
    else:
        sync_api.expect(frame.get_by_test_id("no-approvals")).to_be_visible()
    sync_api.expect(frame.locator('[role="alert"]')).to_have_count(0)  # every source answered
    screenshot(page, "lifecycle-yarnit-in-airflow")
    whole = page.context.new_page()
    whole.goto(f"{site.airflow.base_url}{PAGE}")
    sync_api.expect(whole.get_by_test_id("lifecycle-title")).to_be_visible()
    screenshot(whole, "lifecycle-yarnit", full_page=True)


def test_a_days_evidently_link_opens_the_report_in_mlflow(site: Site, page: Any) -> None:
    page.goto(f"{site.airflow.base_url}/plugin/ml-lifecycle")
    frame = _frame(page)
    frame.get_by_test_id(f"usecase-{USECASE}").click()
    link = frame.get_by_role("link", name="Evidently drift report").last
    # Airflow frames the page without allow-popups: the page's script opens the link from Airflow's document.
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_url(f"{site.mlflow_url}/#/experiments/*/runs/*/artifacts/monitoring/*/report.html")
    sync_api.expect(report.frame_locator("iframe").first.get_by_text("Dataset Drift").first).to_be_visible()
    screenshot(report, "lifecycle-evidently-report-in-mlflow")


def test_a_dags_lifecycle_tab_shows_its_use_cases_page(site: Site, page: Any) -> None:
    page.goto(f"{site.airflow.base_url}/dags/{USECASE}_monitoring/plugin/ml-lifecycle-dag")
    sync_api.expect(_frame(page).get_by_test_id("lifecycle-title")).to_have_text(f"{USECASE}: ML lifecycle")
    screenshot(page, "lifecycle-dag-tab")


def test_the_page_refuses_a_request_without_airflows_login(site: Site) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{site.airflow.base_url}{PAGE}", timeout=30)
    assert refused.value.code == 401
