"""The Kubernetes launcher: a KubernetesPodOperator running a StepSpec's argv in the task image.

Imported only when MLCYCLE_EXECUTION_MODE=kubernetes (the kubernetes client adds ~3 s to a parse).
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import models as k8s

from mlcycle.exitcodes import ExitCode
from mlcycle.orchestration.operators import raise_for_exit_code
from mlcycle.orchestration.spec import StepSpec


def _exit_code(remote_pod: Any, container: str) -> int | None:
    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    terminated = status.state.terminated if status and status.state else None
    return None if terminated is None else int(terminated.exit_code)


class StepPodOperator(KubernetesPodOperator):
    """KPO whose exit codes mean what they mean for the local launcher."""

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: dict | None = None, context: Any = None) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
        except AirflowException:
            code = _exit_code(remote_pod, self.base_container_name)
            if code == ExitCode.REJECTED:
                result = xcom_result if isinstance(xcom_result, dict) else None
                if isinstance(xcom_result, str):
                    result = json.loads(xcom_result)
                raise_for_exit_code(code, result, f"pod {pod and pod.metadata.name}")
            raise


def _resources(spec: StepSpec) -> k8s.V1ResourceRequirements:
    r = spec.resources
    requests = {"cpu": r.cpu, "memory": r.memory}
    limits = {"memory": r.memory_limit or r.memory}
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    if r.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(r.gpu)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def pod_operator(spec: StepSpec, *, image: str, namespace: str, **kwargs: Any) -> StepPodOperator:
    return StepPodOperator(
        task_id=spec.id,
        name=f"{spec.usecase.name}-{spec.step}".replace("_", "-"),
        namespace=namespace,
        image=image,
        cmds=spec.argv[:1],
        arguments=spec.arguments,
        env_vars=dict(spec.env),
        labels=spec.labels,
        container_resources=_resources(spec),
        do_xcom_push=True,
        skip_on_exit_code=[int(ExitCode.NOTHING_TO_DO)],
        on_finish_action="delete_succeeded_pod",
        on_kill_action="delete_pod",
        startup_timeout_seconds=600,
        get_logs=True,
        **kwargs,
    )
