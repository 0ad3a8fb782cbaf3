"""Use-case configuration: `include/usecases/<name>/usecase.yaml`, validated by a typed model.

The use case's data contract (`contract.yaml`, `mlcycle.schema`) is its schema: every
column, its type, the key, the event-time column and the target are declared there, once.
`usecase.yaml` says what the other columns are for (`roles`) and how the lifecycle runs; the loader
reads both and rejects a use case whose roles do not fit its contract.

This module is imported when Airflow parses DAGs, so it may only use the standard library,
pydantic, yaml and the contract model (itself pydantic and yaml only). A bad file raises
`UseCaseConfigError` naming the file and the field path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlcycle.schema import ColumnType, ContractError, DataContract, format_validation_error, load_contract
from mlcycle.specs.names import DagFamily, Step
from mlcycle.specs.options import MAX_LOOKBACK_DAYS, USECASE_NAME

USECASES_ENV = "MLCYCLE_USECASES_DIR"
# include/mlcycle/config.py -> include/usecases
DEFAULT_USECASES_DIR = Path(__file__).resolve().parent.parent / "usecases"

STEPS = tuple(step.value for step in Step)

_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_JVM_MEMORY = re.compile(r"^\d+[kmgt]?$", re.IGNORECASE)


class UseCaseConfigError(ValueError):
    """A use-case file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    # Unknown keys are typos until proven otherwise: reject them instead of silently ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


ColumnRole = Literal["key", "timestamp", "target", "feature", "metadata"]
# A model input is a category (string) or a number; an event time is not a feature.
FEATURE_TYPES: tuple[ColumnType, ...] = ("string", "float", "int")


class Column(_Strict):
    """One contract column and its role in the use case: resolved by the loader, never written in YAML."""

    name: str
    type: ColumnType
    role: ColumnRole
    description: str = ""

    @property
    def is_categorical(self) -> bool:
        return self.type == "string"


class Target(_Strict):
    """The label. Its column is the contract's `target:`; the loader fills in `name` from there."""

    name: str
    positive_label: int = Field(default=1, description="declared; the lifecycle treats 1 as positive")
    label_delay_days: int = Field(default=0, ge=0, description="days until labels of a partition arrive")


class Roles(_Strict):
    """What the contract's columns are for, besides its key, timestamp and target (which it names itself).

    Every contract column has exactly one role, so a column added to the contract is a decision
    (feature or metadata), not a silent extra input.
    """

    features: list[str] = Field(min_length=1, description="model inputs, in this order (the model's signature)")
    metadata: list[str] = Field(default_factory=list, description="carried in the data, never a model input")


_CRON_PRESETS = frozenset({"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"})
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: The five cron fields: (name, lowest, highest, names counted from `lowest`); 7 is Sunday too.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
_CRON_ITEM = re.compile(r"^(?P<range>\*|(?P<first>[a-z0-9]+)(-(?P<last>[a-z0-9]+))?)(/(?P<step>[0-9]+))?$")


def _cron_item(item: str, what: str, low: int, high: int, names: tuple[str, ...]) -> None:
    """One comma-separated item of a cron field: `*`, `N`, `N-M`, each optionally `/STEP`; names for months
    and weekdays. A subset of what cron accepts (no `?`, `L`, `W`, `#`), all of it valid for Airflow."""
    match = _CRON_ITEM.match(item.lower())
    if not match:
        raise ValueError(f"{what} {item!r}: expected *, N, N-M or one of them followed by /STEP")

    def number(text: str) -> int:
        value = low + names.index(text) if text in names else int(text) if text.isdigit() else None
        if value is None or not low <= value <= high:
            raise ValueError(f"{what} {item!r}: {text!r} is not in {low}-{high}")
        return value

    if match["first"] is not None and match["last"] is not None and number(match["first"]) > number(match["last"]):
        raise ValueError(f"{what} {item!r}: the range runs backwards")
    if match["first"] is not None:
        number(match["first"])
    if match["step"] is not None and not 1 <= int(match["step"]) <= high:
        raise ValueError(f"{what} {item!r}: step {match['step']} is not in 1-{high}")


