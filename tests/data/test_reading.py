"""Reading raw partitions (Parquet and CSV) for the contract, and the HTML report of a validation."""

from __future__ import annotations

import datetime as dt
import html
import pathlib
import re

import pandas as pd
import pytest

from mlcycle.contracts.gx_runner import validate_frame
from mlcycle.contracts.reading import UnreadableData, read_csv, read_partition, unreadable_result
from mlcycle.contracts.report import render_html
from mlcycle.schema import DataContract, load_contract
from mlcycle.synthetic.yarnit import generate_day

REPO = pathlib.Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 9, 10)


@pytest.fixture(scope="module")
def contract() -> DataContract:
    return load_contract(REPO / "include" / "usecases" / "yarnit" / "contract.yaml")


@pytest.fixture(scope="module")
def day() -> pd.DataFrame:
    return generate_day(DAY, base_rows=800)


def test_csv_is_typed_by_the_contract(tmp_path: pathlib.Path, contract: DataContract, day: pd.DataFrame) -> None:
    path = tmp_path / "data.csv"
    day.to_csv(path, index=False)
    frame = read_partition(path, "csv", contract)
    assert frame["event_ts"].dtype == "datetime64[ns, UTC]"
    assert frame["pages_viewed"].dtype == "int64" and frame["price"].dtype == "float64"
    assert frame["days_since_last_purchase"].isna().sum() == day["days_since_last_purchase"].isna().sum()
    pd.testing.assert_frame_equal(frame, day, check_dtype=False)
    assert validate_frame(frame, contract, partition=DAY).success


def test_csv_values_that_do_not_parse_stay_text(
    tmp_path: pathlib.Path, contract: DataContract, day: pd.DataFrame
) -> None:
    path = tmp_path / "data.csv"
    broken = day.astype({"price": object, "event_ts": object})
    broken.loc[broken.index[1], "price"] = "12,50"  # a decimal comma
    broken.loc[broken.index[2], "event_ts"] = "yesterday"
    broken.to_csv(path, index=False)
    frame = read_csv(path, contract)
    assert frame["price"].dtype == object and frame["event_ts"].dtype == object
    result = validate_frame(frame, contract, partition=DAY)
    types = {f.column: f.observed for f in result.hard_failures if f.rule == "type"}
    assert set(types) == {"price", "event_ts"}
    assert "12,50" in types["price"] and "yesterday" in types["event_ts"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("latin-1", "data.csv is not UTF-8 text (wrong encoding, e.g. latin-1 or UTF-16)"),
        ("utf-16", "data.csv is not UTF-8 text"),
        ("empty", "data.csv is empty: no header row"),
        ("ragged", "data.csv is not a comma-delimited CSV: Error tokenizing data"),
    ],
)
def test_unreadable_csv(tmp_path: pathlib.Path, contract: DataContract, payload: str, message: str) -> None:
    text = "session_id,fibre\n20260910-000001,mérino\n"
    content = {
        "latin-1": text.encode("latin-1"),
        "utf-16": text.encode("utf-16"),
        "empty": b"",
        "ragged": b"a,b\n1,2\n3,4,5\n",
    }[payload]
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableData) as info:
        read_partition(path, "csv", contract)
    assert str(info.value).startswith(message)


def test_wrong_delimiter_reads_as_one_column(tmp_path: pathlib.Path, contract: DataContract, day: pd.DataFrame) -> None:
    path = tmp_path / "data.csv"
    day.head(20).to_csv(path, index=False, sep=";")
    frame = read_csv(path, contract)
    assert list(frame.columns) == [";".join(day.columns)]


def test_parquet_strings_are_read_as_arrow_strings(
    tmp_path: pathlib.Path, contract: DataContract, day: pd.DataFrame
) -> None:
    path = tmp_path / "data.parquet"
    day.to_parquet(path, index=False)
    frame = read_partition(path, "parquet", contract)
    assert frame["country"].dtype == pd.StringDtype("pyarrow")
    assert frame["price"].dtype == "float64" and isinstance(frame["event_ts"].dtype, pd.DatetimeTZDtype)
    pd.testing.assert_frame_equal(frame, day, check_dtype=False)
    assert validate_frame(frame, contract, partition=DAY).success


def test_unreadable_parquet(tmp_path: pathlib.Path, contract: DataContract, day: pd.DataFrame) -> None:
    path = tmp_path / "data.parquet"
    day.to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UnreadableData, match=r"^data.parquet is not a readable Parquet file: "):
        read_partition(path, "parquet", contract)
    result = unreadable_result("data.parquet is not a readable Parquet file: boom", "parquet")
    assert not result.success and result.evaluated == 1
    [failure] = result.hard_failures
    assert (failure.rule, failure.column, failure.expected) == ("readable", None, "a complete, readable Parquet file")
    assert failure.message() == (
        "[hard] table: readable (read_partition) expected a complete, readable Parquet file; "
        "observed data.parquet is not a readable Parquet file: boom"
    )


def test_report_lists_every_expectation(contract: DataContract, day: pd.DataFrame) -> None:
    bad = day.copy()
    bad.loc[bad.index[:3], "country"] = "<UK>"
    bad["session_duration_s"] = bad["session_duration_s"] / 60
    result = validate_frame(bad, contract, partition=DAY)
    page = render_html(result, title="yarnit 2026-09-10 (training profile)", facts={"rows": len(bad)})
    assert page.startswith("<!DOCTYPE html>") and "REJECTED" in page
    assert page.count("<tr class=") == result.evaluated
    assert page.count('<tr class="failed">') == len(result.hard_failures) == 1
    assert page.count('<tr class="warning">') == len(result.soft_failures) == 1
    assert "&lt;UK&gt;" in page and "<UK>" not in page, "values are escaped"
    # The offending values follow the summary inside a data mark (which logging to MLflow cuts out, L6).
    unmarked = re.sub(r'<span class="data">(.*?)</span>', r"\1", page)
    assert html.escape(result.hard_failures[0].observed) in unmarked
    assert '<span class="data">; first values: [&#x27;&lt;UK&gt;&#x27;' in page
    assert "Sample of offending rows" in page
    clean = render_html(validate_frame(day, contract, partition=DAY), title="ok")
    assert "PASSED" in clean and 'class="failed"' not in clean and "Sample of offending rows" not in clean
