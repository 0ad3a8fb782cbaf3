"""StepSpec: one description of a step task, from which both launchers are built.

The local launcher runs `spec.argv` in a subprocess with `spec.env` added to the worker's
environment; the Kubernetes launcher runs the same argv (`cmds` + `arguments`) with the same env in a
pod. Templates (`{{ ... }}`) are rendered by Airflow identically in both.

The step's own arguments come from its typed options (`mlcycle.specs.catalog`): the same model the CLI
parses them back into, so a DAG cannot pass a flag the step does not have.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mlcycle.config import Resources, UseCase
from mlcycle.specs.catalog import CommandSpec, spec_of
from mlcycle.specs.names import SPARK_STEPS, Step
from mlcycle.specs.options import Options

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

    step: Step
    usecase: UseCase
    #: The step's options (an instance of its spec's options model); None: the step's defaults.
    options: Options | None = None
    task_id: str | None = None
    retries: int = 2
    retry_delay: dt.timedelta = dt.timedelta(minutes=2)
    timeout: dt.timedelta = dt.timedelta(hours=1)
    env: dict[str, str] = field(default_factory=lambda: dict(RUN_ENV))

    def __post_init__(self) -> None:
        object.__setattr__(self, "step", Step(self.step))
        expected = self.command.options
        if self.options is not None and type(self.options) is not expected:
            raise TypeError(
                f"StepSpec {self.step.value!r}: options are {type(self.options).__name__}, expected {expected.__name__}"
            )

    @property
    def command(self) -> CommandSpec:
        """The step's spec: options, result model, runbook, body."""
        return spec_of(self.step)

    @property
    def id(self) -> str:
        return self.task_id or self.step.value

    @property
    def arguments(self) -> list[str]:
        options = self.options.to_argv() if self.options is not None else []
        return [self.step.value, "--usecase", self.usecase.name, "--partition", PARTITION, *options]

    @property
    def argv(self) -> list[str]:
        return [ENTRYPOINT, *self.arguments]

    @property
    def on_spark(self) -> bool:
        """Whether the step runs on Spark: a Spark step (validate, score, monitor) of an `engine: spark` use case."""
        return self.usecase.engine == "spark" and self.step in SPARK_STEPS

    @property
    def resources(self) -> Resources:
        return self.usecase.resources_for(self.step.value)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/part-of": "mlcycle",
            "mlcycle/usecase": self.usecase.name,
            "mlcycle/step": self.step.value,
        }
