"""Compile a :class:`~mlcycle.schema.DataContract` to a Great Expectations 1.x suite.

Each expectation carries its contract rule, column, severity, suite order and a human-readable
"expected" text in ``meta["mlcycle"]`` (read back by :func:`mlcycle.contracts.results.describe_check`);
its GX ``severity`` is ``critical`` for hard rules and ``warning`` for soft ones. The suite is not
attached to any GX context: :mod:`mlcycle.contracts.gx_runner` runs it.

Step code only: this module imports great_expectations at module level.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Sequence
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import BatchExpectation, Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from mlcycle.contracts.results import META_KEY
from mlcycle.schema import ColumnSpec, CompareRule, DataContract, Severity

__all__ = ["GX_SEVERITY", "ExpectTableColumnsToExclude", "build_suite"]

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
