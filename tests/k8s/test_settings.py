"""The Kubernetes settings channel (environment variables of Airflow's components): defaults that match the
chart, readable errors for malformed values, and the image rules for GPU steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlcycle.config import Resources, UseCase, load_usecase
from mlcycle.settings import (
    DEFAULT_IMAGE,
    KubernetesSettings,
    parse_node_selector,
    parse_toleration,
)
from support.step_pods import gpu_usecase_dir

K8S_ENV = (
    "MLCYCLE_IMAGE",
    "MLCYCLE_IMAGE_CUDA",
    "MLCYCLE_NAMESPACE",
    "MLCYCLE_K8S_SERVICE_ACCOUNT",
    "MLCYCLE_K8S_CONFIGMAP",
    "MLCYCLE_K8S_SECRETS",
    "MLCYCLE_K8S_DEFERRABLE",
    "MLCYCLE_K8S_ON_FINISH_ACTION",
    "MLCYCLE_K8S_SCHEDULE_TIMEOUT",
    "MLCYCLE_K8S_STARTUP_TIMEOUT",
    "MLCYCLE_K8S_SCRATCH_SIZE",
    "MLCYCLE_K8S_GPU_NODE_SELECTOR",
    "MLCYCLE_K8S_GPU_TOLERATIONS",
    "MLCYCLE_K8S_XCOM_SIDECAR_IMAGE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in K8S_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_name_what_the_chart_creates(clean_env: pytest.MonkeyPatch) -> None:
    settings = KubernetesSettings.from_env()
    assert settings == KubernetesSettings()
    chart_tasks = yaml.safe_load((Path(__file__).parents[2] / "helm" / "mlcycle" / "values.yaml").read_text())["tasks"]
    assert settings.namespace == chart_tasks["namespace"]  # the task namespace, never the services' (H7)
    assert (settings.namespace, settings.service_account, settings.configmap) == (
        "mlcycle-tasks",
        "mlcycle-task",
        "mlcycle-pipeline",
    )
    assert settings.image == DEFAULT_IMAGE and settings.image_cuda == DEFAULT_IMAGE + "-cuda"
    assert settings.on_finish_action == "delete_pod" and settings.deferrable is False
    assert settings.gpu_tolerations == ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


def test_every_setting_is_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    values = {
        "MLCYCLE_IMAGE": "registry.example/task:1.2.3",
        "MLCYCLE_NAMESPACE": "ml-prod",
        "MLCYCLE_K8S_SERVICE_ACCOUNT": "steps",
        "MLCYCLE_K8S_CONFIGMAP": "pipeline",
        "MLCYCLE_K8S_SECRETS": " s3 , mlflow ,",
        "MLCYCLE_K8S_DEFERRABLE": "TRUE",
        "MLCYCLE_K8S_ON_FINISH_ACTION": "delete_succeeded_pod",
        "MLCYCLE_K8S_SCHEDULE_TIMEOUT": "1200",
        "MLCYCLE_K8S_STARTUP_TIMEOUT": "300",
        "MLCYCLE_K8S_SCRATCH_SIZE": "10Gi",
        "MLCYCLE_K8S_GPU_NODE_SELECTOR": "pool=gpu,accelerator=h100",
        "MLCYCLE_K8S_GPU_TOLERATIONS": "nvidia.com/gpu:NoSchedule,pool=gpu:NoExecute",
        "MLCYCLE_K8S_XCOM_SIDECAR_IMAGE": "registry.example/alpine:3.24.2",
    }
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = KubernetesSettings.from_env()
    assert settings.image_cuda == "registry.example/task:1.2.3-cuda"
    assert (settings.namespace, settings.service_account, settings.configmap) == ("ml-prod", "steps", "pipeline")
    assert settings.secrets == ("s3", "mlflow")
    assert settings.deferrable is True and settings.on_finish_action == "delete_succeeded_pod"
    assert (settings.schedule_timeout, settings.startup_timeout, settings.scratch_size) == (1200, 300, "10Gi")
    assert settings.gpu_node_selector == {"pool": "gpu", "accelerator": "h100"}
    assert settings.gpu_tolerations[1] == {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}
    assert settings.xcom_sidecar_image == "registry.example/alpine:3.24.2"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLCYCLE_K8S_DEFERRABLE", "maybe", "MLCYCLE_K8S_DEFERRABLE='maybe': expected true or false"),
        ("MLCYCLE_K8S_ON_FINISH_ACTION", "delete_everything", "MLCYCLE_K8S_ON_FINISH_ACTION='delete_everything'"),
        ("MLCYCLE_K8S_SCHEDULE_TIMEOUT", "10m", "MLCYCLE_K8S_SCHEDULE_TIMEOUT='10m': expected a positive number"),
        ("MLCYCLE_K8S_STARTUP_TIMEOUT", "0", "MLCYCLE_K8S_STARTUP_TIMEOUT='0'"),
        ("MLCYCLE_K8S_GPU_TOLERATIONS", "nvidia.com/gpu", "MLCYCLE_K8S_GPU_TOLERATIONS: 'nvidia.com/gpu': expected"),
        ("MLCYCLE_K8S_GPU_NODE_SELECTOR", "gpu", "MLCYCLE_K8S_GPU_NODE_SELECTOR: 'gpu': expected key=value"),
    ],
)
def test_a_malformed_setting_is_named_in_the_error(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValueError) as caught:
        KubernetesSettings.from_env()
    assert message in str(caught.value)


def test_toleration_and_selector_syntax() -> None:
    assert parse_toleration("a/b:NoSchedule") == {"key": "a/b", "operator": "Exists", "effect": "NoSchedule"}
    assert parse_toleration("k=v:PreferNoSchedule")["operator"] == "Equal"
    for bad in ("k=v", "k:Sometimes", ":NoSchedule", "k v:NoSchedule"):
        with pytest.raises(ValueError):
            parse_toleration(bad)
    assert parse_node_selector("") == {}
    assert parse_node_selector("a=1, b/c=2") == {"a": "1", "b/c": "2"}


def test_usecase_gpu_placement_is_validated() -> None:
    Resources(gpu=1, gpu_tolerations=["dedicated=ml:NoSchedule"], gpu_node_selector={"pool": "gpu"})
    with pytest.raises(ValueError, match="expected key"):
        Resources(gpu=1, gpu_tolerations=["dedicated"])
    with pytest.raises(ValueError, match="expected key=value"):
        Resources(gpu=1, gpu_node_selector={"not a label": "x"})


def test_an_image_pinned_by_digest_needs_an_explicit_cuda_image(
    clean_env: pytest.MonkeyPatch, yarnit_gpu: UseCase
) -> None:
    """A digest cannot be turned into the CUDA build's digest: building the GPU step says so, the others build."""
    from mlcycle.orchestration.kubernetes import pod_operator
    from mlcycle.orchestration.spec import StepSpec

    digest = "ghcr.io/mlcycle/mlcycle-task@sha256:" + "a" * 64
    clean_env.setenv("MLCYCLE_IMAGE", digest)
    settings = KubernetesSettings.from_env()
    assert settings.image_cuda == ""
    assert pod_operator(StepSpec("ingest", yarnit_gpu), settings=settings).image == digest
    with pytest.raises(ValueError, match="MLCYCLE_IMAGE_CUDA"):
        pod_operator(StepSpec("train", yarnit_gpu), settings=settings)
    clean_env.setenv("MLCYCLE_IMAGE_CUDA", digest.replace("a" * 64, "b" * 64))
    cuda = pod_operator(StepSpec("train", yarnit_gpu), settings=KubernetesSettings.from_env())
    assert cuda.image.endswith("b" * 64)


@pytest.fixture
def yarnit_gpu(tmp_path: Path) -> UseCase:
    """yarnit training the torch MLP on one GPU (the same variant tests/support/step_pods.py builds)."""
    return load_usecase(gpu_usecase_dir(tmp_path) / "usecase.yaml")
