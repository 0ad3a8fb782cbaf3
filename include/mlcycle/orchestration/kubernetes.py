"""The Kubernetes launcher: a hardened KubernetesPodOperator running a StepSpec's argv in the task image.

Imported only when MLCYCLE_EXECUTION_MODE=kubernetes (the kubernetes client adds ~3 s to a parse).

What every step pod gets, and why (tests/k8s proves it on the pods the DAGs would submit):

- the argv and env of the local launcher (tests/unit/test_spec_parity.py), plus `POD_ONLY_ENV`: the root
  filesystem is read-only, so HOME, TMPDIR and the library caches point at a size-limited emptyDir on /tmp;
  MLCYCLE_IMAGE names the image, for the MLflow run tags;
- per-environment settings from the pipeline ConfigMap and credentials from Kubernetes Secrets, both loaded
  whole as environment variables (`mlcycle.settings.KubernetesSettings`): no secret value is ever in the spec;
- the "restricted" Pod Security Standard on the step container *and* KPO's xcom sidecar: non-root (the
  image's numeric user), no privilege escalation, every capability dropped, seccomp RuntimeDefault,
  read-only root filesystem; no service-account token (steps never call the Kubernetes API);
- requests and limits per step from usecase.yaml, and for a GPU step `nvidia.com/gpu`, the CUDA build of
  the image and the GPU nodes' selector and tolerations;
- labels (use case, step, DAG; KPO adds dag_id/task_id/run_id/try_number) that the chart's NetworkPolicy and
  orphan-pod CronJob select on;
- failure and clean-up on purpose: the pod is deleted however it ends (`delete_pod`: a pod left Pending by a
  schedule timeout would otherwise start later and run twice, apache/airflow#59083) and when the task is
  killed (#37263); its logs, events and one-line reason (`/dev/termination-log`, falling back to the log
  tail) are in the task log first. An active deadline stops a pod whose worker died; what still escapes
  (deferred tasks killed from the UI, #62398) is removed by the chart's CronJob.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import models as k8s

from mlcycle.config import Resources
from mlcycle.exitcodes import NOT_RETRIED, ExitCode
from mlcycle.orchestration.operators import raise_for_exit_code
from mlcycle.orchestration.spec import StepSpec
from mlcycle.settings import IMAGE_CUDA_ENV, IMAGE_ENV, KubernetesSettings, parse_toleration

#: The task image's user and group (Dockerfile `USER 10001:10001`). Numeric on purpose: kubelet can only
#: verify runAsNonRoot for a numeric user.
RUN_AS_USER = 10001
#: The only writable place in a step container besides /airflow/xcom (KPO's) and /dev/termination-log.
SCRATCH = "/tmp"
SCRATCH_VOLUME = "scratch"

#: Environment only pods get; the local launcher runs with the worker's own HOME and TMPDIR.
POD_ENV = {
    "HOME": SCRATCH,  # GX and pip look under ~; nothing of the image's home is needed
    "TMPDIR": SCRATCH,  # tempfile: MLflow downloads and uploads, pyarrow spills
    "XDG_CACHE_HOME": f"{SCRATCH}/.cache",
    "XDG_CONFIG_HOME": f"{SCRATCH}/.config",
    "MPLCONFIGDIR": f"{SCRATCH}/matplotlib",  # matplotlib (Evidently, model cards) writes its font cache
    "TORCH_HOME": f"{SCRATCH}/torch",
}
#: The names the parity test leaves out when it compares pod env with local env.
POD_ONLY_ENV = (*POD_ENV, IMAGE_ENV)

#: Labels every step pod carries besides the StepSpec's own; the chart selects on them.
POD_LABELS = {
    "app.kubernetes.io/name": "mlcycle",
    "app.kubernetes.io/component": "step",
    "app.kubernetes.io/managed-by": "airflow",
}
DAG_LABEL = "mlcycle/dag"

#: Airflow's execution_timeout fires first (it counts from the task's start); the pod's own deadline is
#: the backstop when no worker is left to enforce it.
DEADLINE_MARGIN_S = 300
TERMINATION_GRACE_S = 30  # steps commit atomically: a SIGTERM loses at most the step's own work

#: KPO's xcom sidecar only sleeps until the worker has read /airflow/xcom/return.json. Its default has
#: requests only; limits make it admissible under a ResourceQuota that counts limits (the chart's does).
SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}


def _exit_code(remote_pod: Any, container: str) -> int | None:
    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    terminated = status.state.terminated if status and status.state else None
    return None if terminated is None else int(terminated.exit_code)


class StepOutcomes:
    """What every launcher in a pod shares (the step pod's and the Spark driver's): the step's JSON result (the
    xcom sidecar's) is the task's XCom and its OpenLineage declaration, and the step container's exit code maps
    to the Airflow outcome the local launcher gives it (`raise_for_exit_code`). Mixed in before KPO."""

    base_container_name: str

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The step's input and output datasets, from its result (the XCom the sidecar returned), for Airflow's
        OpenLineage provider: the same declaration as the local launcher's."""
        from mlcycle.orchestration.openlineage import step_lineage

        result = task_instance.xcom_pull(task_ids=task_instance.task_id)
        return step_lineage(json.loads(result) if isinstance(result, str) else result)

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: dict | None = None, context: Any = None) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)  # type: ignore[misc]
        except AirflowException:
            code = _exit_code(remote_pod, self.base_container_name)
            if code in NOT_RETRIED:
                result = xcom_result if isinstance(xcom_result, dict) else None
                if isinstance(xcom_result, str):
                    result = json.loads(xcom_result)
                raise_for_exit_code(code, result, f"pod {pod and pod.metadata.name}")
            raise


