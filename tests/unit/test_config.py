"""Use cases are configuration: a typed model validates usecase.yaml and names the bad field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlcycle.config import UseCaseConfigError, discover_usecases, get_usecase, load_usecase
from mlcycle.orchestration.dags import build_dags
from mlcycle.settings import REPO_ROOT

USECASES = REPO_ROOT / "include" / "usecases"


def _copy_yarnit(tmp_path: Path, name: str = "yarnit") -> Path:
    folder = tmp_path / name
    shutil.copytree(USECASES / "yarnit", folder)
    return folder


def _edit(folder: Path, change) -> Path:
    path = folder / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


def test_yarnit_loads() -> None:
    usecase = get_usecase("yarnit")
    assert usecase.key == "session_id" and usecase.timestamp == "event_ts"
    assert usecase.target.name == "purchased"
    assert "price" in usecase.numeric_features and "country" in usecase.categorical_features
    assert "customer_id" not in [c.name for c in usecase.features]
    assert usecase.resources_for("train").cpu == "2"
    assert usecase.resources_for("score").memory == "1Gi"  # falls back to default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(unknown_key=1), "unknown_key: Extra inputs are not permitted"),
        (lambda d: d["split"].update(window_days="two weeks"), "split.window_days"),
        (lambda d: d["target"].update(name="nope"), "target.name: 'nope' must be a column with role 'target'"),
        (lambda d: d["resources"].update(trian={"cpu": "1"}), "resources: Value error, unknown step(s) ['trian']"),
        (lambda d: d["resources"]["train"].update(cpu="two"), "resources.train.cpu"),
        (lambda d: d["schedule"].update(training="every night"), "schedule.training"),
        (lambda d: d.update(slices=["planet"]), "slices: ['planet'] are not columns"),
        (lambda d: d["columns"][3].update(type="text"), "columns.3.type"),
        (lambda d: d["model"].update(family="xgboost"), "model.family"),
        (lambda d: d["split"].update(valid_days=7, test_days=7), "must leave at least one day for training"),
        (lambda d: d.update(name="other"), "must equal its folder name"),
    ],
)
def test_bad_file_is_rejected_with_the_field_named(tmp_path: Path, change, message: str) -> None:
    path = _edit(_copy_yarnit(tmp_path), change)
    with pytest.raises(UseCaseConfigError) as caught:
        load_usecase(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_contract_is_rejected(tmp_path: Path) -> None:
    folder = _copy_yarnit(tmp_path)
    (folder / "contract.yaml").unlink()
    with pytest.raises(UseCaseConfigError, match=r"contract: file .* does not exist"):
        load_usecase(folder / "usecase.yaml")


def test_unknown_usecase_lists_the_known_ones() -> None:
    with pytest.raises(UseCaseConfigError, match=r"unknown use case 'nope'.*known: \['yarnit'"):
        get_usecase("nope")


def test_a_new_folder_is_a_new_usecase_with_four_dags(tmp_path: Path) -> None:
    """Adding a use case is adding a folder: no code change."""
    _copy_yarnit(tmp_path)
    second = _copy_yarnit(tmp_path, "churn")

    def rename(data: dict) -> None:
        data["name"] = "churn"
        data["description"] = "a second use case"

    _edit(second, rename)
    usecases = discover_usecases(tmp_path)
    assert [u.name for u in usecases] == ["churn", "yarnit"]
    assert sorted(build_dags(usecases[0])) == ["churn_monitoring", "churn_promotion", "churn_scoring", "churn_training"]