class Schedules(_Strict):
    """Cron expressions (UTC). Each run processes the day *before* its run time: its partition key (ADR 0010)."""

    training: str = "0 2 * * *"
    scoring: str = "0 4 * * *"
    # Not read since ADR 0010: monitoring runs for day D when scoring has produced D's predictions.
    monitoring: str = "0 6 * * *"
    start_date: dt.date = dt.date(2026, 1, 1)

    @field_validator("training", "scoring", "monitoring")
    @classmethod
    def _cron(cls, value: str) -> str:
        # Checked here, not first by Airflow: a cron Airflow refuses fails its whole DAG file, which would hide
        # that DAG family of every use case (a config error stays with its use case, see orchestration.dags).
        if value.startswith("@"):
            if value not in _CRON_PRESETS:
                raise ValueError(f"{value!r} is not a cron preset; expected one of {sorted(_CRON_PRESETS)}")
            return value
        fields = value.split()
        if len(fields) != len(_CRON_FIELDS):
            raise ValueError(f"{value!r} is not a 5-field cron expression")
        for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            for item in text.split(","):
                _cron_item(item, what, low, high, names)
        return value


class Split(_Strict):
    """How the training window is cut into train / valid / test.

    `time` (default): the latest `test_days` are test, the `valid_days` before them valid, the rest train.
    `stratified`: every day is pooled and entity keys are split by a stable hash, within each label class,
    in the proportions valid_days / window_days and test_days / window_days. Both keep the splits disjoint
    on the entity key.
    """

    strategy: Literal["time", "stratified"] = "time"
    # At most the longest look-back of ingest/validate: the training DAG passes the window as --lookback.
    window_days: int = Field(default=14, ge=3, le=MAX_LOOKBACK_DAYS)
    valid_days: int = Field(default=2, ge=1)
    test_days: int = Field(default=2, ge=1)
    min_partitions: int = Field(default=3, ge=1)
    # Training stays single-node (mlcycle.training.sampling): the train split is sampled down to this many rows.
    max_train_rows: int | None = Field(
        default=None, ge=1, description="rows a candidate is fitted on at most (a seeded sample); None: all"
    )

    @model_validator(mode="after")
    def _room_for_training(self) -> Split:
        if self.valid_days + self.test_days >= self.window_days:
            raise ValueError("valid_days + test_days must leave at least one day for training in window_days")
        return self


#: Gate metrics for which lower is better (the gate, the tune step's search and feature importance compare by it).
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


class GateThresholds(_Strict):
    """What a candidate must show to replace the champion (see mlcycle.evaluation.gate)."""

    metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"] = "roc_auc"
    min_metric: float = Field(default=0.55, description="absolute floor a candidate must reach")
    min_improvement: float = Field(default=0.0, description="margin over the champion on the same test set")
    baseline_hurdle: float = Field(default=0.02, description="margin over the rule (dummy) baseline")
    slice_tolerance: float = Field(default=0.05, ge=0, description="largest allowed per-slice drop vs champion")
    max_change: float = Field(default=0.15, gt=0, description="a larger jump either way needs a human")
    leakage_threshold: float = Field(
        default=0.99, description="a ranking metric (AUC) this good is flagged as possible leakage"
    )
    latency_p95_ms: float = Field(default=50.0, gt=0, description="p95 per-row predict time budget")
    fairness_group: str | None = Field(default=None, description="column for the 80 % rule (selection rates)")
    fairness_min_ratio: float = Field(default=0.8, gt=0, le=1)
    recent_days: int = Field(default=3, ge=1, description="labelled days before the partition to re-check on")
    # ML Test Score, Model 5: a simpler model is not better. Fitted by evaluate on the same frozen split.
    baseline_family: Literal["sklearn_logreg", "sklearn_hgb", "torch_mlp"] | None = Field(
        default="sklearn_logreg",
        description="the simple model the candidate must beat (None: only the rule baseline)",
    )
    baseline_model_hurdle: float = Field(
        default=0.0, description="margin over the simple model (negative: the most the candidate may trail it by)"
    )
    # ML Test Score, Data 2: a feature that has not helped for this many trainings in a row is worth removing.
    unimportant_feature_trainings: int = Field(
        default=3, ge=1, description="trainings in a row with permutation importance <= 0 before a warning"
    )
    # ML Test Score, Monitoring 6: computing performance has not regressed.
    compute_regression_factor: float = Field(
        default=2.0, gt=1, description="training time / peak memory / latency / throughput worse than this x champion"
    )
    compute_regression: Literal["soft", "hard"] = Field(
        default="soft", description="soft: a warning in the decision record; hard: the candidate is rejected"
    )


