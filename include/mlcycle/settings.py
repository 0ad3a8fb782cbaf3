"""Per-environment settings, read from environment variables only (standard library only).

The DAG files never change between the embedded default, `make up` and production: only these
variables (and Airflow connections) do. See docs/architecture.md, "Modes".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

HOME_ENV = "MLCYCLE_HOME"
STORAGE_ROOT_ENV = "MLCYCLE_STORAGE_ROOT"
EXECUTION_MODE_ENV = "MLCYCLE_EXECUTION_MODE"
IMAGE_ENV = "MLCYCLE_IMAGE"
NAMESPACE_ENV = "MLCYCLE_NAMESPACE"
ARTIFACT_ROOT_ENV = "MLCYCLE_ARTIFACT_ROOT"

REPO_ROOT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """The one git-ignored folder holding all embedded-default state."""
    return Path(os.environ.get(HOME_ENV, REPO_ROOT / ".mlcycle")).resolve()


def storage_root() -> str:
    """Where data partitions live: a local folder (default) or `s3://bucket/prefix`."""
    return os.environ.get(STORAGE_ROOT_ENV) or str(home() / "data")


def execution_mode() -> str:
    mode = os.environ.get(EXECUTION_MODE_ENV, "local")
    if mode not in ("local", "kubernetes"):
        raise ValueError(f"{EXECUTION_MODE_ENV}={mode!r}: expected 'local' or 'kubernetes'")
    return mode


def embedded_environment(base: Path | None = None) -> dict[str, str]:
    """Environment of the embedded default: Airflow on SQLite, MLflow on SQLite, data in a local folder."""
    root = (base or home()).resolve()
    return {
        HOME_ENV: str(root),
        STORAGE_ROOT_ENV: str(root / "data"),
        ARTIFACT_ROOT_ENV: str(root / "mlflow-artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # 2-core laptops: Airflow's defaults start 32 local workers.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": os.environ.get("AIRFLOW__API__PORT", "8080"),
        # Telemetry and network look-ups fail on closed machines and slow every start.
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
    }


# ---- Kubernetes mode (read by the DAG side at parse time; see docs/deploy.md) ----
# Per-environment values, set on Airflow's components (helm/airflow-values.yaml `env`). The defaults match the
# names the chart in helm/mlcycle creates for a release called `mlcycle`.
IMAGE_CUDA_ENV = "MLCYCLE_IMAGE_CUDA"
#: The Spark build of the task image (Dockerfile `--target task-spark`: + Java 17 and the Spark entrypoint).
IMAGE_SPARK_ENV = "MLCYCLE_IMAGE_SPARK"
K8S_SERVICE_ACCOUNT_ENV = "MLCYCLE_K8S_SERVICE_ACCOUNT"
K8S_CONFIGMAP_ENV = "MLCYCLE_K8S_CONFIGMAP"
K8S_SECRETS_ENV = "MLCYCLE_K8S_SECRETS"
K8S_DEFERRABLE_ENV = "MLCYCLE_K8S_DEFERRABLE"
K8S_ON_FINISH_ACTION_ENV = "MLCYCLE_K8S_ON_FINISH_ACTION"
K8S_SCHEDULE_TIMEOUT_ENV = "MLCYCLE_K8S_SCHEDULE_TIMEOUT"
K8S_STARTUP_TIMEOUT_ENV = "MLCYCLE_K8S_STARTUP_TIMEOUT"
K8S_SCRATCH_SIZE_ENV = "MLCYCLE_K8S_SCRATCH_SIZE"
K8S_GPU_NODE_SELECTOR_ENV = "MLCYCLE_K8S_GPU_NODE_SELECTOR"
K8S_GPU_TOLERATIONS_ENV = "MLCYCLE_K8S_GPU_TOLERATIONS"
K8S_XCOM_SIDECAR_IMAGE_ENV = "MLCYCLE_K8S_XCOM_SIDECAR_IMAGE"
#: The ServiceAccount a Spark step's driver runs as: it may manage its executor pods (the chart's spark-driver Role).
K8S_SPARK_SERVICE_ACCOUNT_ENV = "MLCYCLE_K8S_SPARK_SERVICE_ACCOUNT"

DEFAULT_IMAGE = "ghcr.io/mlcycle/mlcycle-task:0.1.0"
ON_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "delete_active_pod", "keep_pod")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_TAINT = re.compile(
    r"^(?P<key>[A-Za-z0-9][A-Za-z0-9_./-]*)(=(?P<value>[A-Za-z0-9_.-]*))?:(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)$"
)
_LABEL = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9_./-]*)=(?P<value>[A-Za-z0-9_.-]*)$")


def parse_toleration(text: str) -> dict[str, str]:
    """A toleration written like the taint it tolerates (`kubectl taint` syntax): `key[=value]:Effect`.

    Without a value the toleration matches any value of the key (operator Exists), which is how GPU node
    pools are usually tainted (`nvidia.com/gpu:NoSchedule`).
    """
    match = _TAINT.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    key, value, effect = match["key"], match["value"], match["effect"]
    if value is None:
        return {"key": key, "operator": "Exists", "effect": effect}
    return {"key": key, "operator": "Equal", "value": value, "effect": effect}


def parse_node_selector(text: str) -> dict[str, str]:
    """`key=value[,key=value...]` (the `kubectl get -l` syntax, equality only) -> a nodeSelector."""
    selector: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _LABEL.match(part)
        if not match:
            raise ValueError(f"{part!r}: expected key=value")
        selector[match["key"]] = match["value"]
    return selector


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


#: "false" leaves the DAGs without their usecase.yaml deadlines. Only for `airflow dags test`: in Airflow 3.3.2 a run
#: of a DAG with a DeadlineAlert fails at its end there (`DagRun.update_state` looks the DAG's deadlines up as alert
#: ids, and `dag.test()` holds them serialized: "'dict' object has no attribute 'hex'"). The scheduler is unaffected.
DAG_DEADLINES_ENV = "MLCYCLE_DAG_DEADLINES"


def dag_deadlines_enabled() -> bool:
    """Whether the DAG factory gives the DAGs their usecase.yaml deadlines (default true; see DAG_DEADLINES_ENV)."""
    return _bool(DAG_DEADLINES_ENV, True)


def _seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError(f"{name}={raw!r}: expected a positive number of seconds")
    return int(raw)


def _parsed(name: str, default: str, parse: Callable[[str], T]) -> T:
    raw = os.environ.get(name, default)
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class KubernetesSettings:
    """What the Kubernetes launcher needs from the environment it runs in (one value per environment).

    Credentials never pass through here: only the *names* of the Kubernetes Secrets the pods load.
    """

    image: str = DEFAULT_IMAGE
    #: The CUDA build of the task image, for steps that ask for a GPU (Dockerfile VARIANT=cuda).
    image_cuda: str = DEFAULT_IMAGE + "-cuda"
    namespace: str = "mlcycle-tasks"  # the chart's tasks.namespace: never the services' namespace
    service_account: str = "mlcycle-task"
    #: Non-secret step settings (storage root, MLflow URI, region), loaded whole as environment variables.
    configmap: str = "mlcycle-pipeline"
    #: Secrets loaded whole as environment variables (S3 and MLflow client credentials).
    secrets: tuple[str, ...] = ("mlcycle-s3", "mlcycle-mlflow-client")
    deferrable: bool = False
    on_finish_action: str = "delete_pod"
    schedule_timeout: int = 600
    startup_timeout: int = 600
    scratch_size: str = "4Gi"
    gpu_node_selector: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    gpu_tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    xcom_sidecar_image: str | None = None
    #: The Spark build of the task image, for the Spark steps of an `engine: spark` use case.
    image_spark: str = DEFAULT_IMAGE + "-spark"
    #: The Spark driver's ServiceAccount (executors run as `service_account`, which has no API rights).
    spark_service_account: str = "mlcycle-spark-driver"

    @classmethod
    def from_env(cls) -> KubernetesSettings:
        """The settings of this environment; a malformed variable raises ValueError naming it."""
        default = cls()
        image = os.environ.get(IMAGE_ENV) or default.image
        cuda = os.environ.get(IMAGE_CUDA_ENV) or _cuda_tag(image)
        action = os.environ.get(K8S_ON_FINISH_ACTION_ENV, default.on_finish_action)
        if action not in ON_FINISH_ACTIONS:
            raise ValueError(f"{K8S_ON_FINISH_ACTION_ENV}={action!r}: expected one of {ON_FINISH_ACTIONS}")
        return cls(
            image=image,
            image_cuda=cuda,
            namespace=os.environ.get(NAMESPACE_ENV) or default.namespace,
            service_account=os.environ.get(K8S_SERVICE_ACCOUNT_ENV) or default.service_account,
            configmap=os.environ.get(K8S_CONFIGMAP_ENV) or default.configmap,
            secrets=_parsed(K8S_SECRETS_ENV, ",".join(default.secrets), _names),
            deferrable=_bool(K8S_DEFERRABLE_ENV, default.deferrable),
            on_finish_action=action,
            schedule_timeout=_seconds(K8S_SCHEDULE_TIMEOUT_ENV, default.schedule_timeout),
            startup_timeout=_seconds(K8S_STARTUP_TIMEOUT_ENV, default.startup_timeout),
            scratch_size=os.environ.get(K8S_SCRATCH_SIZE_ENV) or default.scratch_size,
            gpu_node_selector=_parsed(
                K8S_GPU_NODE_SELECTOR_ENV, _selector_text(default.gpu_node_selector), parse_node_selector
            ),
            gpu_tolerations=_parsed(K8S_GPU_TOLERATIONS_ENV, "nvidia.com/gpu:NoSchedule", _tolerations),
            xcom_sidecar_image=os.environ.get(K8S_XCOM_SIDECAR_IMAGE_ENV) or None,
            image_spark=os.environ.get(IMAGE_SPARK_ENV) or _variant_tag(image, "spark"),
            spark_service_account=os.environ.get(K8S_SPARK_SERVICE_ACCOUNT_ENV) or default.spark_service_account,
        )


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _tolerations(text: str) -> tuple[dict[str, str], ...]:
    return tuple(parse_toleration(t) for t in text.split(",") if t.strip())


def _selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def _cuda_tag(image: str) -> str:
    """`repo:tag` -> `repo:tag-cuda`, the Makefile's naming. A digest cannot be derived: it must be given."""
    return _variant_tag(image, "cuda")


def _variant_tag(image: str, variant: str) -> str:
    """`repo:tag` -> `repo:tag-<variant>` (`make image-cuda`, `make image-spark`); "" for an image pinned by digest."""
    if "@" in image:
        return ""  # pinned by digest: the variant's own variable must name its digest (checked when a step needs it)
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all ("repo" or "host:5000/repo")
        return f"{image}:latest-{variant}"
    return f"{image}-{variant}"
