"""Shared by the MLflow and registry-lock fault drills (tests/faults): a real registry with a champion, and the
checks every drill ends with (the champion is intact, the lock is gone, the failure leads to a retry + alert).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from mlcycle.exitcodes import ExitCode

MODEL = "yarnit_model"


def registry_with_champion(versions: int = 2, champion: str = "1") -> None:
    """Register `versions` versions of yarnit's model (no artifacts: nothing here loads them); @champion -> `champion`."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(versions):
        client.create_model_version(MODEL, source="/nowhere", tags={"mlcycle.partition": "2024-02-01"})
    client.set_registered_model_alias(MODEL, "champion", champion)


def champion_now() -> str:
    """The version @champion points at, read from the real registry (MLFLOW_TRACKING_URI as the test set it)."""
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version)


@contextlib.contextmanager
def environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> Iterator[None]:
    """Set `values` for the block, then put back what was there (the real registry's URI, above all)."""
    before = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)


def assert_retried_then_alerted(code: int, result: dict[str, Any] | None) -> None:
    """The step's outcome, through the launchers' one mapping, is a plain task failure: retried, then alerted
    by the failure callback (not a skip, and not a failure without retry)."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from mlcycle.orchestration.operators import raise_for_exit_code

    assert code not in (ExitCode.OK, ExitCode.REJECTED, ExitCode.NOTHING_TO_DO), (code, result)
    with pytest.raises(AirflowException) as raised:
        raise_for_exit_code(code, result, "drill")
    assert not isinstance(raised.value, (AirflowSkipException, AirflowFailException)), raised.value