class DriftThresholds(_Strict):
    """Feature drift tests (see docs/drift.md for why a fixed sample size)."""

    numeric_method: str = "ks"
    categorical_method: str = "chisquare"
    p_value: float = Field(default=0.05, gt=0, lt=1)
    drift_share: float = Field(default=0.3, gt=0, le=1, description="share of drifted columns = dataset drift")
    methods: dict[str, str] = Field(
        default_factory=dict, description="per-column method overrides, e.g. {price: wasserstein}"
    )
    column_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-column thresholds, read as the column's method reads them (a distance for wasserstein)",
    )
    # Same default as monitoring.reference_profile.DEFAULT_SAMPLE_ROWS (not imported: config stays light).
    sample_rows: int | None = Field(
        default=10_000, ge=1000, description="rows per side the tests see (None: all; oversensitive on big data)"
    )

    @field_validator("column_thresholds")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {column: t for column, t in value.items() if t < 0}
        if bad:
            raise ValueError(f"thresholds must not be negative: {bad}")
        return value


class Thresholds(_Strict):
    gate: GateThresholds = GateThresholds()
    drift: DriftThresholds = DriftThresholds()


class Retraining(_Strict):
    """The retraining policy the monitoring DAG applies (see mlcycle.retraining.retraining_decision).

    Triggers: dataset-level drift (the share of drifted features reaching `thresholds.drift.drift_share`,
    or any drift on a `key_features` column) and a performance drop of the champion once labels have
    arrived. Guards: cooldown, new labelled data, retrains per week. Per-column drift alone only informs.
    """

    mode: Literal["notify_only", "auto_retrain"] = "auto_retrain"
    key_features: list[str] = Field(
        default_factory=list, description="features whose drift alone is dataset-level drift"
    )
    performance_drop: float = Field(
        default=0.05, gt=0, description="drop of the gate metric vs training time that triggers a retrain"
    )
    cooldown_days: int = Field(default=3, ge=0, description="days after a retraining request before the next")
    min_new_labelled_rows: int = Field(
        default=0, ge=0, description="labelled rows since the champion's training window, needed to retrain"
    )
    max_retrains_per_week: int = Field(default=3, ge=1, description="requests in the 7 days up to the partition")


class Freshness(_Strict):
    """Staleness budgets, checked by the monitoring DAG's `freshness` task (days, counted in partitions)."""

    max_model_age_days: int = Field(default=21, ge=1, description="champion trained on data older than this -> alert")
    max_training_gap_days: int = Field(default=7, ge=1, description="no successful training run for this long -> alert")


class Canary(_Strict):
    """`promotion: shadow_canary`: what a gate-approved @challenger must show on live traffic before it serves.

    Checked by the monitoring DAG's `canary` task (mlcycle.steps.canary) on the labelled days it shadow-scored
    after its training window, against the @champion's served predictions on the same rows.
    """

    labelled_days: int = Field(default=3, ge=1, description="labelled shadow days needed before promotion (K)")
    tolerance: float = Field(
        default=0.01, ge=0, description="largest allowed shortfall of the gate metric vs the champion, per day"
    )


_WEEKDAYS_ISO = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Staleness(_Strict):
    """The weekly measurement of how the gate metric decays with model age (mlcycle.steps.staleness).

    On the monitoring run of a partition falling on `weekday`, every version that held @champion scores the
    newest `labelled_days` labelled days; `freshness` then budgets the champion's age by the measured decay
    (the age at which the metric falls by `retraining.performance_drop`), or by `freshness.max_model_age_days`
    until `min_champions` champions have been measured and a decay is seen.
    """

    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        default="mon", description="the weekday whose monitoring run measures"
    )
    labelled_days: int = Field(default=7, ge=1, le=MAX_LOOKBACK_DAYS, description="newest labelled days scored")
    min_champions: int = Field(default=3, ge=2, description="champions needed before the measured budget is used")

    @property
    def isoweekday(self) -> int:
        """The weekday as `date.isoweekday()` numbers it (Monday 1 .. Sunday 7)."""
        return _WEEKDAYS_ISO.index(self.weekday) + 1


_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
#: The latest a deadline may fall after the end of its day: later, a day's lateness hides the next days'.
MAX_AFTER_DAY_END = dt.timedelta(days=7)


