"""The operator factory: one StepSpec -> the local or the Kubernetes launcher, per execution mode.

In kubernetes mode a Spark step of an `engine: spark` use case (validate, score, monitor) is a SparkApplication
(`mlcycle.orchestration.spark`), every other step a pod; locally both run the same argv in a subprocess (a Spark
step starts Spark in local mode itself).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from mlcycle.orchestration.operators import LocalStepOperator
from mlcycle.orchestration.spec import StepSpec
from mlcycle.settings import KubernetesSettings, execution_mode


def step_operator(spec: StepSpec, mode: str | None = None, **kwargs: Any) -> BaseOperator:
    """Build the task that runs `spec`: a subprocess locally, a pod in `kubernetes` mode."""
    command = spec.command
    common: dict[str, Any] = {
        # The task page says which code runs: the spec (task id -> spec) names the step's body.
        "doc_md": f"`mlcycle {command.name}`: {command.help}.\n\nBody: `{command.body}` "
        f"(spec: `mlcycle.specs.catalog`, options `{command.options.__name__}`, result `{command.result_model.__name__}`).",
        "retries": spec.retries,
        "retry_delay": spec.retry_delay,
        "execution_timeout": spec.timeout,
        **kwargs,
    }
    if (mode or execution_mode()) == "kubernetes":
        if spec.on_spark:
            from mlcycle.orchestration.spark import spark_operator  # heavy: only in kubernetes mode

            return spark_operator(spec, settings=KubernetesSettings.from_env(), **common)
        from mlcycle.orchestration.kubernetes import pod_operator  # heavy: only in kubernetes mode

        # Image, namespace, service account, ConfigMap and Secret names are per environment (env variables
        # on Airflow's components, helm/airflow-values.yaml); resources are per step (usecase.yaml).
        return pod_operator(spec, settings=KubernetesSettings.from_env(), **common)
    return LocalStepOperator(
        task_id=spec.id, cmds=spec.argv[:1], arguments=spec.arguments, env_vars=dict(spec.env), **common
    )
