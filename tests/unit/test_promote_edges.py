"""Manual promotion of a version that cannot be promoted is REJECTED with a clear reason (issue 12, L2).

A version that does not exist, or a value that is no version number at all (`--model-version=-1`, the form that
lets a value start with `-`), is a wrong input: retrying cannot help, so it must not exit ERROR (retried).
"""

from __future__ import annotations

import datetime as dt

import pytest

from mlcycle.exitcodes import ExitCode
from support.cli import step

DAY = dt.date(2024, 3, 1)


@pytest.fixture
def one_version(mlcycle_env: dict[str, str]) -> str:
    """A registry holding yarnit_model version 1 (no artifact: promotion never loads the model)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model("yarnit_model")
    return str(
        client.create_model_version("yarnit_model", source="/nowhere", tags={"mlcycle.partition": "2024-02-01"}).version
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--model-version", "7"], "version '7' of yarnit_model does not exist"),
        (["--model-version=-1"], "'-1' is not a model version number"),
        (["--model-version=-x"], "'-x' is not a model version number"),
    ],
)
def test_promoting_a_version_that_does_not_exist_is_rejected(one_version, capsys, argv, named: str) -> None:
    code, result = step(capsys, "promote", DAY, *argv, "--approver", "a", "--reason", "test")
    assert (code, result["status"]) == (ExitCode.REJECTED, "rejected"), result
    assert named in result["reason"], result["reason"]


def test_promoting_an_existing_version_still_works(one_version, capsys) -> None:
    code, result = step(capsys, "promote", DAY, f"--model-version={one_version}", "--approver=-a", "--reason=-r")
    assert (code, result["status"]) == (ExitCode.OK, "success"), result
    assert result["metrics"]["champion_version"] == one_version


def test_a_promotion_param_starting_with_a_dash_reaches_the_step_as_its_value() -> None:
    """The promotion DAG's templated options render from the UI's form: a reason or approver that starts with `-`
    (or a mistyped version `-1`) must arrive as that option's value, not as an unknown flag (L2)."""
    import jinja2

    from mlcycle.cli import build_parser
    from mlcycle.config import get_usecase
    from mlcycle.orchestration.dags import promotion_dag

    task = promotion_dag(get_usecase("yarnit")).get_task("promote")
    params = {"action": "promote", "version": "-1", "approver": "-bob", "reason": "- rolled back by hand"}
    context = {"params": params, "dag_run": None, "mlcycle_partition": lambda dag_run, params: "2024-03-01"}
    rendered = [jinja2.Template(str(arg)).render(**context) for arg in task.arguments]
    args = build_parser().parse_args(rendered)
    assert (args.model_version, args.approver, args.reason) == ("-1", "-bob", "- rolled back by hand")