def parse_duration(text: object) -> dt.timedelta:
    """`"6h"`, `"1d2h30m"`, `"90s"` -> a timedelta; ValueError naming the text otherwise.

    Only strings with units: a bare number (seconds? hours?) or "06:00" (a time? a duration?) reads two ways.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or not text:
        raise ValueError(f"{text!r} is not a duration such as '6h', '1d2h30m' or '90s' (units d, h, m, s, in order)")
    return dt.timedelta(
        days=int(match["d"] or 0),
        hours=int(match["h"] or 0),
        minutes=int(match["m"] or 0),
        seconds=int(match["s"] or 0),
    )


def _after_day_end(text: object) -> dt.timedelta:
    value = parse_duration(text)
    if value > MAX_AFTER_DAY_END:
        raise ValueError(f"{text!r} is more than {MAX_AFTER_DAY_END.days} days after the end of the day")
    return value


def _poll_interval(text: object) -> dt.timedelta:
    value = parse_duration(text)
    if not dt.timedelta(seconds=1) <= value <= dt.timedelta(hours=1):
        raise ValueError(f"{text!r} is not between 1s and 1h")
    return value


#: A time after the end of a partition's day D (UTC), written as a duration: "6h" is D+1 06:00.
AfterDayEnd = Annotated[dt.timedelta, BeforeValidator(_after_day_end)]
PollInterval = Annotated[dt.timedelta, BeforeValidator(_poll_interval)]


def _positive_duration(text: object) -> dt.timedelta:
    value = parse_duration(text)
    if value <= dt.timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return value


#: A duration in the same notation as the deadlines ("48h", "30m"), longer than zero.
PositiveDuration = Annotated[dt.timedelta, BeforeValidator(_positive_duration)]


ParamValue = float | int | str | bool


class IntRange(_Strict):
    """Integers from `low` to `high`, both included; `log`: uniform in log space (e.g. 16..512 leaves)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        _check_range(self.low, self.high, self.log)
        return self


