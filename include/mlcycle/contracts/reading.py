"""Read a raw partition file into a DataFrame the contract can check, or say clearly why not.

Two formats arrive in ``landing/``: Parquet (typed) and CSV (UTF-8, comma-delimited, with a header).
A CSV is read as text and each contract column is then converted to the contract's type; a value that
does not convert leaves the column as text, so the contract's ``type`` rule names the column and the
offending values instead of the reader guessing. A file that cannot be read at all (truncated or
corrupt Parquet, bytes that are not UTF-8, an unparsable CSV) raises :class:`UnreadableData`, which
the validate step turns into a REJECTED partition with a quarantine record, never a crash.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.contracts.formats import EXPECTED, FORMATS
from mlcycle.contracts.results import ContractResult, FailedExpectation
from mlcycle.schema import DataContract
from mlcycle.storage.layout import partition_files

__all__ = ["UnreadableData", "read_csv", "read_partition", "unreadable_result"]

# Parquet strings are read as Arrow-backed strings: no Python object per value, and what the GX gate
# wants anyway (see mlcycle.contracts.gx_runner). Only the validation sees this frame; validated/ keeps
# the raw file's bytes.
_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


class UnreadableData(ValueError):
    """The partition's file cannot be read; the message says what is wrong with it."""


def read_partition(path: Path, fmt: str, contract: DataContract) -> pd.DataFrame:
    """Read ``path`` (``parquet`` or ``csv``) for validation against ``contract``."""
    if fmt == "parquet":
        # One file, or the part-*.parquet files of a multi-file partition (in name order, one table).
        parts = partition_files(path)
        if not parts:
            raise UnreadableData(f"{path.name}: no such file")
        try:
            table = pa.concat_tables([pq.read_table(part) for part in parts])
            return table.to_pandas(types_mapper=_ARROW_STRINGS.get)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise UnreadableData(f"{path.name} is not a readable Parquet file: {_first_line(exc)}") from exc
    if fmt == "csv":
        return read_csv(path, contract)
    raise UnreadableData(f"{path.name}: unknown format {fmt!r} (expected one of {sorted(set(FORMATS.values()))})")


def read_csv(path: Path, contract: DataContract) -> pd.DataFrame:
    """Read a UTF-8, comma-delimited CSV with a header and give the contract's columns their types.

    Empty fields are nulls. ``int`` and ``float`` columns are parsed as numbers, ``timestamp``
    columns as ISO 8601 timestamps in UTC; a column whose values do not all parse stays text.
    """
    try:
        frame = pd.read_csv(
            path,
            sep=",",
            encoding="utf-8",
            encoding_errors="strict",
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as exc:
        raise UnreadableData(
            f"{path.name} is not UTF-8 text (wrong encoding, e.g. latin-1 or UTF-16): {_first_line(exc)}"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise UnreadableData(f"{path.name} is empty: no header row") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise UnreadableData(f"{path.name} is not a comma-delimited CSV: {_first_line(exc)}") from exc
    for name, spec in contract.columns.items():
        if name in frame.columns:
            frame[name] = _convert(frame[name], spec.type)
    return frame


def _convert(values: pd.Series, kind: str) -> pd.Series:
    if kind == "string":
        return values
    try:
        if kind == "timestamp":
            return pd.to_datetime(values, utc=True, format="ISO8601")
        number = pd.to_numeric(values)
    except (ValueError, TypeError, OverflowError):
        return values  # left as text: the contract's type rule reports the column and its values
    return number.astype("float64") if kind == "float" else number


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unreadable_result(message: str, fmt: str) -> ContractResult:
    """The contract result of a file that could not be read: one hard failure of the ``readable`` rule."""
    failure = FailedExpectation(
        expectation="read_partition",
        column=None,
        severity="hard",
        expected=EXPECTED.get(fmt, "a readable file"),
        observed=message,
        rule="readable",
    )
    return ContractResult(
        success=False,
        evaluated=1,
        hard_failures=[failure],
        raw={"success": False, "results": [], "error": message, "format": fmt},
        checks=[{**failure.to_dict(), "success": False}],
    )
