"""Fault drills: MLflow down, slow, or refusing the credentials while a step needs @champion.

Each drill starts from a real registry (SQLite) whose @champion is version 1, points MLflow's client at a broken
MLflow for one step, then checks with the real registry again: the step failed as an error (Airflow retries it,
then its failure callback alerts), @champion is still version 1, no registry lock is left and nothing was written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.storage.layout import champion_lock_uri
from support.cli import step
from support.fake_mlflow import (
    FORBIDDEN,
    SLOW,
    UNAUTHENTICATED,
    Answer,
    fake_mlflow,
    mlflow_client_env,
    unreachable_uri,
)
from support.registry_drills import assert_retried_then_alerted, champion_now, environment, registry_with_champion

DAY = dt.date(2024, 3, 1)


@pytest.fixture
def champion_v1(mlcycle_env: dict[str, str]) -> Iterator[Path]:
    """A real registry whose @champion is version 1 (of 2); yields the storage root."""
    registry_with_champion(versions=2, champion="1")
    yield Path(mlcycle_env["MLCYCLE_STORAGE_ROOT"])


def _run_with_mlflow(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, uri: str, name: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    with environment(monkeypatch, mlflow_client_env(uri)):
        return step(capsys, name, DAY, *extra)


def _run_with_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, answer: Answer, name: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    with fake_mlflow(answer) as fake:
        code, result = _run_with_mlflow(monkeypatch, capsys, fake.uri, name, *extra)
    assert fake.alias_moves() == []
    return code, result


def _assert_intact(root: Path) -> None:
    assert champion_now() == "1", "@champion moved"
    assert not Path(champion_lock_uri(str(root), "yarnit")).exists(), "registry lock left behind"
    written = [p for p in (root / "yarnit").glob("*/ds=*")] if (root / "yarnit").exists() else []
    assert written == [], f"a failed step wrote partitions: {written}"


def test_mlflow_unreachable_at_score_fails_and_retries(champion_v1: Path, monkeypatch, capsys) -> None:
    """score with MLflow unreachable exits ERROR (retried, then alerted), serves nothing, champion intact."""
    code, result = _run_with_mlflow(monkeypatch, capsys, unreachable_uri(), "score")
    assert_retried_then_alerted(code, result)
    _assert_intact(champion_v1)


def test_mlflow_unreachable_at_monitor_fails_and_retries(champion_v1: Path, monkeypatch, capsys) -> None:
    """monitor with MLflow unreachable exits ERROR (retried, then alerted), not "no champion yet"; champion intact."""
    code, result = _run_with_mlflow(monkeypatch, capsys, unreachable_uri(), "monitor")
    assert_retried_then_alerted(code, result)
    _assert_intact(champion_v1)


def test_mlflow_unreachable_at_freshness_fails_and_retries(champion_v1: Path, monkeypatch, capsys) -> None:
    """freshness with MLflow unreachable exits ERROR (retried, then alerted), not a skipped check; champion intact."""
    code, result = _run_with_mlflow(monkeypatch, capsys, unreachable_uri(), "freshness")
    assert_retried_then_alerted(code, result)
    _assert_intact(champion_v1)


def test_mlflow_unreachable_at_promote_fails_and_keeps_the_champion(champion_v1: Path, monkeypatch, capsys) -> None:
    """A manual promote of v2 with MLflow unreachable exits ERROR (retried, then alerted); v1 stays champion, no lock."""
    code, result = _run_with_mlflow(
        monkeypatch, capsys, unreachable_uri(), "promote", "--model-version", "2", "--approver", "a", "--reason", "r"
    )
    assert_retried_then_alerted(code, result)
    _assert_intact(champion_v1)


def test_mlflow_401_fails_with_a_credentials_reason(champion_v1: Path, monkeypatch, capsys) -> None:
    """MLflow answering 401 fails score as an error whose reason says to check the MLflow credentials."""
    code, result = _run_with_answer(monkeypatch, capsys, UNAUTHENTICATED, "score")
    assert_retried_then_alerted(code, result)
    assert "check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD" in result["reason"], result["reason"]
    _assert_intact(champion_v1)


def test_mlflow_403_fails_with_a_permission_reason(champion_v1: Path, monkeypatch, capsys) -> None:
    """MLflow answering 403 fails promote as an error whose reason names the missing permission; champion intact."""
    code, result = _run_with_answer(
        monkeypatch, capsys, FORBIDDEN, "promote", "--model-version", "2", "--approver", "a", "--reason", "r"
    )
    assert_retried_then_alerted(code, result)
    assert "lack permission" in result["reason"], result["reason"]
    _assert_intact(champion_v1)


def test_mlflow_slow_times_out_as_an_error(champion_v1: Path, monkeypatch, capsys) -> None:
    """MLflow not answering within MLFLOW_HTTP_REQUEST_TIMEOUT fails monitor as an error (a timeout), not a skip."""
    code, result = _run_with_answer(monkeypatch, capsys, SLOW, "monitor")
    assert_retried_then_alerted(code, result)
    assert "timed out" in result["reason"].lower(), result["reason"]
    _assert_intact(champion_v1)