class FloatRange(_Strict):
    """Reals from `low` to `high`; `log`: uniform in log space (e.g. a learning rate 0.01..0.3)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        _check_range(self.low, self.high, self.log)
        return self


class ChoiceSpace(_Strict):
    """One of `values`, each equally likely."""

    type: Literal["choice"]
    values: list[ParamValue] = Field(min_length=1)


def _check_range(low: float, high: float, log: bool) -> None:
    if low >= high:
        raise ValueError(f"low {low} must be below high {high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0 (got {low})")


#: One searched hyperparameter: `{type: int|float, low, high, log}` or `{type: choice, values}`.
SearchSpace = Annotated[IntRange | FloatRange | ChoiceSpace, Field(discriminator="type")]


def _whole_days(text: object) -> dt.timedelta:
    value = parse_duration(text)
    if value < dt.timedelta(days=1) or value % dt.timedelta(days=1):
        raise ValueError(f"{text!r} is not a whole number of days (counted in partitions), e.g. '7d'")
    return value


#: Days written as a duration ("7d"), at least one, whole: ages counted in partitions.
WholeDays = Annotated[dt.timedelta, BeforeValidator(_whole_days)]


class Search(_Strict):
    """The `tune` step's seeded hyperparameter search (`mlcycle.training.search`), before `train`.

    Every candidate is fitted on the train split and scored on the valid split with the gate's metric (never on
    test: the test split stays the gate's). The best parameters override `model.params` in `train`.
    """

    strategy: Literal["random", "successive_halving"] = "random"
    params: dict[str, SearchSpace] = Field(min_length=1, description="the searched estimator parameters")
    trials: int = Field(default=20, ge=1, le=1000, description="candidate parameter sets sampled")
    max_time: PositiveDuration = Field(
        default=dt.timedelta(minutes=30), description="no new trial starts after this long, e.g. '30m'"
    )
    seed: int = Field(default=0, description="seeds the sampling (and the halving's row subsets)")
    halving_factor: int = Field(default=3, ge=2, description="successive halving: keep 1/factor per round")
    every: WholeDays = Field(
        default=dt.timedelta(days=7), description="reuse a search run fewer than this many days (partitions) before"
    )


class ModelConfig(_Strict):
    family: Literal["sklearn_hgb", "sklearn_logreg", "torch_mlp", "dummy"] = "sklearn_hgb"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)
    seed: int = 42
    search: Search | None = Field(default=None, description="tune `params` before each training (the tune step)")

    @model_validator(mode="after")
    def _something_to_tune(self) -> ModelConfig:
        if self.search is not None and self.family == "dummy":
            raise ValueError("search: the dummy family has no hyperparameters to tune")
        return self


def daily_time(cron: str) -> dt.timedelta | None:
    """The time of day a cron fires at, if it fires once a day at a fixed time (`M H * * *`, `@daily`); else None."""
    if cron in ("@daily", "@midnight"):
        return dt.timedelta(0)
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:] == ["*", "*", "*"]:
        return dt.timedelta(hours=int(fields[1]), minutes=int(fields[0]))
    return None


class DataArrival(_Strict):
    """When a day's landing partition (`landing/ds=D/_SUCCESS`) must be complete, and how often the wait looks.

    The training and scoring DAGs wait for it before ingest, deferred (no worker slot held), until `deadline`
    after the end of day D (UTC); past it their wait fails with the `data-late` alert (docs/runbooks/data-late.md).
    """

    deadline: AfterDayEnd = Field(default=dt.timedelta(hours=6), description="e.g. '6h': by D+1 06:00 UTC")
    poll_interval: PollInterval = Field(default=dt.timedelta(minutes=1), description="between looks, 1s-1h")


#: The DAG families whose runs start on their `schedule:` cron (monitoring's start on scoring's predictions).
_CRON_SCHEDULED = frozenset({DagFamily.TRAINING.value, DagFamily.SCORING.value})


class Deadlines(_Strict):
    """By when each DAG's run for day D must have finished, after the end of D (UTC); unset: no deadline.

    A run not finished by then (still running, or failed) raises the `deadline-missed` alert
    (docs/runbooks/deadline-missed.md). The deadline follows the run's day (its partition), not its schedule;
    it must fall after the end of D, and after a daily cron's run time (D+1 at `schedule.<family>`).
    """

    training: AfterDayEnd | None = None
    scoring: AfterDayEnd | None = None
    monitoring: AfterDayEnd | None = None


class Approval(_Strict):
    """The human review a `needs_manual_review` gate decision opens in the training run (an Airflow HITL task).

    A reviewer approves or rejects in the Airflow UI (or through the REST API); with no answer within `timeout`
    the run applies `on_timeout`. Either way the answer is recorded on the model version.
    """

    timeout: PositiveDuration = Field(
        default=dt.timedelta(hours=48), description="how long the review waits for an answer, e.g. '48h', '30m'"
    )
    on_timeout: Literal["reject", "approve"] = Field(
        default="reject", description="what an unanswered review decides: the version stays @challenger, or is promoted"
    )


class Tracking(_Strict):
    """What the lifecycle logs to MLflow, whose runs every MLflow user can read."""

    log_data_samples: bool = Field(
        default=False,
        description="log the validation files with the offending values and sample rows they quote (possible "
        "personal data); by default MLflow gets copies without them and only the quarantine folder keeps them",
    )


class Resources(_Strict):
    """Kubernetes requests / limits of one step's pod (the local launcher ignores them)."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = None
    gpu: int = Field(default=0, ge=0)
    # Where a GPU step may run, on top of the cluster's defaults (MLCYCLE_K8S_GPU_NODE_SELECTOR and
    # MLCYCLE_K8S_GPU_TOLERATIONS, per environment); ignored unless gpu > 0. E.g. pin a GPU model with
    # {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}; tolerations in `kubectl taint` syntax.
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    gpu_tolerations: list[str] = Field(default_factory=list, description="key[=value]:Effect")

    @field_validator("gpu_tolerations")
    @classmethod
    def _tolerations(cls, value: list[str]) -> list[str]:
        from mlcycle.settings import parse_toleration  # standard library only; raises a readable ValueError

        for item in value:
            parse_toleration(item)
        return value

    @field_validator("gpu_node_selector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        from mlcycle.settings import parse_node_selector

        parse_node_selector(",".join(f"{k}={v}" for k, v in value.items()))
        return value

    @field_validator("cpu", "cpu_limit")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        if value is not None and not _CPU.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes CPU quantity (e.g. '500m', '2')")
        return value

    @field_validator("memory", "memory_limit")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes memory quantity (e.g. '512Mi', '4Gi')")
        return value


class Spark(_Strict):
    """Spark resources of a use case whose heavy steps run on Spark (`engine: spark`).

    In Kubernetes mode they size the `SparkApplication` each Spark step submits (driver and executors); in
    local mode the step runs Spark in local mode with `local_master` and the driver memory given here.
    """

    driver_cores: int = Field(default=1, ge=1)
    driver_memory: str = Field(default="2g", description="JVM size, Spark syntax: '512m', '2g'")
    executor_cores: int = Field(default=1, ge=1)
    executor_memory: str = Field(default="2g", description="JVM size per executor, Spark syntax: '512m', '2g'")
    executor_instances: int = Field(default=2, ge=1)
    local_master: str = Field(default="local[*]", description="master URL of a local-mode run (laptop, CI)")

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _jvm_memory(cls, value: str) -> str:
        if not _JVM_MEMORY.match(value):
            raise ValueError(f"{value!r} is not a Spark memory size (e.g. '512m', '2g')")
        return value


class UseCase(_Strict):
    """A dataset + a prediction target + a model family, and how the lifecycle runs for it.

    `load_usecase` builds it from `usecase.yaml` and the contract it names; the column views
    (`columns`, `features`, `key`, `timestamp`, ...) join the roles given here with the contract's schema.
    """

    name: str
    description: str
    owner: str = "mlcycle"
    tags: list[str] = Field(default_factory=list)
    contract: str = "contract.yaml"
    roles: Roles
    target: Target
    slices: list[str] = Field(default_factory=list)
    schedule: Schedules = Schedules()
    split: Split = Split()
    model: ModelConfig = ModelConfig()
    thresholds: Thresholds = Thresholds()
    retraining: Retraining = Retraining()
    freshness: Freshness = Freshness()
    staleness: Staleness = Staleness()
    promotion: Literal["immediate", "shadow_canary"] = Field(
        default="immediate",
        description="a promote decision moves @champion now, or after a shadow canary on labelled live days",
    )
    canary: Canary = Canary()
    approval: Approval = Approval()
    tracking: Tracking = Tracking()
    data: DataArrival = DataArrival()
    deadlines: Deadlines = Deadlines()
    resources: dict[str, Resources] = Field(default_factory=dict)
    engine: Literal["local", "spark"] = Field(
        default="local", description="where validate, score and the drift statistics run: in-process or on Spark"
    )
    spark: Spark = Spark()
    # Set by the loader, not by the YAML: where the use case folder lives, and its parsed contract.
    folder: Path = Field(default=Path("."), exclude=True)
    data_contract: DataContract = Field(exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _target_from_contract(cls, data: Any) -> Any:
        # The target column is declared once, in the contract; usecase.yaml only says what its values mean.
        if not isinstance(data, dict) or not isinstance(data.get("target", {}), dict):
            return data  # field validation names what is wrong
        target = data.get("target", {})
        if "name" in target:
            raise ValueError(
                f"target.name: the target column is declared in {data.get('contract', 'contract.yaml')} "
                "(`target:`); remove it here"
            )
        schema = data.get("data_contract")
        if not isinstance(schema, DataContract):
            return data
        if schema.target is None:
            where = Path(data.get("folder", ".")) / str(data.get("contract", "contract.yaml"))
            raise ValueError(f"contract: {where} names no target column (`target:`); a use case needs one")
        return {**data, "target": {**target, "name": schema.target}}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not USECASE_NAME.match(value):
            raise ValueError("must be lower_snake_case, 2-41 characters, starting with a letter")
        return value

    @field_validator("resources")
    @classmethod
    def _resource_steps(cls, value: dict[str, Resources]) -> dict[str, Resources]:
        unknown = sorted(set(value) - {"default", *STEPS})
        if unknown:
            raise ValueError(f"unknown step(s) {unknown}; expected 'default' or one of {list(STEPS)}")
        return value

    @model_validator(mode="after")
    def _roles_fit_the_contract(self) -> UseCase:
        schema, where = self.data_contract, self.contract_path
        if len(schema.key) != 1:
            raise ValueError(f"contract: {where} has key {schema.key}; a use case needs exactly one key column")
        if schema.timestamp is None:
            raise ValueError(f"contract: {where} names no timestamp column (`timestamp:`); a use case needs one")
        role: dict[str, ColumnRole] = {}
        for field, name, given in self._role_assignments():
            if name not in schema.columns:
                raise ValueError(f"{field}: {name!r} is not a column of {where}")
            if name in role:
                raise ValueError(f"{field}: {name!r} already has role {role[name]!r}; a column has one role")
            role[name] = given
        unassigned = [c for c in schema.columns if c not in role]
        if unassigned:
            raise ValueError(
                f"roles: columns {unassigned} of {where} have no role; list them in roles.features or roles.metadata"
            )
        for name in self.roles.features:
            kind = schema.columns[name].type
            if kind not in FEATURE_TYPES:
                raise ValueError(f"roles.features: {name!r} has type {kind} in {where}; features are {FEATURE_TYPES}")
        missing = [s for s in self.slices if s not in schema.columns]
        if missing:
            raise ValueError(f"slices: {missing} are not columns of {where}")
        drift = self.thresholds.drift
        for field, names in (("methods", list(drift.methods)), ("column_thresholds", list(drift.column_thresholds))):
            # `score` is the prediction column the monitor also tests for drift.
            odd = [n for n in names if role.get(n) != "feature" and n != "score"]
            if odd:
                raise ValueError(f"thresholds.drift.{field}: {odd} are not feature columns")
        unknown_keys = [f for f in self.retraining.key_features if role.get(f) != "feature"]
        if unknown_keys:
            raise ValueError(f"retraining.key_features: {unknown_keys} are not feature columns")
        group = self.thresholds.gate.fairness_group
        if group is not None and group not in schema.columns:
            raise ValueError(f"thresholds.gate.fairness_group: {group!r} is not a column of {where}")
        return self

    @model_validator(mode="after")
    def _deadlines_after_their_runs(self) -> UseCase:
        # A deadline is placed from the day a run processes (its partition), whatever the schedule. A cron run
        # of day D starts on D+1 at the cron's time: a deadline before that would be missed by every run. The
        # monitoring runs start on an Asset event (ADR 0010): no schedule to compare with.
        for family in Deadlines.model_fields:
            after = getattr(self.deadlines, family)
            if after is None:
                continue
            if after <= dt.timedelta(0):
                raise ValueError(f"deadlines.{family}: +{after} is not after the end of the day D")
            if family not in _CRON_SCHEDULED:
                continue
            cron = getattr(self.schedule, family)
            fires = daily_time(cron)
            if fires is not None and after <= fires:
                raise ValueError(
                    f"deadlines.{family}: D+1 +{after} is not after the run starts (schedule.{family} {cron!r}, "
                    f"D+1 +{fires}): every run would miss it"
                )
        return self

    def _role_assignments(self) -> Iterator[tuple[str, str, ColumnRole]]:
        """(where it is given, column, role): the contract's key, timestamp and target, then `roles`."""
        yield "contract", self.key, "key"
        yield "contract", self.timestamp, "timestamp"
        yield "contract", self.target.name, "target"
        yield from (("roles.features", name, "feature") for name in self.roles.features)
        yield from (("roles.metadata", name, "metadata") for name in self.roles.metadata)

    # ---- derived views (used by steps and the DAG factory) ----
    @cached_property
    def columns(self) -> list[Column]:
        """Every contract column with its type (from the contract) and its role, in the contract's order."""
        role = {name: given for _, name, given in self._role_assignments()}
        return [
            Column(name=name, type=spec.type, role=role[name], description=spec.description or "")
            for name, spec in self.data_contract.columns.items()
        ]

    @property
    def key(self) -> str:
        return self.data_contract.key[0]

    @property
    def timestamp(self) -> str:
        timestamp = self.data_contract.timestamp
        if timestamp is None:  # the validator above rejects such a contract
            raise UseCaseConfigError(f"{self.contract_path}: timestamp: missing")
        return timestamp

    @property
    def features(self) -> list[Column]:
        """The model inputs, in the order of `roles.features` (the model's input signature)."""
        by_name = {c.name: c for c in self.columns}
        return [by_name[name] for name in self.roles.features]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.features if not c.is_categorical]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.features if c.is_categorical]

    @property
    def contract_path(self) -> Path:
        return self.folder / self.contract

    @property
    def registered_model_name(self) -> str:
        return f"{self.name}_model"

    @property
    def experiment_name(self) -> str:
        return f"mlcycle/{self.name}"

    def resources_for(self, step: str) -> Resources:
        return self.resources.get(step) or self.resources.get("default") or Resources()


