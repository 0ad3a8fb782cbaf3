"""Compile a :class:`~mlcycle.contracts.model.DataContract` to a Great Expectations 1.x suite, and
validate a pandas DataFrame with it.

Validation runs in an *ephemeral* GX context (no GX project folder, no stores on disk, no Data Docs).
Each expectation carries its contract rule, column, severity and a human-readable "expected" text in
``meta["mlcycle"]``; its GX ``severity`` is ``critical`` for hard rules and ``warning`` for soft ones.
Expectations that GX cannot evaluate (a missing column, a column of the wrong type) come back from GX
as exceptions inside the result; they are reported as failed expectations, never raised.

Speed (see ``python -m mlcycle_dev.benchmarks.validate``):

- the suite runs once with ``result_format`` BASIC (counts and the first few offending values, no
  index lists, no unexpected rows). Only when something failed does a second, small pass re-run the
  failed row-level expectations with ``include_unexpected_rows`` to quote a sample of offending rows;
- string columns whose values are all ``str`` are handed to GX as Arrow-backed strings. For an object
  column GX checks the type of every value with a Python ``isinstance`` call and finds nulls with a
  per-value scan, once per expectation; an Arrow string column is strings by construction (its type
  check reads the dtype) and keeps a null bitmap. A column that holds anything else stays as it is,
  so GX reports the offending values;
- GX's batch fingerprint is switched off: for every in-memory batch under 1 GB GX hashes every cell
  (``hash_pandas_object`` + md5) only to label the batch, which costs about as much as validating
  half the columns. Nothing here reads that label.

Step code only: this module imports great_expectations and pandas at module level.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.expectations.expectation import BatchExpectation, Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from mlcycle.contracts.model import ColumnSpec, CompareRule, DataContract, Severity

__all__ = [
    "GX_SEVERITY",
    "META_KEY",
    "ContractResult",
    "ExpectTableColumnsToExclude",
    "FailedExpectation",
    "build_suite",
    "validate_frame",
]

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
#: How many offending values (and rows) a report quotes.
_FIRST_VALUES = 5
_RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": _FIRST_VALUES}
_ARROW_STRING = pd.StringDtype("pyarrow")

# GX fingerprints in-memory batches smaller than this many bytes (see the module docstring): never.
pandas_execution_engine.HASH_THRESHOLD = 0


class ExpectTableColumnsToExclude(BatchExpectation):
    """Expect none of ``column_set`` among the table's columns, letter case ignored.

    GX has no negative column-set expectation; this one guards forbidden (PII) columns such as
    ``email``: their mere presence is the failure, whatever their values.
    """

    column_set: list[str]

    metric_dependencies = ("table.columns",)
    success_keys = ("column_set",)
    args_keys = ("column_set",)

    def _validate(
        self,
        metrics: dict[str, Any],
        runtime_configuration: dict[str, Any] | None = None,
        execution_engine: Any = None,
    ) -> dict[str, Any]:
        forbidden = {str(c).lower() for c in self.configuration.kwargs.get("column_set") or []}
        present = sorted(str(c) for c in metrics["table.columns"] if str(c).lower() in forbidden)
        return {"success": not present, "result": {"observed_value": present}}


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
        severity: Severity | None = None,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        severity = severity or self.contract.severity_of(rule, column)
        meta = {
            META_KEY: {
                "rule": rule,
                "column": column,
                "severity": severity,
                "expected": expected,
                "order": len(self.expectations),
                **(extra or {}),
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
        for stat, factory in (("mean", gxe.ExpectColumnMeanToBeBetween), ("median", gxe.ExpectColumnMedianToBeBetween)):
            bounds = getattr(spec, stat)
            if bounds is not None:
                self.add(
                    stat,
                    name,
                    f"{stat} {_between(bounds.min, bounds.max)}",
                    factory,
                    column=name,
                    min_value=bounds.min,
                    max_value=bounds.max,
                )
        if spec.distinct is not None:
            self.add(
                "distinct",
                name,
                _between(spec.distinct.min, spec.distinct.max, "distinct values"),
                gxe.ExpectColumnUniqueValueCountToBeBetween,
                column=name,
                min_value=spec.distinct.min,
                max_value=spec.distinct.max,
            )

    def add_compare(self, rule: CompareRule) -> None:
        # GX checks A > B (or A >= B); "<" and "<=" swap the sides.
        a, b = (rule.left, rule.right) if rule.op in (">=", ">") else (rule.right, rule.left)
        override = next(
            (o.severity for o in self.contract.rules if o.expectation == "compare" and o.column == rule.left), None
        )
        self.add(
            "compare",
            rule.left,
            f"{rule.text} on every row where both are set",
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            severity=override or rule.severity,
            extra={"compare": rule.text},
            column_A=a,
            column_B=b,
            or_equal=rule.op in (">=", "<="),
            ignore_row_if="either_value_is_missing",
        )


def build_suite(
    contract: DataContract,
    *,
    partition: datetime.date | None = None,
    serving: bool = False,
    history: Sequence[int] = (),
    present: Collection[str] | None = None,
) -> gx.ExpectationSuite:
    """Compile ``contract`` into a GX ExpectationSuite (not attached to any context).

    Args:
        contract: the data contract.
        partition: the partition's day; when given, the timestamp column must fall inside
            [D 00:00, D+1 00:00) UTC. Without it that rule is left out.
        serving: build the serving profile: no rules on the target column, and the target column
            is optional.
        history: row counts of the previous validated partitions, oldest first; the ``volume`` rule
            compares the row count with their trailing mean (left out without enough history).
        present: the batch's columns. A serving batch that carries its label passes the column-set
            rule only if the suite knows the label is there.
    """
    b = _Builder(contract)
    names = contract.column_names(serving=serving)
    column_set = list(names)
    expected = f"exactly the {len(names)} contract columns (any order)"
    if serving and contract.target is not None:
        expected += f"; the label {contract.target!r} may be present"
        if present is not None and contract.target in present:
            column_set.append(contract.target)
    b.add("columns", None, expected, gxe.ExpectTableColumnsToMatchSet, column_set=column_set, exact_match=True)
    if contract.forbidden_columns:
        b.add(
            "forbidden_columns",
            None,
            f"none of {list(contract.forbidden_columns)} (any letter case)",
            ExpectTableColumnsToExclude,
            column_set=list(contract.forbidden_columns),
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
    volume = contract.table.volume
    bounds = volume.bounds(list(history)) if volume is not None else None
    if volume is not None and bounds is not None:
        low, high, mean = bounds
        used = len(list(history)[-volume.history :])
        ratios = _between(volume.min_ratio, volume.max_ratio)
        b.add(
            "volume",
            None,
            f"{_between(low, high, 'rows')} ({ratios} x the mean {mean:.0f} of the previous {used} partitions)",
            gxe.ExpectTableRowCountToBeBetween,
            extra={"trailing_mean": mean, "history": used},
            min_value=low,
            max_value=high,
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
    for rule in contract.compare_rules(serving=serving):
        b.add_compare(rule)
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
            text += f"; first values: {values[:_FIRST_VALUES]}"
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


def _check(res: dict[str, Any], df: pd.DataFrame) -> tuple[int, bool, FailedExpectation]:
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
            values = [_jsonable(v) for v in (result.get("partial_unexpected_list") or [])[:_FIRST_VALUES]]
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


def _rows_json(rows: Any) -> list[dict[str, Any]]:
    """A sample of rows as JSON-able records (timestamps in ISO form)."""
    if not isinstance(rows, pd.DataFrame) or rows.empty:
        return []
    loaded: list[dict[str, Any]] = json.loads(
        rows.to_json(orient="records", date_format="iso", date_unit="us", default_handler=str)
    )
    return loaded


def _sample_rows(
    batch: Any, suite: gx.ExpectationSuite, failed: dict[int, FailedExpectation], sample_rows: int
) -> None:
    """Fill ``rows`` of failed row-level expectations with a sample of offending rows (second pass).

    Runs only the failed row-level expectations again, now with ``include_unexpected_rows``: the
    clean path never pays for it.
    """
    orders = [order for order, f in failed.items() if f.unexpected_count]
    if not orders:
        return
    again = gx.ExpectationSuite(name=f"{suite.name}-rows", expectations=[suite.expectations[o] for o in orders])
    result_format = {
        "result_format": "BASIC",
        "partial_unexpected_count": sample_rows,
        "include_unexpected_rows": True,
    }
    result = batch.validate(again, result_format=result_format)
    for res in result.results:
        meta = (res.expectation_config.meta or {}).get(META_KEY) or {}
        target = failed.get(int(meta.get("order", -1)))
        if target is not None and isinstance(res.result, dict):
            target.rows = _rows_json(res.result.get("unexpected_rows"))[:sample_rows]


def arrow_strings(df: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """``df`` with its contract string columns as Arrow-backed strings where every value is a str.

    Returns ``df`` itself when nothing changes, else a shallow copy: the caller's frame is untouched.
    """
    out: pd.DataFrame | None = None
    for name, spec in contract.columns.items():
        if spec.type != "string" or name not in df.columns or df[name].dtype != object:
            continue
        column = df[name]
        if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            continue  # mixed values: GX checks them one by one and names the odd ones
        if out is None:
            out = df.copy(deep=False)
        out[name] = column.astype(_ARROW_STRING)
    return df if out is None else out


def validate_frame(
    df: pd.DataFrame,
    contract: DataContract,
    *,
    partition: datetime.date | None = None,
    serving: bool = False,
    history: Sequence[int] = (),
    sample_rows: int = _FIRST_VALUES,
) -> ContractResult:
    """Validate ``df`` against ``contract`` with a real GX suite in an ephemeral context.

    Never raises for bad data: every failed or unevaluable expectation becomes a
    :class:`FailedExpectation`, sorted into hard and soft failures. ``success`` is False if and only
    if a hard expectation failed. See :func:`build_suite` for ``partition``, ``serving`` and
    ``history``. ``sample_rows`` offending rows are quoted per failed row-level rule (0: none).
    """
    suite = build_suite(contract, partition=partition, serving=serving, history=history, present=list(df.columns))
    df = arrow_strings(df, contract)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format=_RESULT_FORMAT)
    raw: dict[str, Any] = result.to_json_dict()
    checks = sorted((_check(res, df) for res in raw.get("results", [])), key=lambda item: item[0])
    failed = {order: check for order, success, check in checks if not success}
    if failed and sample_rows > 0:
        _sample_rows(batch, suite, failed, sample_rows)
    hard = [f for f in failed.values() if f.severity == "hard"]
    soft = [f for f in failed.values() if f.severity != "hard"]
    return ContractResult(
        success=not hard,
        evaluated=len(raw.get("results", [])),
        hard_failures=hard,
        soft_failures=soft,
        raw=raw,
        checks=[{**check.to_dict(), "success": success} for _, success, check in checks],
    )
