"""Compile a :class:`~mlcycle.contracts.model.DataContract` to a Great Expectations 1.x suite, and
validate a pandas DataFrame with it.

Validation runs in an *ephemeral* GX context (no GX project folder, no stores on disk, no Data Docs).
Each expectation carries its contract rule, column, severity and a human-readable "expected" text in
``meta["mlcycle"]``; its GX ``severity`` is ``critical`` for hard rules and ``warning`` for soft ones.
Expectations that GX cannot evaluate (a missing column, a column of the wrong type) come back from GX
as exceptions inside the result; they are reported as failed expectations, never raised.

Step code only: this module imports great_expectations and pandas at module level.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from mlcycle.contracts.model import ColumnSpec, DataContract, Severity

__all__ = ["GX_SEVERITY", "META_KEY", "ContractResult", "FailedExpectation", "build_suite", "validate_frame"]

#: The key under an expectation's ``meta`` where the contract's bookkeeping lives.
META_KEY = "mlcycle"
#: Contract severity -> GX ``FailureSeverity`` value.
GX_SEVERITY: dict[str, FailureSeverity] = {
    "hard": FailureSeverity.CRITICAL,
    "soft": FailureSeverity.WARNING,
}
#: How a logical column type is checked (``ExpectColumnValuesToBeOfType.type_``). For object columns
#: GX checks every non-null value; for typed columns it compares the dtype's scalar type.
_GX_TYPE: dict[str, str] = {"string": "str", "int": "int64", "float": "float64", "timestamp": "Timestamp"}
_TYPE_EXPECTED: dict[str, str] = {
    "string": "str values",
    "int": "dtype int64",
    "float": "dtype float64",
    "timestamp": "tz-aware timestamps (any unit; UTC by convention)",
}
#: How many offending values a report quotes.
_FIRST_VALUES = 5
_RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": _FIRST_VALUES}


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
    """The contract rule, e.g. ``range`` (see :data:`mlcycle.contracts.model.RuleName`)."""

    def message(self) -> str:
        """One line naming severity, column, rule, expected and observed."""
        where = self.column if self.column is not None else "table"
        return (
            f"[{self.severity}] {where}: {self.rule or self.expectation} ({self.expectation}) "
            f"expected {self.expected}; observed {self.observed}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of all fields."""
        return {
            "rule": self.rule,
            "expectation": self.expectation,
            "column": self.column,
            "severity": self.severity,
            "expected": self.expected,
            "observed": self.observed,
        }


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

    @property
    def failures(self) -> list[FailedExpectation]:
        """Hard failures, then soft ones."""
        return [*self.hard_failures, *self.soft_failures]

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-able digest: counts and one entry per failed expectation."""
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "hard_failures": len(self.hard_failures),
            "soft_failures": len(self.soft_failures),
            "failed": [f.to_dict() for f in self.failures],
        }

    def messages(self) -> list[str]:
        """One line per failure (hard first), for logs."""
        return [f.message() for f in self.failures]


# --------------------------------------------------------------------------------------- building


def _num(x: float) -> str:
    """A bound as people write it: ``1000`` rather than ``1000.0``."""
    return f"{x:g}"


def _between(lo: float | None, hi: float | None, unit: str = "") -> str:
    suffix = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f"between {_num(lo)} and {_num(hi)}{suffix}"
    if lo is not None:
        return f">= {_num(lo)}{suffix}"
    return f"<= {_num(hi)}{suffix}" if hi is not None else "any value"


def _day_bounds(partition: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """[D 00:00, D+1 00:00) in UTC, for a date (or the date of a datetime)."""
    day = partition.date() if isinstance(partition, datetime.datetime) else partition
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


class _Builder:
    """Accumulates expectations, stamping each with its contract bookkeeping."""

    def __init__(self, contract: DataContract) -> None:
        self.contract = contract
        self.expectations: list[Expectation] = []

    def add(
        self,
        rule: str,
        column: str | None,
        expected: str,
        factory: type[Expectation],
        /,
        **kwargs: Any,
    ) -> None:
        severity: Severity = self.contract.severity_of(rule, column)
        meta = {
            META_KEY: {
                "rule": rule,
                "column": column,
                "severity": severity,
                "expected": expected,
                "order": len(self.expectations),
            }
        }
        self.expectations.append(factory(meta=meta, severity=GX_SEVERITY[severity], catch_exceptions=True, **kwargs))

    def add_column(self, name: str, spec: ColumnSpec) -> None:
        self.add(
            "type",
            name,
            _TYPE_EXPECTED[spec.type],
            gxe.ExpectColumnValuesToBeOfType,
            column=name,
            type_=_GX_TYPE[spec.type],
        )
        null_fraction = spec.null_fraction_allowed
        if null_fraction < 1.0:
            expected = "no nulls" if null_fraction == 0 else f"at most {_num(null_fraction * 100)} % nulls"
            self.add(
                "not_null",
                name,
                expected,
                gxe.ExpectColumnValuesToNotBeNull,
                column=name,
                mostly=round(1.0 - null_fraction, 12),
            )
        if spec.min is not None or spec.max is not None:
            self.add(
                "range",
                name,
                _between(spec.min, spec.max),
                gxe.ExpectColumnValuesToBeBetween,
                column=name,
                min_value=spec.min,
                max_value=spec.max,
            )
        if spec.allowed is not None:
            self.add(
                "allowed",
                name,
                f"one of {spec.allowed}",
                gxe.ExpectColumnValuesToBeInSet,
                column=name,
                value_set=list(spec.allowed),
            )
        if spec.regex is not None:
            self.add(
                "regex",
                name,
                f"matching {spec.regex}",
                gxe.ExpectColumnValuesToMatchRegex,
                column=name,
                regex=spec.regex,
            )
        if spec.unique:
            self.add("unique", name, "unique values", gxe.ExpectColumnValuesToBeUnique, column=name)


def build_suite(
    contract: DataContract, *, partition: datetime.date | None = None, serving: bool = False
) -> gx.ExpectationSuite:
    """Compile ``contract`` into a GX ExpectationSuite (not attached to any context).

    Args:
        contract: the data contract.
        partition: the partition's day; when given, the timestamp column must fall inside
            [D 00:00, D+1 00:00) UTC. Without it that rule is left out.
        serving: build the serving subset: no target column, no label rules.
    """
    b = _Builder(contract)
    names = contract.column_names(serving=serving)
    b.add(
        "columns",
        None,
        f"exactly the {len(names)} contract columns (any order)",
        gxe.ExpectTableColumnsToMatchSet,
        column_set=names,
        exact_match=True,
    )
    row_count = contract.table.row_count
    if row_count is not None:
        b.add(
            "row_count",
            None,
            _between(row_count.min, row_count.max, "rows"),
            gxe.ExpectTableRowCountToBeBetween,
            min_value=row_count.min,
            max_value=row_count.max,
        )
    # Each column's rules in turn (type first); the key and day rules right after their column.
    for name in names:
        b.add_column(name, contract.columns[name])
        if contract.key == [name]:
            b.add(
                "key_unique",
                name,
                f"unique key ({name})",
                gxe.ExpectColumnValuesToBeUnique,
                column=name,
            )
        if name == contract.timestamp and partition is not None:
            start, end = _day_bounds(partition)
            b.add(
                "timestamp_in_partition",
                name,
                f"within {start:%Y-%m-%d} [00:00, 24:00) UTC",
                gxe.ExpectColumnValuesToBeBetween,
                column=name,
                min_value=start,
                max_value=end,
                strict_max=True,
            )
    if len(contract.key) > 1:
        b.add(
            "key_unique",
            None,
            f"unique key ({', '.join(contract.key)})",
            gxe.ExpectCompoundColumnsToBeUnique,
            column_list=list(contract.key),
        )
    rate = contract.table.label_positive_rate
    if rate is not None and contract.target is not None and not serving:
        b.add(
            "label_positive_rate",
            contract.target,
            f"positive rate {_between(rate.min, rate.max)}",
            gxe.ExpectColumnMeanToBeBetween,
            column=contract.target,
            min_value=rate.min,
            max_value=rate.max,
        )
    suffix = ("-serving" if serving else "") + (f"-{partition:%Y-%m-%d}" if partition is not None else "")
    return gx.ExpectationSuite(name=f"mlcycle-contract{suffix}", expectations=list(b.expectations))


# ------------------------------------------------------------------------------------- validating


def _batch_definition() -> Any:
    """A whole-DataFrame batch definition in a fresh ephemeral context (about 15 ms)."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),  # no Data Docs
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas(name="mlcycle")
    asset = source.add_dataframe_asset(name="partition")
    return asset.add_batch_definition_whole_dataframe(name="whole")


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
}


