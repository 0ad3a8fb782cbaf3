"""What every step shares: its context (use case, partition, storage, Airflow run) and its outcomes.

A step is a typed function `main(ctx, options) -> <Step>Result` (its typed result model, `mlcycle.specs.results`,
named by its spec in `mlcycle.specs.catalog`). It raises `Rejected` when it refuses its
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

    def produced_by(self) -> dict[str, str]:
        """The Airflow run that writes a partition, recorded in its manifest (empty strings outside Airflow):
        what `mlcycle lineage` answers "which DAG run made this?" with."""
        return {"dag_id": self.airflow.dag_id, "run_id": self.airflow.run_id, "try_number": self.airflow.try_number}

    def uri(self, dataset: Dataset, partition: dt.date | None = None, sub: str | None = None) -> str:
        return self.storage.partition_uri(self.usecase.name, dataset, partition or self.partition, sub)

    def window(self, days: int) -> list[dt.date]:
        """The `days` partitions ending at (and including) this one, oldest first."""
        return [self.partition - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
