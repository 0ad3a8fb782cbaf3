"""The typed data contract of a use case, and its YAML loader.

A contract is written by people, in YAML, next to the use case's ``usecase.yaml``. It says which
columns a partition has, their types and value rules, which columns form the key, which column
carries the event time and which one the label, and a few table-level rules. Every rule carries a
severity: ``hard`` (a failure stops the pipeline) or ``soft`` (a failure is recorded and the run goes
on). :mod:`mlcycle.contracts.compile` compiles a contract into a Great Expectations suite.

The format, in short::

    version: 1
    description: one browsing session per row
    key: [session_id]            # unique (and non-null) together
    timestamp: event_ts          # must fall inside the partition's day [D 00:00, D+1 00:00) UTC
    target: purchased            # the label; optional in serving batches
    columns:
      session_id: {type: string, regex: '^\\d{8}-\\d{6}$'}
      price: {type: float, min: 0.01, max: 1000}
      country: {type: string, allowed: [US, GB], max_null_fraction: 0.01}
      days_since_last_purchase: {type: float, nullable: true, min: 0}
      session_duration_s:        # soft: its value rules only warn
        {type: float, min: 0, severity: soft, median: {min: 30, max: 1200}}  # statistics: soft by default
      fibre: {type: string, distinct: {max: 15}}   # cardinality: at most 15 distinct values
    forbidden_columns: [email, phone]   # PII: present at all (any letter case) = hard failure
    compare:                            # cross-column rules, row by row (nulls are skipped)
      - {left: customer_tenure_days, op: ">=", right: days_since_last_purchase}
    table:
      row_count: {min: 500, max: 100000}
      volume: {history: 7, min_history: 3, min_ratio: 0.5, max_ratio: 2.0}   # soft by default
      label_positive_rate: {min: 0.02, max: 0.5, severity: hard}
    rules:                       # optional: override the severity of any one rule
      - {expectation: row_count, severity: soft}
      - {expectation: not_null, column: days_since_last_purchase, severity: soft}

Profiles: the *training* profile is the whole contract. The *serving* profile (scoring batches) drops
every rule on the target column (its type, values, ``label_positive_rate``, statistics and ``compare``
rules that use it) and accepts the target column as optional: a scoring batch may or may not carry it.

Unknown keys are rejected everywhere, so a typo (``mni: 0``) is an error rather than a rule that
silently never runs.
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Iterable
from typing import Any, Literal, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

__all__ = [
    "COLUMN_RULES",
    "TABLE_RULES",
    "ColumnSpec",
    "ColumnType",
    "CompareRule",
    "ContractError",
    "DataContract",
    "DistinctRule",
    "RateRule",
    "RowCountRule",
    "RuleName",
    "RuleOverride",
    "Severity",
    "StatRule",
    "TableRules",
    "VolumeRule",
    "load_contract",
]

Severity = Literal["hard", "soft"]
"""``hard``: a failure stops the pipeline. ``soft``: a failure is recorded as a warning."""

ColumnType = Literal["string", "float", "int", "timestamp"]
"""Logical column types: str values, float64, int64, tz-aware datetime64 (any unit, any tz).

Declared once, here: a use case's columns have the types its contract gives them (`mlcycle.config`
reads them from the contract; `usecase.yaml` only gives roles)."""

ColumnRuleName = Literal["type", "not_null", "range", "allowed", "regex", "unique", "mean", "median", "distinct"]
TableRuleName = Literal[
    "columns",
    "forbidden_columns",
    "key_unique",
    "timestamp_in_partition",
    "row_count",
    "volume",
    "label_positive_rate",
    "compare",
]
RuleName = Literal[ColumnRuleName, TableRuleName]
"""The name of one rule of a contract, as used in ``rules:`` overrides and in validation reports.

``compare`` is overridden per left-hand column (``{expectation: compare, column: <left>}``)."""

COLUMN_RULES: tuple[str, ...] = get_args(ColumnRuleName)
TABLE_RULES: tuple[str, ...] = get_args(TableRuleName)

#: Rules whose severity a column's own ``severity`` sets (its *value* rules). ``type`` is schema: hard
#: unless overridden in ``rules:``.
VALUE_RULES: frozenset[str] = frozenset({"not_null", "range", "allowed", "regex", "unique"})
#: Column rules that carry their own ``severity`` (statistics: drift-like shifts, and cardinality).
STAT_RULES: tuple[str, ...] = ("mean", "median", "distinct")
#: Comparison operators of ``compare`` rules.
CompareOp = Literal[">=", ">", "<=", "<"]


class ContractError(ValueError):
    """A contract file that cannot be read, parsed or validated; the message names file and field."""


class _Strict(BaseModel):
    """Base of every contract model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _bound(value: float) -> str:
    """A bound as the contract author wrote it: ``1000`` for a float 1000.0, ints as they are."""
    return f"{value:g}" if isinstance(value, float) else f"{value}"