def _observed(rule: str, column: str | None, result: dict[str, Any], df: pd.DataFrame) -> str:
    """Describe what GX observed for one failed expectation."""
    dtype = f"dtype {df[column].dtype}" if column is not None and column in df.columns else None
    if rule == "columns":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {sorted(mismatched[k])}" for k in ("missing", "unexpected") if mismatched.get(k)]
        return "; ".join(parts) or f"columns {result.get('observed_value')}"
    if "unexpected_count" in result:
        bad, total = int(result["unexpected_count"] or 0), int(result.get("element_count") or 0)
        text = f"{bad} of {total} rows ({_pct(bad, total)}) {_VERB.get(rule, 'unexpected')}"
        values = result.get("partial_unexpected_list") or []
        if values and rule != "not_null":
            text += f"; first values: {values[:_FIRST_VALUES]}"
        return f"{dtype}; {text}" if rule == "type" and dtype else text
    value = result.get("observed_value")
    if rule == "type":
        return dtype or f"type {value}"
    if rule == "row_count":
        return f"{value} rows"
    if rule == "label_positive_rate":
        if isinstance(value, int | float) and math.isfinite(value):
            return f"positive rate {value:.4g}"
        return f"positive rate {value}"
    return f"{value}"


def _failure(res: dict[str, Any], df: pd.DataFrame) -> tuple[int, FailedExpectation]:
    config = res.get("expectation_config") or {}
    meta = (config.get("meta") or {}).get(META_KEY) or {}
    rule = str(meta.get("rule", ""))
    column = meta.get("column")
    exc = _exception_message(res.get("exception_info") or {})
    if exc is not None:
        if column is not None and column not in df.columns:
            observed = f"not evaluated: column {column!r} is missing"
        else:
            prefix = f"dtype {df[column].dtype}; " if column is not None and column in df.columns else ""
            observed = f"{prefix}not evaluated: {exc}"
    else:
        observed = _observed(rule, column, res.get("result") or {}, df)
    failed = FailedExpectation(
        expectation=str(config.get("type", "")),
        column=column,
        severity=str(meta.get("severity", "hard")),
        expected=str(meta.get("expected", "")),
        observed=observed,
        rule=rule,
    )
    return int(meta.get("order", 0)), failed


def validate_frame(
    df: pd.DataFrame,
    contract: DataContract,
    *,
    partition: datetime.date | None = None,
    serving: bool = False,
) -> ContractResult:
    """Validate ``df`` against ``contract`` with a real GX suite in an ephemeral context.

    Never raises for bad data: every failed or unevaluable expectation becomes a
    :class:`FailedExpectation`, sorted into hard and soft failures. ``success`` is False if and only
    if a hard expectation failed. See :func:`build_suite` for ``partition`` and ``serving``.
    """
    suite = build_suite(contract, partition=partition, serving=serving)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format=_RESULT_FORMAT)
    raw: dict[str, Any] = result.to_json_dict()
    failures = sorted(
        (_failure(res, df) for res in raw.get("results", []) if not res.get("success")),
        key=lambda pair: pair[0],
    )
    hard = [f for _, f in failures if f.severity == "hard"]
    soft = [f for _, f in failures if f.severity != "hard"]
    return ContractResult(
        success=not hard,
        evaluated=len(raw.get("results", [])),
        hard_failures=hard,
        soft_failures=soft,
        raw=raw,
    )
