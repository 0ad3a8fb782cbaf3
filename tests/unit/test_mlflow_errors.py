"""An MLflow that fails is an error, never "no champion" (issue 12, H3).

Each step that resolves @champion (score, monitor, freshness, promote) runs against a stand-in MLflow answering
401, 403, 500, nothing (unreachable) or nothing in time (slow): every one must exit ERROR (Airflow retries, then
alerts), not NOTHING_TO_DO (skipped, silently). Only MLflow saying the registered model does not exist is absence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from mlcycle.exitcodes import ExitCode
from support.cli import step
from support.fake_mlflow import (
    ALIAS_PATH,
    FORBIDDEN,
    INTERNAL,
    NOT_FOUND,
    REGISTERED_MODELS,
    SLOW,
    UNAUTHENTICATED,
    FakeMlflow,
    Rule,
    fake_mlflow,
    mlflow_client_env,
    on,
    only_reads_fail,
    unreachable_uri,
)

DAY = dt.date(2024, 3, 1)
CHAMPION_STEPS = ("score", "monitor", "freshness")
FAILURES = {"401": UNAUTHENTICATED, "403": FORBIDDEN, "500": INTERNAL, "slow": SLOW}


@pytest.fixture
def broken_mlflow(
    mlcycle_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., contextlib.AbstractContextManager[FakeMlflow | None]]:
    """`with broken_mlflow(failure, *rules)`: MLflow's client points at a stand-in failing so ("unreachable": nothing
    listens, so there is no FakeMlflow to ask what was requested)."""

    @contextlib.contextmanager
    def serve(failure: str, *rules: Rule) -> Iterator[FakeMlflow | None]:
        if failure == "unreachable":
            for key, value in mlflow_client_env(unreachable_uri()).items():
                monkeypatch.setenv(key, value)
            yield None
            return
        with fake_mlflow(FAILURES[failure], *rules) as fake:
            for key, value in mlflow_client_env(fake.uri).items():
                monkeypatch.setenv(key, value)
            yield fake

    return serve


@pytest.mark.parametrize("failure", [*FAILURES, "unreachable"])
@pytest.mark.parametrize("name", CHAMPION_STEPS)
def test_mlflow_failure_resolving_the_champion_is_an_error(broken_mlflow, capsys, name: str, failure: str) -> None:
    with broken_mlflow(failure):
        code, result = step(capsys, name, DAY)
    assert (code, result["status"]) == (ExitCode.ERROR, "error"), result
    assert "MLflow at http://127.0.0.1:" in result["reason"], result["reason"]


@pytest.mark.parametrize("failure", [*FAILURES, "unreachable"])
def test_mlflow_failure_in_promotes_compare_and_set_never_moves_the_champion(
    broken_mlflow, capsys, failure: str
) -> None:
    """Reading @champion fails; every other call would succeed: the promotion must stop, not see "no champion"."""
    with broken_mlflow(failure, only_reads_fail(ALIAS_PATH)) as fake:
        code, result = step(capsys, "promote", DAY, "--model-version", "2", "--approver", "a", "--reason", "test")
    assert (code, result["status"]) == (ExitCode.ERROR, "error"), result
    if fake is not None:
        assert fake.alias_moves() == [], "the champion was moved while MLflow could not say who holds it"


@pytest.mark.parametrize(
    ("label", "reason"),
    [("401", "check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"), ("403", "lack permission")],
)
def test_an_auth_failure_names_what_to_check(broken_mlflow, capsys, label: str, reason: str) -> None:
    with broken_mlflow(label):
        _, result = step(capsys, "freshness", DAY)
    assert reason in result["reason"], result["reason"]


@pytest.mark.parametrize("name", CHAMPION_STEPS)
def test_no_registered_model_is_still_nothing_to_do(mlcycle_env, monkeypatch, capsys, name: str) -> None:
    """The one real absence: MLflow answers RESOURCE_DOES_NOT_EXIST for the registered model."""
    with fake_mlflow(INTERNAL, on("GET", REGISTERED_MODELS, NOT_FOUND)) as fake:
        for key, value in mlflow_client_env(fake.uri).items():
            monkeypatch.setenv(key, value)
        code, result = step(capsys, name, DAY)
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped"), result


def test_a_model_without_the_alias_has_no_champion(mlcycle_env, capsys) -> None:
    """A registered model whose aliases lack @champion: nothing to score (read from MLflow's answer, not an error)."""
    from mlflow import MlflowClient

    MlflowClient().create_registered_model("yarnit_model")
    code, result = step(capsys, "score", DAY)
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped"), result
