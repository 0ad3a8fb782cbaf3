"""Fault drills: bad inputs at the edge (issue 12, L1 and M4).

Each drill breaks one input the way a person or a bad deploy would, and checks that the lifecycle refuses it
where a person must act (an import error, or exit 64: the task fails at once, without retry, and its failure
alert goes out), that nothing outside the use-case folder is read, and that no data or model state is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcycle.specs.names import DagFamily
from support.inputs import one_good_one_broken, parse_dags, usecase_copy

EX_USAGE = 64

# Runs `mlcycle <argv>` in-process with an audit hook recording every file opened under the watched folder.
_AUDITED_CLI = """
import json, os, sys
watched = os.path.realpath(sys.argv[1])
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(watched):
            opened.append(path)
sys.addaudithook(hook)
from mlcycle.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "opened": opened}))
"""


def _audited_cli(watched: Path, env: dict[str, str], *argv: str) -> tuple[int, list[str], dict[str, Any]]:
    """(exit code, files opened under `watched`, the step's JSON result) of `mlcycle *argv`."""
    out = subprocess.run(
        [sys.executable, "-c", _AUDITED_CLI, str(watched), *argv], env=env, capture_output=True, text=True, check=False
    )
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr[-2000:]
    audit, results = lines[-1], lines[:-1]
    return int(audit["code"]), audit["opened"], (results[-1] if results else {})


def _nothing_written(storage: Path) -> bool:
    return not storage.exists() or not any(p.is_file() for p in storage.rglob("*"))


def test_broken_usecase_yaml_keeps_the_other_usecases_dags_and_reports_the_file(tmp_path: Path) -> None:
    """A typo in one usecase.yaml, parsed into Airflow's DB as the dag processor does: the other use case's four
    DAGs stay active (not stale), and the broken file is an import error (a person must act) naming the file."""
    good, broken = one_good_one_broken(tmp_path / "usecases")
    parsed = parse_dags(tmp_path / "usecases", tmp_path / "home", into_db=True)
    expected = {family.dag_id(good) for family in DagFamily}
    assert {dag_id for dag_id, row in parsed["db_dags"].items() if not row["stale"]} == expected
    assert not any(row["import_errors"] for row in parsed["db_dags"].values())
    errors = [trace for trace in parsed["db_errors"].values() if str(broken) in trace]
    assert len(errors) == 1, parsed["db_errors"]
    assert not any(name.startswith("churn_") for name in parsed["db_dags"])


@pytest.mark.parametrize("name", ["../elsewhere/yarnit", "ABSOLUTE"])
def test_path_traversal_usecase_name_is_refused_with_exit_64_and_nothing_outside_is_read(
    tmp_path: Path, mlcycle_env: dict[str, str], name: str
) -> None:
    """A use-case name that leads out of the use-case folder exits 64 (fail, no retry, alert) before any file of
    the outside copy is opened, and writes no data."""
    usecase_copy(tmp_path / "usecases", "yarnit")
    outside = usecase_copy(tmp_path / "elsewhere", "yarnit").parent
    env = {**mlcycle_env, "MLCYCLE_USECASES_DIR": str(tmp_path / "usecases")}
    given = str(outside) if name == "ABSOLUTE" else name
    code, opened, result = _audited_cli(outside, env, "ingest", "--usecase", given, "--partition", "2026-09-14")
    assert code == EX_USAGE, result
    assert opened == []
    assert result["status"] == "usage_error" and "--usecase" in result["reason"]
    assert _nothing_written(Path(env["MLCYCLE_STORAGE_ROOT"]))


def test_contract_path_leaving_the_usecase_folder_is_refused_with_exit_64_and_nothing_outside_is_read(
    tmp_path: Path, mlcycle_env: dict[str, str]
) -> None:
    """usecase.yaml's `contract:` pointing outside its folder exits 64 (fail, no retry, alert) naming the key,
    without opening the outside contract, and writes no data."""
    outside = usecase_copy(tmp_path / "elsewhere", "yarnit").parent
    usecase_copy(tmp_path / "usecases", "yarnit", lambda data: data.update(contract=str(outside / "contract.yaml")))
    env = {**mlcycle_env, "MLCYCLE_USECASES_DIR": str(tmp_path / "usecases")}
    code, opened, result = _audited_cli(outside, env, "ingest", "--usecase", "yarnit", "--partition", "2026-09-14")
    assert code == EX_USAGE, result
    assert opened == []
    assert result["status"] == "usage_error" and "contract:" in result["reason"]
    assert _nothing_written(Path(env["MLCYCLE_STORAGE_ROOT"]))


def test_malformed_partition_fails_the_task_without_retry_naming_the_argument(mlcycle_env: dict[str, str]) -> None:
    """A malformed --partition reaching the local launcher fails the task at once (AirflowFailException: no retry,
    the failure alert fires) with a message naming --partition, and writes no data."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlcycle.orchestration.operators import LocalStepOperator

    task = LocalStepOperator(
        task_id="ingest", cmds=["mlcycle"], arguments=["ingest", "--usecase", "yarnit", "--partition", "2026-02-30"]
    )
    with pytest.raises(AirflowFailException, match=r"not retried.*argument --partition"):
        task.execute({})
    assert _nothing_written(Path(os.environ["MLCYCLE_STORAGE_ROOT"]))
