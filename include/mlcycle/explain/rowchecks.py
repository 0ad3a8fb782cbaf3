"""The data contract judged on one row: its per-row rules evaluated on that row, the others named as dataset-level.

Great Expectations judges a partition; importing it costs ~11 s, and most of its rules (uniqueness, statistics,
row counts, volume, label rate, the column set) say nothing about one row. The per-row rules are simple predicates
on one value (or one pair), evaluated here exactly as the compiled expectations of `mlcycle.contracts.compile`
evaluate each row of a partition (nulls skipped by value rules, inclusive bounds, `re.search` for regex, the
partition's day half-open). tests/unit/test_explain.py checks every predicate against Great Expectations on the
same rows, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from mlcycle.schema import ColumnSpec, DataContract

#: Rules a single row cannot be judged on: they are about the whole partition.
DATASET_RULES: dict[str, str] = {
    "columns": "the partition's set of columns",
    "forbidden_columns": "the partition's set of columns",
    "unique": "uniqueness across the partition's rows",
    "key_unique": "uniqueness across the partition's rows",
    "mean": "a statistic of the partition's column",
    "median": "a statistic of the partition's column",
    "distinct": "the partition's number of distinct values",
    "row_count": "the partition's row count",
    "volume": "the partition's row count against earlier partitions",
    "label_positive_rate": "the share of positive labels in the partition",
}


@dataclass(frozen=True)
class RowCheck:
    """One per-row rule on one row: passed, failed, or not applicable (a null where nulls are skipped)."""

    rule: str
    column: str
    severity: str
    expected: str
    observed: str
    outcome: str  # "passed" | "failed" | "skipped (null)" | "null (judged on the partition: a share of nulls)"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are the only values unequal to themselves
    except (TypeError, ValueError):  # an array-like value compares element-wise: not a null scalar
        return False


def _shown(value: Any) -> str:
    """A value as a check quotes it: null, or its repr (timestamps in ISO form)."""
    if _is_null(value):
        return "null"
    return repr(value.isoformat() if isinstance(value, dt.datetime) else value)


def _between(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


def _type_ok(value: Any, kind: str) -> bool:
    """The value's type as the contract's ``type`` rule wants it (a null passes: nulls are the null rule's)."""
    if _is_null(value):
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, float)
    if kind == "timestamp":
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    return False


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _column_checks(contract: DataContract, name: str, spec: ColumnSpec, value: Any) -> list[RowCheck]:
    checks: list[RowCheck] = []
    observed = _shown(value)

    def add(rule: str, expected: str, passed: bool | None, null_outcome: str = "skipped (null)") -> None:
        outcome = null_outcome if passed is None else ("passed" if passed else "failed")
        checks.append(RowCheck(rule, name, contract.severity_of(rule, name), expected, observed, outcome))

    add("type", spec.type, _type_ok(value, spec.type))
    null = _is_null(value)
    allowed = spec.null_fraction_allowed
    if allowed < 1.0:
        if allowed == 0:
            add("not_null", "no nulls", not null)
        else:
            add(
                "not_null",
                f"at most {allowed * 100:g} % nulls in the partition",
                None if null else True,
                "null (judged on the partition: a share of nulls)",
            )
    if spec.min is not None or spec.max is not None:
        number = _number(value)
        within = (
            number is not None and (spec.min is None or number >= spec.min) and (spec.max is None or number <= spec.max)
        )
        add("range", _between(spec.min, spec.max), None if null else within)
    if spec.allowed is not None:
        add("allowed", f"one of {spec.allowed}", None if null else value in spec.allowed)
    if spec.regex is not None:
        add("regex", f"matching {spec.regex}", None if null else re.search(spec.regex, str(value)) is not None)
    return checks


def row_checks(
    contract: DataContract, row: dict[str, Any], partition: dt.date, *, serving: bool = False
) -> list[RowCheck]:
    """Every per-row rule of the profile's contract, evaluated on `row` (a column -> value mapping)."""
    checks: list[RowCheck] = []
    for name in contract.column_names(serving=serving):
        spec = contract.columns[name]
        if name not in row:
            checks.append(RowCheck("columns", name, "hard", "the column present", "absent", "failed"))
            continue
        checks += _column_checks(contract, name, spec, row[name])
        if name == contract.timestamp:
            value = row[name]
            start = dt.datetime(partition.year, partition.month, partition.day, tzinfo=dt.UTC)
            end = start + dt.timedelta(days=1)
            inside = None if _is_null(value) else _type_ok(value, "timestamp") and start <= value < end
            checks.append(
                RowCheck(
                    "timestamp_in_partition",
                    name,
                    contract.severity_of("timestamp_in_partition"),
                    f"within {partition} [00:00, 24:00) UTC",
                    _shown(value),
                    "skipped (null)" if inside is None else ("passed" if inside else "failed"),
                )
            )
    for rule in contract.compare_rules(serving=serving):
        left, right = row.get(rule.left), row.get(rule.right)
        override = next(
            (o.severity for o in contract.rules if o.expectation == "compare" and o.column == rule.left), None
        )
        observed = f"{rule.left}={_shown(left)}, {rule.right}={_shown(right)}"
        if _is_null(left) or _is_null(right):
            outcome = "skipped (null)"
        else:
            outcome = "passed" if _compare(left, rule.op, right) else "failed"
        checks.append(RowCheck("compare", rule.left, override or rule.severity, rule.text, observed, outcome))
    return checks


def _compare(left: Any, op: str, right: Any) -> bool:
    """`left op right` on two numbers or two timestamps (the only pairs a contract may compare)."""
    try:
        return bool({">=": left >= right, ">": left > right, "<=": left <= right, "<": left < right}[op])
    except TypeError:  # not comparable (a value left as text by the reader): the row breaks the rule
        return False


def dataset_checks(contract: DataContract, *, serving: bool = False) -> list[dict[str, str]]:
    """The profile's rules that only a whole partition can be judged on, each with why."""
    found: list[dict[str, str]] = [{"rule": "columns", "column": "", "why": DATASET_RULES["columns"]}]
    if contract.forbidden_columns:
        found.append({"rule": "forbidden_columns", "column": "", "why": DATASET_RULES["forbidden_columns"]})
    for name in contract.column_names(serving=serving):
        spec = contract.columns[name]
        for rule in spec.rule_names():
            if rule in DATASET_RULES:
                found.append({"rule": rule, "column": name, "why": DATASET_RULES[rule]})
    if contract.key:
        found.append({"rule": "key_unique", "column": ",".join(contract.key), "why": DATASET_RULES["key_unique"]})
    table = contract.table
    for rule in ("row_count", "volume", "label_positive_rate"):
        if getattr(table, rule) is not None and not (serving and rule == "label_positive_rate"):
            found.append({"rule": rule, "column": "", "why": DATASET_RULES[rule]})
    return found
