"""Browser tests: one populated stack and one signed-in Chromium context for every module of this folder
(`support.browser`), and each test's outcome kept on its item, so a failing test can leave a screenshot behind."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from support.browser import Stack, page_for_test, populated_stack, signed_in_context


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Built once for the folder: the real DAG runs are nearly all of the browser tests' time."""
    with populated_stack(tmp_path_factory.mktemp("browser")) as built:
        yield built


@pytest.fixture(scope="package")
def browser_context(stack: Stack) -> Iterator[Any]:
    with signed_in_context(stack.airflow_url, stack.airflow.username, stack.airflow.password) as context:
        yield context


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    def failed() -> bool:
        report = getattr(request.node, "rep_call", None)
        return bool(report is not None and report.failed)

    with page_for_test(browser_context, request.node.name, failed) as opened:
        yield opened
