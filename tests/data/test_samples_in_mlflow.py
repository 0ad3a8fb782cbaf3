"""No data samples in MLflow by default (issue 12, L6): what the validate step logs to MLflow (readable by every
MLflow user) quotes no rows and no values of the data; the quarantine folder in storage, with its own access
rights, keeps them; a use case opts in with `tracking.log_data_samples: true`."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.config import DEFAULT_USECASES_DIR
from mlcycle.exitcodes import ExitCode
from support.cli import step
from support.cli import usecase_root as root

DAY = dt.date(2026, 9, 10)
#: Planted in the offending rows: a value of the failing column, and a person's identifier in another column.
BAD_PRICE, PERSON = -777.25, "pii-marker-4242"


def _land_bad_day(env: dict[str, str]) -> None:
    from mlcycle.synthetic.yarnit import generate_day

    frame = generate_day(DAY, base_rows=600)
    frame.loc[:2, "price"] = BAD_PRICE
    frame.loc[:2, "customer_id"] = PERSON
    folder = root(env) / "landing" / f"ds={DAY}"
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    (folder / "data.parquet").write_bytes(buffer.getvalue())
    (folder / "_SUCCESS").write_text("{}")


def _logged(run_id: str, tmp_path: Path) -> dict[str, str]:
    """Every artifact logged under validation/<DAY>/ of the run: file name -> text."""
    from mlflow.tracking import MlflowClient

    folder = Path(MlflowClient().download_artifacts(run_id, f"validation/{DAY}", str(tmp_path / "logged")))
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}
    assert sorted(files) == ["reason.json", "report.html", "validation.json"], sorted(files)
    return files


def _rejected_day(capsys: Any, env: dict[str, str]) -> dict[str, Any]:
    _land_bad_day(env)
    assert step(capsys, "ingest", DAY)[0] == ExitCode.OK
    code, result = step(capsys, "validate", DAY)
    assert code == ExitCode.REJECTED, result
    assert "mlflow_run_id" in result, result
    return result


def _quarantined_text(env: dict[str, str]) -> str:
    folder = root(env) / "quarantine" / f"ds={DAY}"
    return (folder / "reason.json").read_text() + (folder / "report.html").read_text()


def test_no_rows_or_values_of_rejected_data_are_logged_to_mlflow_by_default(
    capsys: pytest.CaptureFixture[str], mlcycle_env: dict[str, str], tmp_path: Path
) -> None:
    result = _rejected_day(capsys, mlcycle_env)
    files = _logged(result["mlflow_run_id"], tmp_path)
    logged = "\n".join(files.values())
    assert PERSON not in logged, "a sampled row (with a person's identifier) was logged to MLflow"
    assert str(BAD_PRICE) not in logged, "offending values were logged to MLflow"
    assert "Sample of offending rows" not in logged
    assert "price" in logged and "range" in logged, "what failed is still logged (rule and column, no data)"
    reason = json.loads(files["reason.json"])
    assert reason["failures"] and all("rows" not in f and "values" not in f for f in reason["failures"])
    quarantined = _quarantined_text(mlcycle_env)  # storage keeps the samples, under its own access rights
    assert PERSON in quarantined and str(BAD_PRICE) in quarantined


def test_a_usecase_can_opt_in_to_log_samples_to_mlflow(
    capsys: pytest.CaptureFixture[str], mlcycle_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "usecases" / "yarnit"
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", folder)
    config = yaml.safe_load((folder / "usecase.yaml").read_text())
    config["tracking"] = {"log_data_samples": True}
    (folder / "usecase.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("MLCYCLE_USECASES_DIR", str(folder.parent))
    result = _rejected_day(capsys, mlcycle_env)
    logged = "\n".join(_logged(result["mlflow_run_id"], tmp_path).values())
    assert PERSON in logged and "Sample of offending rows" in logged


def test_a_value_that_looks_like_markup_cannot_escape_the_cut() -> None:
    """Data is escaped before it is marked, so a value cannot close the marked element and survive the cut."""
    from mlcycle.contracts.report import render_html, without_data
    from mlcycle.contracts.results import ContractResult, FailedExpectation

    sneaky = "</span></section>pii-marker-4242"
    failure = FailedExpectation(
        expectation="expect_column_values_to_match_regex",
        column="customer_id",
        severity="hard",
        expected="matching ^C[0-9]+$",
        observed=f"1 of 9 rows (11.1 %) not matching; first values: ['{sneaky}']",
        rule="regex",
        values=[sneaky],
        rows=[{"customer_id": sneaky}],
    )
    check = {**failure.to_dict(), "success": False}
    result = ContractResult(success=False, evaluated=1, hard_failures=[failure], checks=[check])
    page = render_html(result, title="t")
    assert "pii-marker-4242" in page
    redacted = without_data(page)
    assert "pii-marker-4242" not in redacted
    assert "customer_id" in redacted and "not matching" in redacted
