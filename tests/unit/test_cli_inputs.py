"""Every CLI argument is validated at the edge (issue 12, L1): a bad value is a usage error, exit 64 (EX_USAGE),
never retried, with a message naming the argument; and no input reaches a file outside the use-case folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlcycle.cli import main as cli_main
from mlcycle.config import UseCaseConfigError, get_usecase, load_usecase
from mlcycle.settings import REPO_ROOT

USECASES = REPO_ROOT / "include" / "usecases"
#: EX_USAGE of sysexits.h, `ExitCode.USAGE`; spelled out so the test fails on its own terms where the code lacks it.
EX_USAGE = 64
GOOD = ("--usecase", "yarnit", "--partition", "2026-09-14")


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[str, dict[str, object]]:
    """Run the CLI on argv; it must exit 64. Returns (stderr, the JSON result it printed)."""
    with pytest.raises(SystemExit) as caught:
        code = cli_main(argv)
        pytest.fail(f"mlcycle {' '.join(argv)} returned {code} instead of exiting {EX_USAGE}")
    assert caught.value.code == EX_USAGE
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("{")]
    assert lines, "a usage error prints a JSON result too (the launchers' failure message)"
    return out.err, json.loads(lines[-1])


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        (["ingest", "--usecase", "yarnit", "--partition", "2026-13-01"], "--partition"),
        (["ingest", "--usecase", "yarnit", "--partition", "14.09.2026"], "--partition"),
        (["ingest", "--usecase", "yarnit", "--partition", "20260914"], "--partition"),  # fromisoformat takes it
        (["ingest", "--usecase", "yarnit", "--partition", ""], "--partition"),  # used to mean "today"
        (["ingest", "--usecase", "yarnit", "--partition", "0001-01-01"], "--partition"),  # OverflowError
        (["ingest", "--usecase", "yarnit", "--partition", "9999-12-31"], "--partition"),
        (["ingest", *GOOD, "--lookback", "-3"], "--lookback"),  # used to do nothing
        (["ingest", *GOOD, "--lookback", "0"], "--lookback"),
        (["ingest", *GOOD, "--lookback", "100000000"], "--lookback"),  # OverflowError
        (["validate", *GOOD, "--lookback", "seven"], "--lookback"),
        (["train", *GOOD, "--cache", "maybe"], "--cache"),
        (["ingest", *GOOD, "--storage-root", ""], "--storage-root"),
        (["ingest", *GOOD, "--storage-root", "gs://bucket/x"], "--storage-root"),
        (["ingest", *GOOD, "--storage-root", "s3://"], "--storage-root"),
        (["ingest", "--usecase", "../../x/yarnit", "--partition", "2026-09-14"], "--usecase"),
        (["ingest", "--usecase", "/etc/yarnit", "--partition", "2026-09-14"], "--usecase"),
        (["ingest", "--usecase", "Yarnit", "--partition", "2026-09-14"], "--usecase"),
        (["ingest", "--usecase", "", "--partition", "2026-09-14"], "--usecase"),
        (["generate", "--usecase", "yarnit", "--start", "2026-02-30", "--end", "2026-03-01"], "--start"),
        (["generate", "--usecase", "yarnit", "--start", "2262-05-01", "--end", "2262-05-01"], "--start"),
        (["generate", "--usecase", "yarnit", "--start", "2026-03-01", "--end", "2026-03-02", "--rows", "-5"], "--rows"),
        (["rerun", *GOOD, "--dag", "promotion", "--reason", "fixed"], "--dag"),
        (["rerun", *GOOD, "--reason", "  "], "--reason"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_a_bad_argument_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str], mlcycle_env: dict[str, str], argv: list[str], argument: str
) -> None:
    err, result = _usage_error(capsys, argv)
    assert argument in err
    assert result["status"] == "usage_error"
    assert argument in str(result["reason"])


def test_every_usage_error_is_exit_64_not_argparse_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing and unknown arguments too: argparse's own exit status 2 would be retried by Airflow."""
    for argv in (["ingest", "--usecase", "yarnit"], ["ingest", *GOOD, "--no-such-flag"], ["no-such-step"]):
        _usage_error(capsys, argv)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A valid copy of yarnit outside the use-case folder: loading it would succeed, so refusing it is the check."""
    folder = tmp_path / "elsewhere" / "yarnit"
    shutil.copytree(USECASES / "yarnit", folder)
    return folder


@pytest.mark.parametrize("name", ["../elsewhere/yarnit", "yarnit/../../elsewhere/yarnit", "ABSOLUTE"])
def test_get_usecase_refuses_a_name_that_leaves_the_folder(tmp_path: Path, outside: Path, name: str) -> None:
    root = tmp_path / "usecases"
    shutil.copytree(USECASES / "yarnit", root / "yarnit")
    name = str(outside) if name == "ABSOLUTE" else name
    with pytest.raises(UseCaseConfigError, match=r"use case name .* must match"):
        get_usecase(name, folder=root)


def _with_contract(tmp_path: Path, contract: str) -> Path:
    folder = tmp_path / "usecases" / "yarnit"
    shutil.copytree(USECASES / "yarnit", folder)
    path = folder / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    data["contract"] = contract
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_contract_outside_the_usecase_folder_is_refused(tmp_path: Path, outside: Path, where: str) -> None:
    target = outside / "contract.yaml"
    contract = str(target) if where == "absolute" else "../../elsewhere/yarnit/contract.yaml"
    path = _with_contract(tmp_path, contract)
    with pytest.raises(UseCaseConfigError, match=r"contract: .* is outside the use case's folder"):
        load_usecase(path)


def test_a_contract_in_a_subfolder_of_the_usecase_is_fine(tmp_path: Path) -> None:
    path = _with_contract(tmp_path, "contracts/v2.yaml")
    (path.parent / "contracts").mkdir()
    shutil.copy(path.parent / "contract.yaml", path.parent / "contracts" / "v2.yaml")
    assert load_usecase(path).contract_path == path.parent / "contracts" / "v2.yaml"


def test_a_config_error_from_the_cli_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path
) -> None:
    """A use case whose contract points outside its folder fails with 64 (a person must fix the file), not 1."""
    path = _with_contract(tmp_path, "../../elsewhere/yarnit/contract.yaml")
    monkeypatch.setenv("MLCYCLE_USECASES_DIR", str(path.parent.parent))
    monkeypatch.setenv("MLCYCLE_STORAGE_ROOT", str(tmp_path / "data"))
    code = cli_main(["ingest", *GOOD])
    assert code == EX_USAGE
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "usage_error" and "outside the use case's folder" in result["reason"]
