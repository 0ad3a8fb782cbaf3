"""What validating a partition against its data contract found, in words a person can act on.

:class:`ContractResult` (with one :class:`FailedExpectation` per failed rule) is what the validate step
reports, quarantines with and renders (:mod:`mlcycle.contracts.report`). :func:`describe_check` turns one
GX expectation result (its JSON form) into such a description: the ``expected`` text the compiler stamped
on the expectation (:mod:`mlcycle.contracts.compile`) and what GX observed, phrased per contract rule.
Expectations that GX could not evaluate (a missing column, a column of the wrong type) come back as
exceptions inside the result; they are described as failed, never raised.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FIRST_VALUES", "FIRST_VALUES_LABEL", "META_KEY", "ContractResult", "FailedExpectation", "describe_check"]

#: The key under an expectation's ``meta`` where the contract's bookkeeping lives.
META_KEY = "mlcycle"
#: How many offending values (and rows) a report quotes.
FIRST_VALUES = 5
#: What precedes the quoted offending values at the end of an ``observed`` text (and so of a message): where
#: a copy without data (mlcycle.contracts.samples) cuts it.
FIRST_VALUES_LABEL = "; first values: "


@dataclass
class FailedExpectation:
    """One failed (or not evaluable) expectation, in words a person can act on."""

    expectation: str
    """GX expectation type, e.g. ``expect_column_values_to_be_between``."""
    column: str | None
    severity: str
    """``hard`` or ``soft``."""
    expected: str
    """e.g. ``between 0.01 and 1000``."""
    observed: str
    """e.g. ``12 of 3000 rows (0.4 %) outside; first values: [-3.5, -1.0]``."""
    rule: str = ""
    """The contract rule, e.g. ``range`` (see :data:`mlcycle.schema.RuleName`)."""
    unexpected_count: int | None = None
    """How many rows broke a row-level rule (None for table-level rules)."""
    values: list[Any] = field(default_factory=list)
    """The first offending values (row-level rules) or the observed value (JSON-able)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """A sample of offending rows (row-level rules only; filled when ``validate_frame`` samples)."""

    def message(self) -> str:
        """One line naming severity, column, rule, expected and observed."""
        where = self.column if self.column is not None else "table"
        return (
            f"[{self.severity}] {where}: {self.rule or self.expectation} ({self.expectation}) "
            f"expected {self.expected}; observed {self.observed}"
        )

    def to_dict(self, *, rows: bool = False) -> dict[str, Any]:
        """A JSON-able dict; the sample of offending rows only with ``rows=True``."""
        document = {
            "rule": self.rule,
            "expectation": self.expectation,
            "column": self.column,
            "severity": self.severity,
            "expected": self.expected,
            "observed": self.observed,
            "unexpected_count": self.unexpected_count,
            "values": self.values,
        }
        if rows:
            document["rows"] = self.rows
        return document


@dataclass
class ContractResult:
    """The outcome of validating one DataFrame against a contract."""

    success: bool
    """False if and only if a hard expectation failed."""
    evaluated: int
    """How many expectations ran."""
    hard_failures: list[FailedExpectation] = field(default_factory=list)
    soft_failures: list[FailedExpectation] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    """The full GX validation result (``ExpectationSuiteValidationResult.to_json_dict()``)."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Every expectation, passed or not, in suite order: rule, column, severity, expectation,
    expected, observed, success (what the HTML report shows)."""

    @property
    def failures(self) -> list[FailedExpectation]:
        """Hard failures, then soft ones."""
        return [*self.hard_failures, *self.soft_failures]

    def summary(self, limit: int | None = None) -> dict[str, Any]:
        """A compact, JSON-able digest: counts and one entry per failed expectation.

        ``limit`` caps the entries (hard ones first); ``more`` then says how many were left out.
        """
        failures = self.failures
        shown = failures if limit is None else failures[:limit]
        document: dict[str, Any] = {
            "success": self.success,
            "evaluated": self.evaluated,
            "hard_failures": len(self.hard_failures),
            "soft_failures": len(self.soft_failures),
            "failed": [f.to_dict() for f in shown],
        }
        if len(shown) < len(failures):
            document["more"] = len(failures) - len(shown)
        return document

    def messages(self) -> list[str]:
        """One line per failure (hard first), for logs."""
        return [f.message() for f in self.failures]


# ------------------------------------------------------------------------ describing GX results


def _exception_message(exception_info: dict[str, Any]) -> str | None:
    """The first exception GX caught while evaluating one expectation, or None.

    GX reports either ``{"raised_exception": ..., "exception_message": ...}`` or, when a metric
    failed, a mapping from metric ids to such dicts.
    """
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and (info.get("raised_exception") or info.get("exception_message")):
            text = str(info.get("exception_message") or "exception").strip()
            return text.splitlines()[0] if text else "exception"
    return None


