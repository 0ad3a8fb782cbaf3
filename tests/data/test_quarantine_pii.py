"""Quarantine keeps a refused partition without its forbidden (PII) columns, and says which it dropped (issue 18, 8c).

A YarnIt day arrives with a personal column (any letter case) and two bad prices, as Parquet and as CSV: the
contract refuses it; quarantine/ holds the file without that column (every other value as it arrived), and
reason.json names the dropped column; the sample rows and report.html quote no value of it; raw/ keeps the
delivery as it arrived.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable

import pandas as pd
import pytest

from mlcycle.exitcodes import ExitCode
from mlcycle.synthetic.yarnit import generate_day
from support.cli import step
from support.cli import usecase_root as root

DAY = dt.date(2026, 9, 10)


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def _read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False)


FORMATS: dict[str, tuple[str, Callable[[pd.DataFrame], bytes], Callable[[bytes], pd.DataFrame]]] = {
    "parquet": ("data.parquet", _parquet, lambda data: pd.read_parquet(io.BytesIO(data))),
    "csv": ("data.csv", _csv, _read_csv),
}


@pytest.mark.parametrize(("fmt", "personal"), [("parquet", "Email"), ("csv", "phone_number")])
def test_quarantine_drops_the_forbidden_columns_and_says_so(
    fmt: str, personal: str, mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, write, read = FORMATS[fmt]
    day = generate_day(DAY, base_rows=600)
    values = [f"person{i}@example.org" if personal == "Email" else f"+44 7700 9{i:05d}" for i in range(len(day))]
    day = day.assign(**{personal: values})
    day.loc[day.index[[4, 9]], "price"] = -3.0  # a row-level failure: its sample rows quote every column
    payload = write(day)
    landing = root(mlcycle_env) / "landing" / f"ds={DAY}"
    landing.mkdir(parents=True)
    (landing / name).write_bytes(payload)
    (landing / "_SUCCESS").write_text("{}")

    assert step(capsys, "ingest", DAY)[0] == ExitCode.OK
    code, result = step(capsys, "validate", DAY)
    assert code == ExitCode.REJECTED, result
    quarantine = root(mlcycle_env) / "quarantine" / f"ds={DAY}"
    reason = json.loads((quarantine / "reason.json").read_text())
    assert reason["dropped_columns"] == [personal]
    assert f"without the forbidden column(s) ['{personal}']" in reason["quarantined_file"]
    # The quarantined copy: every column but the personal one, each value as it arrived.
    kept = read((quarantine / name).read_bytes())
    pd.testing.assert_frame_equal(kept, read(payload).drop(columns=[personal]))
    # Nothing in quarantine quotes a personal value: not the sample rows, not the report.
    ranges = [f for f in reason["failures"] if f["rule"] == "range" and f["column"] == "price"]
    assert ranges and ranges[0]["rows"] and all(personal not in row for row in ranges[0]["rows"])
    for file in quarantine.iterdir():
        assert values[4] not in file.read_text(errors="replace"), file.name
    # raw/ is the record of what arrived: unchanged.
    raw = root(mlcycle_env) / "raw" / f"ds={DAY}" / name
    assert raw.read_bytes() == payload
    assert json.loads((quarantine / "_SUCCESS").read_text())["raw_digest"] == hashlib.sha256(payload).hexdigest()