class StepPodOperator(StepOutcomes, KubernetesPodOperator):
    """KPO whose exit codes mean what they mean for the local launcher, with a hardened xcom sidecar."""

    def __init__(self, *, xcom_sidecar_image: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.xcom_sidecar_image = xcom_sidecar_image

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        # KPO sets the sidecar's security context (xcom_sidecar_container_security_context) but its resources
        # and image only through the Kubernetes connection; set them here so the pod is complete on its own.
        for container in pod.spec.containers:
            if container.name == PodDefaults.SIDECAR_CONTAINER_NAME:
                container.resources = k8s.V1ResourceRequirements(**SIDECAR_RESOURCES)
                if self.xcom_sidecar_image:
                    container.image = self.xcom_sidecar_image
        return pod


def container_resources(resources: Resources) -> k8s.V1ResourceRequirements:
    """Requests and limits from usecase.yaml. Memory is always limited (an OOM kill is retried, a node
    running out is not); CPU only when asked, because a CPU limit throttles even an idle node."""
    requests = {"cpu": resources.cpu, "memory": resources.memory}
    limits = {"memory": resources.memory_limit or resources.memory}
    if resources.cpu_limit:
        limits["cpu"] = resources.cpu_limit
    if resources.gpu:
        # Extended resources are requested through limits; requests must equal them.
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(resources.gpu)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def pod_security_context() -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        fs_group=RUN_AS_USER,  # the emptyDirs are group-writable for the step and the sidecar
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> k8s.V1SecurityContext:
    """The restricted profile, spelled out on each container (the step's and the xcom sidecar's)."""
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def pod_env(image: str) -> dict[str, str]:
    return {**POD_ENV, IMAGE_ENV: image}


def pod_name(spec: StepSpec) -> str:
    # KPO appends a random suffix and truncates to a DNS label.
    return f"{spec.usecase.name}-{spec.step}".replace("_", "-")


def image_for(resources: Resources, settings: KubernetesSettings) -> str:
    """The CPU build of the task image, or its CUDA build for a step that asks for a GPU."""
    if not resources.gpu:
        return settings.image
    if not settings.image_cuda:
        raise ValueError(
            f"{IMAGE_ENV} is pinned by digest ({settings.image}): set {IMAGE_CUDA_ENV} to the digest of the "
            "CUDA build for the steps that ask for a GPU"
        )
    return settings.image_cuda


def placement(resources: Resources, settings: KubernetesSettings) -> tuple[dict[str, str], list[k8s.V1Toleration]]:
    """Node selector and tolerations: GPU nodes for a GPU step (cluster defaults + the use case's), else none."""
    if not resources.gpu:
        return {}, []
    selector = {**settings.gpu_node_selector, **resources.gpu_node_selector}
    wanted = [*settings.gpu_tolerations, *(parse_toleration(t) for t in resources.gpu_tolerations)]
    unique = list({json.dumps(t, sort_keys=True): t for t in wanted}.values())
    return selector, [k8s.V1Toleration(**t) for t in unique]


def pod_operator(spec: StepSpec, *, settings: KubernetesSettings | None = None, **kwargs: Any) -> StepPodOperator:
    """The pod task of `spec`; `kwargs` are the BaseOperator arguments both launchers share."""
    settings = settings or KubernetesSettings.from_env()
    resources = spec.resources
    image = image_for(resources, settings)
    clash = sorted(set(spec.env) & set(POD_ONLY_ENV))
    if clash:
        raise ValueError(f"{spec.id}: the StepSpec env sets {clash}, which the pod launcher owns")
    node_selector, tolerations = placement(resources, settings)
    restricted = container_security_context()
    timeout = kwargs.get("execution_timeout") or spec.timeout
    operator = StepPodOperator(
        task_id=spec.id,
        name=pod_name(spec),
        namespace=settings.namespace,
        image=image,
        image_pull_policy="IfNotPresent",  # tags are immutable, production pins digests
        cmds=spec.argv[:1],
        arguments=spec.arguments,
        env_vars={**spec.env, **pod_env(image)},
        configmaps=[settings.configmap],
        secrets=[Secret("env", None, name) for name in settings.secrets],
        labels={**spec.labels, **POD_LABELS},
        container_resources=container_resources(resources),
        node_selector=node_selector,
        tolerations=tolerations,
        service_account_name=settings.service_account,
        automount_service_account_token=False,
        security_context=pod_security_context(),
        container_security_context=restricted,
        xcom_sidecar_container_security_context=restricted,
        xcom_sidecar_image=settings.xcom_sidecar_image,
        volumes=[
            k8s.V1Volume(name=SCRATCH_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=settings.scratch_size))
        ],
        volume_mounts=[k8s.V1VolumeMount(name=SCRATCH_VOLUME, mount_path=SCRATCH)],
        do_xcom_push=True,
        skip_on_exit_code=[int(ExitCode.NOTHING_TO_DO)],
        on_finish_action=settings.on_finish_action,
        on_kill_action="delete_pod",
        schedule_timeout_seconds=settings.schedule_timeout,
        startup_timeout_seconds=settings.startup_timeout,
        active_deadline_seconds=int(timeout.total_seconds()) + DEADLINE_MARGIN_S,
        termination_grace_period=TERMINATION_GRACE_S,
        termination_message_policy="FallbackToLogsOnError",
        log_events_on_failure=True,
        # The failure message is the step's one-line reason, not a dump of the whole pod object.
        log_pod_spec_on_failure=False,
        get_logs=True,
        deferrable=settings.deferrable,
        **kwargs,
    )
    if operator.has_dag():
        operator.labels[DAG_LABEL] = operator.dag_id
    return operator