def _check_ordered(low: float | None, high: float | None, names: tuple[str, str] = ("min", "max")) -> None:
    """The one min <= max check of every bounded rule (a missing bound is unbounded)."""
    if low is not None and high is not None and low > high:
        raise ValueError(f"{names[0]} ({_bound(low)}) is greater than {names[1]} ({_bound(high)})")


class _Bounds(_Strict):
    """Inclusive ``min`` and/or ``max`` bounds on one figure; subclasses narrow the fields' types."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        _check_ordered(self.min, self.max)
        return self


class StatRule(_Bounds):
    """Bounds on a column statistic (``mean``, ``median``), inclusive.

    A statistic outside its usual range is a drift-like shift (a unit change from seconds to
    minutes moves the median sixty-fold while every single value stays plausible), so it is soft
    unless the contract says otherwise.
    """

    min: float | None = None
    max: float | None = None
    severity: Severity = "soft"


class DistinctRule(_Bounds):
    """Bounds on the number of distinct non-null values of a column (its cardinality), inclusive."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "hard"


class ColumnSpec(_Strict):
    """One column: its type, whether it may be null, its value rules and its statistics."""

    type: ColumnType
    description: str | None = None
    nullable: bool = False
    max_null_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    # Strict members: YAML turns a bare NO into False and 01 into 1; keep what it produced so the
    # check below can say so, instead of pydantic silently coercing it.
    allowed: list[StrictStr | StrictInt | StrictFloat | StrictBool] | None = Field(default=None, min_length=1)
    regex: str | None = None
    unique: bool = False
    mean: StatRule | None = None
    median: StatRule | None = None
    distinct: DistinctRule | None = None
    severity: Severity = "hard"

    @property
    def null_fraction_allowed(self) -> float:
        """The largest fraction of nulls the column may have (0 unless nullable or explicitly set)."""
        if self.max_null_fraction is not None:
            return self.max_null_fraction
        return 1.0 if self.nullable else 0.0

    @model_validator(mode="after")
    def _rules_fit_type(self) -> ColumnSpec:
        numeric = self.type in ("int", "float")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply to int and float columns, not to {self.type}")
        _check_ordered(self.min, self.max)
        if self.regex is not None:
            if self.type != "string":
                raise ValueError(f"regex applies to string columns, not to {self.type}")
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from exc
        if self.allowed is not None:
            self._check_allowed(self.allowed)
        if self.type == "int" and self.null_fraction_allowed > 0:
            raise ValueError("an int column cannot hold nulls in pandas (int64); declare it as float")
        if (self.mean is not None or self.median is not None) and not numeric:
            raise ValueError(f"mean/median apply to int and float columns, not to {self.type}")
        if self.distinct is not None and self.type not in ("string", "int"):
            raise ValueError(f"distinct applies to string and int columns, not to {self.type}")
        return self

    def _check_allowed(self, allowed: list[str | int | float | bool]) -> None:
        for i, value in enumerate(allowed):
            if self.type == "string" and not isinstance(value, str):
                raise ValueError(
                    f"allowed[{i}] = {value!r} is not a string (quote it: YAML reads yes/no/on/off "
                    "as booleans and bare digits as numbers)"
                )
            if self.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"allowed[{i}] = {value!r} is not an integer")
            if self.type == "float" and (isinstance(value, bool) or isinstance(value, str)):
                raise ValueError(f"allowed[{i}] = {value!r} is not a number")
            if self.type == "timestamp":
                raise ValueError("allowed does not apply to timestamp columns")

    def rule_names(self) -> list[str]:
        """The column rules this spec produces, in the order they are compiled."""
        names = ["type"]
        if self.null_fraction_allowed < 1.0:
            names.append("not_null")
        if self.min is not None or self.max is not None:
            names.append("range")
        if self.allowed is not None:
            names.append("allowed")
        if self.regex is not None:
            names.append("regex")
        if self.unique:
            names.append("unique")
        names.extend(rule for rule in STAT_RULES if getattr(self, rule) is not None)
        return names


