"""The Spark launcher: a Spark step of an `engine: spark` use case as a SparkApplication (Kubeflow Spark operator).

Imported only when MLCYCLE_EXECUTION_MODE=kubernetes and a use case has `engine: spark` (like the KPO module: the
kubernetes client is heavy). In local mode the same argv runs in the local launcher and the step starts Spark in
local mode itself (`spark.local_master`).

The step contract does not change (docs/adr/0011-spark-steps-as-sparkapplications.md):

- argv: the driver's `mainApplicationFile` is the `mlcycle` CLI (`mlcycle-step.py`) and its arguments the
  StepSpec's, so `spark-submit` runs exactly the local argv; env is the StepSpec's plus the pods' `POD_ENV`;
- exit codes: the driver container's exit code is the step's (PySpark's runner exits with the Python process's
  code); the pod launcher's mapping (`StepOutcomes`) turns it into the same Airflow outcome;
- result: the driver pod carries KPO's xcom sidecar and its `/airflow/xcom` emptyDir, so the CLI writes its JSON
  result there as in any step pod and the provider's own `extract_xcom` returns it (the provider does not add the
  sidecar itself: apache/airflow#39184);
- hardening: driver and executors get the step pods' restricted security contexts, read-only root filesystem,
  size-limited emptyDirs for /tmp and Spark's local dirs, the pipeline ConfigMap and the credential Secrets
  whole as environment (`envFrom`), never a value; the driver runs as the Spark ServiceAccount (it creates its
  executors), the executors as the task ServiceAccount (no API rights, no token).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import ApiClient

from mlcycle.config import Spark
from mlcycle.exitcodes import ExitCode
from mlcycle.orchestration.kubernetes import (
    DAG_LABEL,
    POD_LABELS,
    SCRATCH,
    SCRATCH_VOLUME,
    SIDECAR_RESOURCES,
    TERMINATION_GRACE_S,
    StepOutcomes,
    container_security_context,
    pod_env,
    pod_name,
    pod_security_context,
)
from mlcycle.orchestration.spec import StepSpec
from mlcycle.settings import IMAGE_SPARK_ENV, KubernetesSettings

API_VERSION = "sparkoperator.k8s.io/v1beta2"
KIND = "SparkApplication"
#: The Spark of the image: pyspark's version in requirements-task.lock (tests/k8s/test_spark_image.py checks it).
SPARK_VERSION = "4.3.0"
#: The task image's venv (Dockerfile).
VENV = "/opt/mlcycle"
#: The `mlcycle` CLI as a `.py` file (docker/mlcycle-step.py): spark-submit treats a main file as a Python
#: application only by that suffix, and the console script has none.
MAIN_APPLICATION_FILE = f"local://{VENV}/bin/mlcycle-step.py"
#: The Python that runs the step in the driver and the Python workers in the executors (UDFs: spark_udf).
PYSPARK_PYTHON = f"{VENV}/bin/python"
DRIVER_CONTAINER = SparkKubernetesOperator.BASE_CONTAINER_NAME
#: Where Spark spills shuffle and cache blocks: a volume named spark-local-dir-* is Spark's local dir.
LOCAL_DIR_VOLUME = "spark-local-dir-1"
LOCAL_DIR = "/var/data/spark-local-dir-1"
XCOM_VOLUME = PodDefaults.VOLUME_MOUNT.name
XCOM_DIR = PodDefaults.XCOM_MOUNT_PATH
#: A finished application is deleted by the operator (`delete_on_termination`); one kept on purpose
#: (MLCYCLE_K8S_ON_FINISH_ACTION=keep_pod) is garbage-collected by the Spark operator after this long.
KEPT_APPLICATION_TTL_S = 24 * 3600
#: Spark settings every step gets: no UI (nobody reaches it; one less open port), UTC like the local engine.
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # The JVM's temporary files go to the scratch emptyDir (the root filesystem is read-only).
    "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={SCRATCH}",
    "spark.executor.extraJavaOptions": f"-Djava.io.tmpdir={SCRATCH}",
    # Executors get their settings from the driver: no ConfigMap per application, and no right to make one
    # for the driver's ServiceAccount (helm/mlcycle/templates/spark/rbac.yaml).
    "spark.kubernetes.executor.disableConfigMap": "true",
}


def spark_image(settings: KubernetesSettings) -> str:
    if not settings.image_spark:
        raise ValueError(
            f"the task image is pinned by digest ({settings.image}): set {IMAGE_SPARK_ENV} to the digest of the "
            "Spark build (make image-spark) for the Spark steps of `engine: spark` use cases"
        )
    return settings.image_spark


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in env.items()]


def _sidecar(settings: KubernetesSettings) -> dict[str, Any]:
    """KPO's xcom sidecar (its name, command and mount, so the provider's `extract_xcom` finds it), hardened,
    bounded and from the same image as the step pods' one."""
    sidecar: dict[str, Any] = ApiClient().sanitize_for_serialization(PodDefaults.SIDECAR_CONTAINER)
    return {
        **sidecar,
        **({"image": settings.xcom_sidecar_image} if settings.xcom_sidecar_image else {}),
        "securityContext": ApiClient().sanitize_for_serialization(container_security_context()),
        "resources": SIDECAR_RESOURCES,
    }