# Keys the loader sets itself; in usecase.yaml they would be silently replaced.
_LOADER_KEYS = {"folder": "the use case's folder", "data_contract": "the parsed contract"}


def _is_inside(path: Path, folder: Path) -> bool:
    """Whether `path`, with `..` and symbolic links resolved, lies in `folder` (also resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def _read_contract(path: Path, raw: dict[str, Any]) -> DataContract:
    """The contract `raw` names, inside the use case's folder; its errors name the contract file."""
    name = raw.get("contract", UseCase.model_fields["contract"].default)
    if not isinstance(name, str):
        raise UseCaseConfigError(f"{path}: contract: expected a file name, got {type(name).__name__}")
    contract_path = path.parent / name
    # Checked before anything is read: a use case may only read files of its own folder.
    if not _is_inside(contract_path, path.parent):
        raise UseCaseConfigError(
            f"{path}: contract: {name!r} is outside the use case's folder {path.parent}; "
            "give a path relative to it, without '..'"
        )
    if not contract_path.is_file():
        raise UseCaseConfigError(f"{path}: contract: file {contract_path} does not exist")
    try:
        return load_contract(contract_path)
    except ContractError as exc:
        raise UseCaseConfigError(str(exc)) from None


def load_usecase(path: Path) -> UseCase:
    """Load and validate one `usecase.yaml` together with the contract it names."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UseCaseConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise UseCaseConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise UseCaseConfigError(f"{path}: <root>: expected a mapping, got {type(raw).__name__}")
    for key, what in _LOADER_KEYS.items():
        if key in raw:
            raise UseCaseConfigError(f"{path}: {key}: {what} is set by the loader, not in usecase.yaml")
    if "columns" in raw:
        raise UseCaseConfigError(
            f"{path}: columns: column names and types live in the contract ({raw.get('contract', 'contract.yaml')}); "
            "give their roles here (roles.features, roles.metadata)"
        )
    schema = _read_contract(path, raw)
    try:
        usecase = UseCase.model_validate({**raw, "folder": path.parent, "data_contract": schema})
    except ValidationError as exc:
        raise UseCaseConfigError(format_validation_error(str(path), exc)) from None
    if usecase.name != path.parent.name:
        raise UseCaseConfigError(f"{path}: name: {usecase.name!r} must equal its folder name {path.parent.name!r}")
    return usecase


def usecases_dir() -> Path:
    return Path(os.environ.get(USECASES_ENV, DEFAULT_USECASES_DIR))


@dataclasses.dataclass(frozen=True)
class Discovery:
    """The use cases of a folder that load, and one error (naming its file) per use case that does not."""

    usecases: list[UseCase] = dataclasses.field(default_factory=list)
    errors: list[UseCaseConfigError] = dataclasses.field(default_factory=list)


def discover(folder: Path | None = None) -> Discovery:
    """Every `<folder>/<name>/usecase.yaml`, sorted by name, each loaded on its own: a broken one is an error in
    the result, not the end of discovery (the DAG files keep every other use case's DAGs)."""
    found = Discovery()
    for path in sorted((folder or usecases_dir()).glob("*/usecase.yaml")):
        try:
            found.usecases.append(load_usecase(path))
        except UseCaseConfigError as exc:
            found.errors.append(exc)
    return found


def discover_usecases(folder: Path | None = None) -> list[UseCase]:
    """Every use case of the folder, sorted by name; the first broken one raises. Adding a use case is adding a
    folder."""
    found = discover(folder)
    if found.errors:
        raise found.errors[0]
    return found.usecases


def get_usecase(name: str, folder: Path | None = None) -> UseCase:
    """The use case `name`: `<folder>/<name>/usecase.yaml`, the name checked before it becomes a path."""
    root = folder or usecases_dir()
    if not USECASE_NAME.match(name):
        raise UseCaseConfigError(f"use case name {name!r} must match {USECASE_NAME.pattern} (a folder of {root})")
    path = root / name / "usecase.yaml"
    if path.exists() and not _is_inside(path, root):
        raise UseCaseConfigError(f"use case {name!r}: {path} leads outside {root} (a symbolic link?)")
    if not path.is_file():
        known = sorted(p.parent.name for p in root.glob("*/usecase.yaml"))
        raise UseCaseConfigError(f"unknown use case {name!r}: no {path} (known: {known})")
    return load_usecase(path)
