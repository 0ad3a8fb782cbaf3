"""What every step shares: its context (use case, partition, storage, Airflow run) and its result.

A step is a typed function `run(ctx, ...) -> StepResult`. It raises `Rejected` when it refuses its
input (contract failed, gate said no, compare-and-set lost) and `NothingToDo` when there is no work;
the CLI turns these into the exit codes of `mlcycle.exitcodes` and a one-line JSON result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.config import UseCase
from mlcycle.runinfo import AirflowRun
from mlcycle.storage.layout import Dataset

if TYPE_CHECKING:  # pyarrow: light commands (rerun, alert-receiver) use the step types without loading it
    from mlcycle.storage.partitions import Storage


class StepError(Exception):
    """Base of the outcomes a step reports on purpose (not bugs, not infrastructure errors)."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class Rejected(StepError):
    """The input is refused; retrying cannot help (exit code REJECTED)."""


class NothingToDo(StepError):
    """There is no work for this partition (exit code NOTHING_TO_DO -> the task is skipped)."""


@dataclass(frozen=True)
class StepContext:
    usecase: UseCase
    partition: dt.date
    storage: Storage
    airflow: AirflowRun = field(default_factory=AirflowRun)

    def uri(self, dataset: Dataset, partition: dt.date | None = None, sub: str | None = None) -> str:
        return self.storage.partition_uri(self.usecase.name, dataset, partition or self.partition, sub)

    def window(self, days: int) -> list[dt.date]:
        """The `days` partitions ending at (and including) this one, oldest first."""
        return [self.partition - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


@dataclass
class StepResult:
    """The small JSON document a step returns (stdout's last line locally; return.json in a pod)."""

    step: str
    usecase: str
    partition: str
    status: str = "success"
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "status": self.status,
            "step": self.step,
            "usecase": self.usecase,
            "partition": self.partition,
            "outputs": self.outputs,
            "metrics": self.metrics,
        }
        if self.reason:
            document["reason"] = self.reason
        return document