def _pod(spec: StepSpec, settings: KubernetesSettings, role: str, cores: int, memory: str) -> dict[str, Any]:
    """What the driver and the executors share: identity, hardening, environment, writable mounts, labels."""
    image = spark_image(settings)
    serialize = ApiClient().sanitize_for_serialization
    return {
        "cores": cores,
        "memory": memory,
        "labels": {**spec.labels, **POD_LABELS, "mlcycle/spark-role": role},
        "env": _env_list({**spec.env, **pod_env(image), "PYSPARK_PYTHON": PYSPARK_PYTHON}),
        "envFrom": [
            {"configMapRef": {"name": settings.configmap}},
            *({"secretRef": {"name": name}} for name in settings.secrets),
        ],
        "volumeMounts": [
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH},
            {"name": LOCAL_DIR_VOLUME, "mountPath": LOCAL_DIR},
        ],
        "podSecurityContext": serialize(pod_security_context()),
        "securityContext": serialize(container_security_context()),
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
    }


def spark_application(spec: StepSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """The SparkApplication that runs `spec` (metadata.name and namespace are set by the operator at submit)."""
    clash = sorted(set(spec.env) & {"PYSPARK_PYTHON", *pod_env("")})
    if clash:
        raise ValueError(f"{spec.id}: the StepSpec env sets {clash}, which the Spark launcher owns")
    resources: Spark = spec.usecase.spark
    driver = _pod(spec, settings, "driver", resources.driver_cores, resources.driver_memory)
    driver["serviceAccount"] = settings.spark_service_account
    driver["volumeMounts"].append({"name": XCOM_VOLUME, "mountPath": XCOM_DIR})
    driver["sidecars"] = [_sidecar(settings)]
    executor = _pod(spec, settings, "executor", resources.executor_cores, resources.executor_memory)
    executor["serviceAccount"] = settings.service_account
    executor["instances"] = resources.executor_instances
    executor["deleteOnTermination"] = True
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"labels": {**spec.labels, **POD_LABELS}},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "sparkVersion": SPARK_VERSION,
            "image": spark_image(settings),
            "imagePullPolicy": "IfNotPresent",  # tags are immutable, production pins digests
            "mainApplicationFile": MAIN_APPLICATION_FILE,
            "arguments": list(spec.arguments),
            "sparkConf": dict(SPARK_CONF),
            # Airflow retries a failed step (spec.retries), as for every step: the operator must not as well.
            "restartPolicy": {"type": "Never"},
            "timeToLiveSeconds": KEPT_APPLICATION_TTL_S,
            "volumes": [
                {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": settings.scratch_size}},
                {"name": LOCAL_DIR_VOLUME, "emptyDir": {"sizeLimit": settings.scratch_size}},
                {"name": XCOM_VOLUME, "emptyDir": {}},
            ],
            "driver": driver,
            "executor": executor,
        },
    }


class StepSparkOperator(StepOutcomes, SparkKubernetesOperator):
    """SparkKubernetesOperator whose driver's exit code means what a step's exit code means, with the step's
    JSON result as its XCom (the driver pod's xcom sidecar)."""


def spark_operator(spec: StepSpec, *, settings: KubernetesSettings | None = None, **kwargs: Any) -> StepSparkOperator:
    """The Spark task of `spec`; `kwargs` are the BaseOperator arguments both launchers share."""
    if not spec.on_spark:
        raise ValueError(
            f"{spec.id}: {spec.step} of {spec.usecase.name} (engine {spec.usecase.engine}) is no Spark step"
        )
    settings = settings or KubernetesSettings.from_env()
    application = spark_application(spec, settings)
    operator = StepSparkOperator(
        task_id=spec.id,
        name=pod_name(spec),
        namespace=settings.namespace,
        template_spec={"spark": application},
        do_xcom_push=True,
        get_logs=True,
        log_events_on_failure=True,
        log_pod_spec_on_failure=False,
        skip_on_exit_code=[int(ExitCode.NOTHING_TO_DO)],
        startup_timeout_seconds=settings.startup_timeout,
        # Re-attach to the running driver after a worker restart instead of submitting the step twice.
        reattach_on_restart=True,
        delete_on_termination=settings.on_finish_action != "keep_pod",
        random_name_suffix=True,
        deferrable=settings.deferrable,
        **kwargs,
    )
    if operator.has_dag():
        labels = {DAG_LABEL: operator.dag_id}
        application["metadata"]["labels"].update(labels)
        for role in ("driver", "executor"):
            application["spec"][role]["labels"].update(labels)
    return operator