def _pct(part: int, whole: int) -> str:
    if whole <= 0:
        return "0 %"
    pct = 100.0 * part / whole
    return f"{pct:.2f} %" if pct < 0.1 else f"{pct:.1f} %"


_VERB: dict[str, str] = {
    "type": "of another type",
    "not_null": "null",
    "range": "outside",
    "allowed": "not allowed",
    "regex": "not matching",
    "unique": "duplicated",
    "key_unique": "with a duplicated key",
    "timestamp_in_partition": "outside the day",
    "compare": "breaking the rule",
}


def _plain(value: Any) -> Any:
    """numpy scalars (nested in lists too) as plain Python values, so messages read ``3.5``, not
    ``np.float64(3.5)``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _figure(value: Any) -> str:
    if value is None:
        return "none (no non-null values)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value}"
    return f"{value:.4g}" if math.isfinite(value) else f"{value}"


def _observed(rule: str, column: str | None, result: dict[str, Any], df: pd.DataFrame, meta: dict[str, Any]) -> str:
    """Describe what GX observed for one expectation (failed or not)."""
    dtype = f"dtype {df[column].dtype}" if column is not None and column in df.columns else None
    if rule == "columns":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {sorted(mismatched[k])}" for k in ("missing", "unexpected") if mismatched.get(k)]
        return "; ".join(parts) or f"{len(result.get('observed_value') or [])} columns"
    if "unexpected_count" in result:
        bad, total = int(result["unexpected_count"] or 0), int(result.get("element_count") or 0)
        text = f"{bad} of {total} rows ({_pct(bad, total)}) {_VERB.get(rule, 'unexpected')}"
        values = result.get("partial_unexpected_list") or []
        if values and rule != "not_null":
            text += f"{FIRST_VALUES_LABEL}{values[:FIRST_VALUES]}"
        return f"{dtype}; {text}" if rule == "type" and dtype else text
    value = result.get("observed_value")
    if rule == "type":
        return dtype or f"type {value}"
    if rule == "forbidden_columns":
        return f"present: {value}" if value else "none present"
    if rule == "row_count":
        return f"{value} rows"
    if rule == "volume":
        mean = meta.get("trailing_mean")
        if isinstance(value, int | float) and isinstance(mean, int | float) and mean > 0:
            return f"{value} rows ({value / mean:.2f} x the trailing mean)"
        return f"{value} rows"
    if rule == "label_positive_rate":
        return f"positive rate {_figure(value)}"
    if rule in ("mean", "median"):
        return f"{rule} {_figure(value)}"
    if rule == "distinct":
        return f"{value} distinct values"
    return f"{value}"


def _jsonable(value: Any) -> Any:
    """GX's JSON form of a value is JSON already; anything else becomes its string."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def describe_check(res: dict[str, Any], df: pd.DataFrame) -> tuple[int, bool, FailedExpectation]:
    """(suite order, success, description) of one expectation's result."""
    config = res.get("expectation_config") or {}
    meta = (config.get("meta") or {}).get(META_KEY) or {}
    rule = str(meta.get("rule", ""))
    column = meta.get("column")
    result = _plain(res.get("result") or {})
    exc = _exception_message(res.get("exception_info") or {})
    values: list[Any] = []
    if exc is not None:
        if column is not None and column not in df.columns:
            observed = f"not evaluated: column {column!r} is missing"
        else:
            prefix = f"dtype {df[column].dtype}; " if column is not None and column in df.columns else ""
            observed = f"{prefix}not evaluated: {exc}"
    else:
        observed = _observed(rule, column, result, df, meta)
        if "partial_unexpected_list" in result:
            values = [_jsonable(v) for v in (result.get("partial_unexpected_list") or [])[:FIRST_VALUES]]
        elif "observed_value" in result and rule != "columns":
            values = [_jsonable(result["observed_value"])]
        elif rule == "columns":
            mismatched = (result.get("details") or {}).get("mismatched") or {}
            values = sorted(mismatched.get("missing", [])) + sorted(mismatched.get("unexpected", []))
    count = result.get("unexpected_count")
    check = FailedExpectation(
        expectation=str(config.get("type", "")),
        column=column,
        severity=str(meta.get("severity", "hard")),
        expected=str(meta.get("expected", "")),
        observed=observed,
        rule=rule,
        unexpected_count=int(count) if isinstance(count, int | float) and exc is None else None,
        values=values,
    )
    return int(meta.get("order", 0)), bool(res.get("success")), check
