"""One broken use case does not take the others down (issue 12, M4): its usecase.yaml is reported as an Airflow
import error naming the file, and every other use case keeps its four DAGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle.specs.names import DagFamily
from support.inputs import BREAKAGES, one_good_one_broken, parse_dags


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_usecase_is_an_import_error_naming_its_file_and_the_others_keep_their_dags(
    tmp_path: Path, breakage: str
) -> None:
    good, broken = one_good_one_broken(tmp_path / "usecases", breakage)
    parsed = parse_dags(tmp_path / "usecases", tmp_path / "home")
    assert parsed["dag_ids"] == sorted(family.dag_id(good) for family in DagFamily)
    reported = [message for message in parsed["errors"].values() if str(broken) in message]
    assert len(reported) == 1, f"expected one import error naming {broken}, got {parsed['errors']}"
    assert BREAKAGES[breakage][1] in reported[0]
    assert not [m for m in parsed["errors"].values() if "yarnit" in m.replace(str(tmp_path), "")]


def test_with_every_usecase_valid_there_is_no_import_error(tmp_path: Path) -> None:
    from support.inputs import usecase_copy

    usecase_copy(tmp_path / "usecases", "yarnit")
    usecase_copy(tmp_path / "usecases", "churn")
    parsed = parse_dags(tmp_path / "usecases", tmp_path / "home")
    assert parsed["errors"] == {}
    assert len(parsed["dag_ids"]) == 8
