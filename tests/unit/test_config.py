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
    assert {c.name: c.role for c in usecase.columns}["customer_id"] == "metadata"
    assert [c.name for c in usecase.columns] == list(usecase.data_contract.columns)
    assert usecase.resources_for("train").cpu == "2"
    assert usecase.resources_for("score").memory == "1Gi"  # falls back to default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(unknown_key=1), "unknown_key: Extra inputs are not permitted"),
        (lambda d: d["split"].update(window_days="two weeks"), "split.window_days"),
        (lambda d: d["target"].update(name="purchased"), "target.name: the target column is declared in contract.yaml"),
        (lambda d: d["resources"].update(trian={"cpu": "1"}), "resources: unknown step(s) ['trian']"),
        (lambda d: d["resources"]["train"].update(cpu="two"), "resources.train.cpu"),
        (lambda d: d["schedule"].update(training="every night"), "schedule.training"),
        (lambda d: d["schedule"].update(training="99 * * * *"), "schedule.training: minute '99': '99' is not in 0-59"),
        (lambda d: d["schedule"].update(scoring="0 4 * * 8"), "day of week '8': '8' is not in 0-7"),
        (lambda d: d["schedule"].update(monitoring="@sometimes"), "'@sometimes' is not a cron preset"),
        (lambda d: d.update(slices=["planet"]), "slices: ['planet'] are not columns of"),
        (lambda d: d["roles"].update(features=[]), "roles.features: List should have at least 1 item"),
        (lambda d: d["roles"].update(extra=["price"]), "roles.extra: Extra inputs are not permitted"),
        (lambda d: d["retraining"].update(key_features=["customer_id"]), "['customer_id'] are not feature columns"),
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


def _edit_contract(folder: Path, change) -> None:
    path = folder / "contract.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def _rejected(path: Path) -> str:
    with pytest.raises(UseCaseConfigError) as caught:
        load_usecase(path)
    return str(caught.value)


def test_a_feature_the_contract_lacks_is_rejected_naming_both_files(tmp_path: Path) -> None:
    folder = _copy_yarnit(tmp_path)
    path = _edit(folder, lambda d: d["roles"]["features"].append("colour"))
    assert _rejected(path) == f"{path}: roles.features: 'colour' is not a column of {folder / 'contract.yaml'}"


def test_a_contract_column_without_a_role_is_rejected(tmp_path: Path) -> None:
    """A column added to the contract is a decision (feature or metadata), never a silent extra input."""
    folder = _copy_yarnit(tmp_path)
    _edit_contract(folder, lambda d: d["columns"].update(gift_wrap={"type": "string"}))
    message = _rejected(folder / "usecase.yaml")
    assert "roles: columns ['gift_wrap'] of" in message and "have no role" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["roles"]["features"].append("event_ts"),
            "roles.features: 'event_ts' already has role 'timestamp'",
        ),
        (lambda d: d["roles"]["features"].append("purchased"), "roles.features: 'purchased' already has role 'target'"),
        (lambda d: d["roles"]["metadata"].append("price"), "roles.metadata: 'price' already has role 'feature'"),
    ],
)
def test_a_column_has_one_role(tmp_path: Path, change, message: str) -> None:
    path = _edit(_copy_yarnit(tmp_path), change)
    assert message in _rejected(path)


def test_a_type_that_is_no_feature_type_is_rejected(tmp_path: Path) -> None:
    """Types live in the contract: a feature turned into a timestamp there cannot reach training."""
    folder = _copy_yarnit(tmp_path)
    _edit_contract(folder, lambda d: d["columns"]["price"].update(type="timestamp", min=None, max=None, mean=None))
    message = _rejected(folder / "usecase.yaml")
    assert f"roles.features: 'price' has type timestamp in {folder / 'contract.yaml'}" in message


def test_column_types_come_from_the_contract_only(tmp_path: Path) -> None:
    """One declaration: changing a type in contract.yaml changes what training sees, with no second file to edit."""
    folder = _copy_yarnit(tmp_path)
    _edit_contract(folder, lambda d: d["columns"]["pages_viewed"].update(type="string", min=None, max=None))
    usecase = load_usecase(folder / "usecase.yaml")
    assert "pages_viewed" in usecase.categorical_features and "pages_viewed" not in usecase.numeric_features
    assert [c.type for c in usecase.columns if c.name == "pages_viewed"] == ["string"]


def test_types_in_usecase_yaml_are_rejected(tmp_path: Path) -> None:
    """The old two-file layout (a typed `columns:` list in usecase.yaml) says where the types belong now."""
    path = _edit(_copy_yarnit(tmp_path), lambda d: d.update(columns=[{"name": "price", "type": "int"}]))
    assert f"{path}: columns: column names and types live in the contract (contract.yaml)" in _rejected(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(key=[]), "has key []; a use case needs exactly one key column"),
        (lambda d: d.pop("timestamp"), "names no timestamp column"),
        # label_positive_rate needs a target: drop both, or the contract itself is invalid.
        (lambda d: [d.pop("target"), d["table"].pop("label_positive_rate")], "names no target column"),
    ],
)
def test_the_contract_must_name_key_timestamp_and_target(tmp_path: Path, change, message: str) -> None:
    folder = _copy_yarnit(tmp_path)
    _edit_contract(folder, change)
    assert message in _rejected(folder / "usecase.yaml")


def test_a_broken_contract_fails_the_use_case_naming_the_contract(tmp_path: Path) -> None:
    folder = _copy_yarnit(tmp_path)
    _edit_contract(folder, lambda d: d["columns"]["price"].update(mni=0))
    assert f"{folder / 'contract.yaml'}: columns.price.mni: Extra inputs are not permitted" in _rejected(
        folder / "usecase.yaml"
    )


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
