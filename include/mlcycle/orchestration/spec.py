"""StepSpec: one description of a step task, from which both launchers are built.

The local launcher runs `spec.argv` in a subprocess with `spec.env` added to the worker's
environment; the Kubernetes launcher runs the same argv (`cmds` + `arguments`) with the same env in a
pod. Templates (`{{ ... }}`) are rendered by Airflow identically in both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mlcycle.config import Resources, UseCase

ENTRYPOINT = "mlcycle"

# Rendered by Airflow at run time (see macros.py); never evaluated at parse time.
PARTITION = "{{ mlcycle_partition(dag_run, params) }}"

RUN_ENV = {
    "MLCYCLE_AIRFLOW_DAG_ID": "{{ dag_run.dag_id }}",
    "MLCYCLE_AIRFLOW_RUN_ID": "{{ dag_run.run_id }}",
    "MLCYCLE_AIRFLOW_LOGICAL_DATE": "{{ dag_run.logical_date.isoformat() if dag_run.logical_date else '' }}",
    "MLCYCLE_AIRFLOW_TRY_NUMBER": "{{ ti.try_number }}",
    "MLCYCLE_TRIGGER": "{{ mlcycle_trigger(dag_run, params) }}",
}


@dataclass(frozen=True)
class StepSpec:
    """Everything a launcher needs to run one step of one use case."""

    step: str
    usecase: UseCase
    extra_args: tuple[str, ...] = ()
    task_id: str | None = None
    retries: int = 2
    retry_delay: dt.timedelta = dt.timedelta(minutes=2)
    timeout: dt.timedelta = dt.timedelta(hours=1)
    env: dict[str, str] = field(default_factory=lambda: dict(RUN_ENV))

    @property
    def id(self) -> str:
        return self.task_id or self.step

    @property
    def arguments(self) -> list[str]:
        return [self.step, "--usecase", self.usecase.name, "--partition", PARTITION, *self.extra_args]

    @property
    def argv(self) -> list[str]:
        return [ENTRYPOINT, *self.arguments]

    @property
    def resources(self) -> Resources:
        return self.usecase.resources_for(self.step)

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": "mlcycle", "mlcycle/usecase": self.usecase.name, "mlcycle/step": self.step}
