"""Copies of a validation's files that quote nothing of the data: what may go where storage's rights do not hold.

A validation quotes the data it refused: offending values (GX's ``partial_unexpected_list``, the ``values`` and
the ``observed ... first values: [...]`` text of each failure) and sample rows (every column of an offending row,
a person's identifiers included). The quarantine folder in storage keeps them under storage's access rights;
MLflow, readable by every MLflow user, gets these copies unless the use case opts in
(``tracking.log_data_samples``). What failed, where and how often stays in every copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlcycle.contracts.report import without_data as report_without_data
from mlcycle.contracts.results import FIRST_VALUES_LABEL
from mlcycle.storage.layout import REASON_FILE, REPORT_FILE, VALIDATION_FILE

__all__ = ["copy_without_data", "gx_result_without_data", "reason_without_data"]

#: Keys of a GX expectation result that quote the data (values, rows, their indexes), in any result format.
GX_DATA_KEYS = frozenset(
    {
        "partial_unexpected_list",
        "partial_unexpected_counts",
        "partial_unexpected_index_list",
        "unexpected_list",
        "unexpected_index_list",
        "unexpected_index_query",
        "unexpected_rows",
    }
)
#: Keys of a failure (``FailedExpectation.to_dict``) that quote the data.
FAILURE_DATA_KEYS = frozenset({"values", "rows"})


def _cut(text: Any) -> Any:
    """An ``observed`` text or a failure message without its quoted values (other values pass unchanged)."""
    return text.partition(FIRST_VALUES_LABEL)[0] if isinstance(text, str) else text


def gx_result_without_data(document: Any) -> Any:
    """A GX validation result (validation.json) without the keys that quote the data, at any depth."""
    if isinstance(document, dict):
        return {k: gx_result_without_data(v) for k, v in document.items() if k not in GX_DATA_KEYS}
    if isinstance(document, list):
        return [gx_result_without_data(v) for v in document]
    return document


def _failure(failure: Any) -> Any:
    if not isinstance(failure, dict):
        return failure
    kept = {k: v for k, v in failure.items() if k not in FAILURE_DATA_KEYS}
    return {**kept, "observed": _cut(kept.get("observed"))} if "observed" in kept else kept


def reason_without_data(reason: dict[str, Any]) -> dict[str, Any]:
    """A rejection record (reason.json) without sample rows and offending values."""
    copy = dict(reason)
    for key in ("failed", "warnings"):
        if isinstance(copy.get(key), list):
            copy[key] = [_cut(message) for message in copy[key]]
    if isinstance(copy.get("failures"), list):
        copy["failures"] = [_failure(f) for f in copy["failures"]]
    summary = copy.get("summary")
    if isinstance(summary, dict) and isinstance(summary.get("failed"), list):
        copy["summary"] = {**summary, "failed": [_failure(f) for f in summary["failed"]]}
    return copy


def copy_without_data(source: Path, folder: Path) -> Path:
    """A copy of one of a validation's files (validation.json, reason.json, report.html) in ``folder`` that quotes
    nothing of the data; another file is refused rather than copied unread."""
    target = folder / source.name
    text = source.read_text(encoding="utf-8")
    if source.name == VALIDATION_FILE:
        text = json.dumps(gx_result_without_data(json.loads(text)), default=str)
    elif source.name == REASON_FILE:
        text = json.dumps(reason_without_data(json.loads(text)), indent=2, default=str)
    elif source.name == REPORT_FILE:
        text = report_without_data(text)
    else:
        raise ValueError(f"{source}: no copy without data is defined for this file")
    target.write_text(text, encoding="utf-8")
    return target