class RowCountRule(_Bounds):
    """Bounds on the number of rows of a partition (inclusive)."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "hard"


class RateRule(_Bounds):
    """Bounds on a fraction in [0, 1] (inclusive), e.g. the share of positive labels."""

    min: float | None = Field(default=None, ge=0.0, le=1.0)
    max: float | None = Field(default=None, ge=0.0, le=1.0)
    severity: Severity = "hard"


class VolumeRule(_Strict):
    """The row count against the trailing mean of the previous validated partitions.

    The ``validate`` step reads the row counts of the (at most) ``history`` newest validated
    partitions before this one (among the ``4 x history`` days before it, at least 28) from their
    manifests; with fewer than ``min_history`` of them the rule is left out. The partition must have
    between ``min_ratio`` and ``max_ratio`` times their mean.
    """

    history: int = Field(default=7, ge=1)
    min_history: int = Field(default=3, ge=1)
    min_ratio: float | None = Field(default=0.5, ge=0.0)
    max_ratio: float | None = Field(default=None, gt=0.0)
    severity: Severity = "soft"

    @model_validator(mode="after")
    def _ordered(self) -> VolumeRule:
        if self.min_ratio is None and self.max_ratio is None:
            raise ValueError("give min_ratio, max_ratio or both")
        _check_ordered(self.min_ratio, self.max_ratio, ("min_ratio", "max_ratio"))
        if self.min_history > self.history:
            raise ValueError(f"min_history ({self.min_history}) is greater than history ({self.history})")
        return self

    def bounds(self, counts: list[int]) -> tuple[int | None, int | None, float] | None:
        """(min rows, max rows, trailing mean) for the previous partitions' ``counts`` (newest last),
        or None when there are fewer than ``min_history`` of them."""
        recent = counts[-self.history :]
        if len(recent) < self.min_history:
            return None
        mean = sum(recent) / len(recent)
        low = math.ceil(self.min_ratio * mean) if self.min_ratio is not None else None
        high = math.floor(self.max_ratio * mean) if self.max_ratio is not None else None
        return low, high, mean


class TableRules(_Strict):
    """Rules on the partition as a whole."""

    row_count: RowCountRule | None = None
    volume: VolumeRule | None = None
    label_positive_rate: RateRule | None = None


class CompareRule(_Strict):
    """A cross-column rule checked row by row: ``left op right`` (rows where either is null are skipped)."""

    left: str
    op: CompareOp
    right: str
    severity: Severity = "hard"
    description: str | None = None

    @property
    def text(self) -> str:
        return f"{self.left} {self.op} {self.right}"


class RuleOverride(_Strict):
    """Set the severity of one rule; ``column`` picks the column of a column rule."""

    expectation: RuleName
    column: str | None = None
    severity: Severity


class DataContract(_Strict):
    """The data contract of one use case (see the module docstring for the YAML format)."""

    version: Literal[1]
    description: str | None = None
    key: list[str] = Field(default_factory=list)
    timestamp: str | None = None
    target: str | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    forbidden_columns: list[str] = Field(default_factory=list)
    compare: list[CompareRule] = Field(default_factory=list)
    table: TableRules = Field(default_factory=TableRules)
    rules: list[RuleOverride] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> DataContract:
        for name in self.key:
            if name not in self.columns:
                raise ValueError(f"key column {name!r} is not among the columns")
        if len(set(self.key)) != len(self.key):
            raise ValueError(f"key {self.key} names a column twice")
        if self.timestamp is not None:
            spec = self.columns.get(self.timestamp)
            if spec is None:
                raise ValueError(f"timestamp column {self.timestamp!r} is not among the columns")
            if spec.type != "timestamp":
                raise ValueError(f"timestamp column {self.timestamp!r} has type {spec.type}, not timestamp")
        if self.target is not None:
            spec = self.columns.get(self.target)
            if spec is None:
                raise ValueError(f"target column {self.target!r} is not among the columns")
            if spec.type not in ("int", "float"):
                raise ValueError(f"target column {self.target!r} must be int or float, not {spec.type}")
        if self.table.label_positive_rate is not None and self.target is None:
            raise ValueError("table.label_positive_rate needs a target column")
        lowered = {c.lower() for c in self.columns}
        for i, name in enumerate(self.forbidden_columns):
            if name.lower() in lowered:
                raise ValueError(f"forbidden_columns[{i}]: {name!r} is also a contract column")
        for i, rule in enumerate(self.compare):
            self._check_compare(i, rule)
        seen: set[tuple[str, str | None]] = set()
        for i, override in enumerate(self.rules):
            self._check_override(i, override)
            if (override.expectation, override.column) in seen:
                raise ValueError(f"rules[{i}]: {override.expectation} is overridden twice")
            seen.add((override.expectation, override.column))
        return self

    def _check_compare(self, i: int, rule: CompareRule) -> None:
        kinds = []
        for side in (rule.left, rule.right):
            spec = self.columns.get(side)
            if spec is None:
                raise ValueError(f"compare[{i}]: column {side!r} is not among the columns")
            kinds.append("number" if spec.type in ("int", "float") else spec.type)
        if kinds[0] != kinds[1] or kinds[0] == "string":
            raise ValueError(
                f"compare[{i}]: {rule.text} compares {kinds[0]} with {kinds[1]}; compare two numbers or two timestamps"
            )

    def _check_override(self, i: int, override: RuleOverride) -> None:
        rule, column = override.expectation, override.column
        if rule == "compare":
            if column is None or not any(c.left == column for c in self.compare):
                raise ValueError(f"rules[{i}]: compare overrides name the left column of a compare rule")
            return
        if rule in COLUMN_RULES:
            if column is None:
                raise ValueError(f"rules[{i}]: {rule} is a column rule; name its column")
            spec = self.columns.get(column)
            if spec is None:
                raise ValueError(f"rules[{i}]: column {column!r} is not among the columns")
            if rule not in spec.rule_names():
                raise ValueError(f"rules[{i}]: column {column!r} has no {rule} rule")
            return
        if column is not None:
            raise ValueError(f"rules[{i}]: {rule} is a table rule; it takes no column")
        missing = {
            "key_unique": not self.key,
            "timestamp_in_partition": self.timestamp is None,
            "row_count": self.table.row_count is None,
            "volume": self.table.volume is None,
            "label_positive_rate": self.table.label_positive_rate is None,
            "forbidden_columns": not self.forbidden_columns,
        }
        if missing.get(rule, False):
            raise ValueError(f"rules[{i}]: the contract has no {rule} rule")

    def severity_of(self, rule: str, column: str | None = None) -> Severity:
        """The severity of ``rule`` (on ``column`` for column rules), overrides included.

        Defaults: schema rules (``columns``, ``forbidden_columns``, ``type``, ``key_unique``,
        ``timestamp_in_partition``) are hard; a column's value rules take the column's ``severity``;
        statistics (``mean``, ``median``, ``distinct``), ``compare``, ``row_count``, ``volume`` and
        ``label_positive_rate`` take their own ``severity``. An entry of ``rules:`` wins over all.
        """
        for override in self.rules:
            if override.expectation == rule and override.column == column:
                return override.severity
        if column is not None and rule in VALUE_RULES:
            return self.columns[column].severity
        if column is not None and rule in STAT_RULES:
            stat: StatRule | DistinctRule | None = getattr(self.columns[column], rule)
            if stat is not None:
                return stat.severity
        if rule == "compare":
            for entry in self.compare:
                if entry.left == column:
                    return entry.severity
        table_rule: RowCountRule | VolumeRule | RateRule | None = {
            "row_count": self.table.row_count,
            "volume": self.table.volume,
            "label_positive_rate": self.table.label_positive_rate,
        }.get(rule)
        if table_rule is not None:
            return table_rule.severity
        return "hard"

    def column_names(self, *, serving: bool = False) -> list[str]:
        """The columns a batch must have: all of them, or without the target for serving batches."""
        return [c for c in self.columns if not (serving and c == self.target)]

    def forbidden_in(self, columns: Iterable[str]) -> list[str]:
        """The forbidden (PII) columns among ``columns``, as they are spelt there (letter case ignored)."""
        forbidden = {name.lower() for name in self.forbidden_columns}
        return [str(c) for c in columns if str(c).lower() in forbidden]

    def compare_rules(self, *, serving: bool = False) -> list[CompareRule]:
        """The cross-column rules of a profile: serving leaves out those that use the target."""
        return [r for r in self.compare if not (serving and self.target in (r.left, r.right))]


def _format_loc(loc: tuple[int | str, ...]) -> str:
    """``("columns", "price", "min")`` -> ``columns.price.min``; list indexes as ``rules[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem, ``<file>: <field path>: <message>``: the form every config error of mlcycle takes."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # Union members add a tag per alternative (e.g. ``allowed[3].str``); name only the field.
        while loc and isinstance(loc[-1], str) and loc[-1] in {"str", "int", "float", "bool"}:
            loc = loc[:-1]
        # A model-level check names its own field path at the start of its message.
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = _format_loc(loc)
        line = f"{source}: {where}: {msg}" if where else f"{source}: {msg}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_contract(data: Any, *, source: str = "contract") -> DataContract:
    """Validate already-parsed YAML/JSON data as a contract; errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise ContractError(f"{source}: the contract must be a mapping, got {type(data).__name__}")
    try:
        return DataContract.model_validate(data)
    except ValidationError as exc:
        raise ContractError(format_validation_error(source, exc)) from None


def load_contract(path: pathlib.Path) -> DataContract:
    """Read and validate the contract at ``path``.

    Raises:
        ContractError: the file cannot be read, is not valid YAML (duplicate keys included), or does
            not validate; the message names the file and the field path, e.g.
            ``contract.yaml: columns.price.min: Input should be a valid number``.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read the contract: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    return parse_contract(data, source=str(path))
