"""The chart and the DAG side agree: the names Airflow's settings give the pods exist in the release, the
cleanup CronJob selects every step pod and nothing else, its budgets outlast every deadline, and the namespace
quota admits each step pod (the GPU one only where GPUs are granted)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from support.boundaries import task_namespace
from support.helm_release import NAMESPACE, Rendered, render
from support.kube_checks import CHART, pod_specs
from support.step_pods import GPU_USECASE, StepPod, airflow_env

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
_FACTOR = {None: 1.0, "m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def quantity(text: str) -> float:
    match = _QUANTITY.match(str(text))
    assert match, text
    return float(match[1]) * _FACTOR[match[2]]


def _selector(expression: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in expression.split(","))


def _cleanup_args(release: Rendered) -> dict[str, str]:
    cronjob = release.get("CronJob", "mlcycle-orphan-cleanup")
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    return {flag: value for flag, value in zip(command[2::2], command[3::2], strict=False)}


def test_airflows_settings_name_objects_of_the_release(
    default_release: Rendered, step_pods: tuple[StepPod, ...]
) -> None:
    env = airflow_env()
    assert env["MLCYCLE_NAMESPACE"] == task_namespace(default_release) != NAMESPACE
    default_release.get("ServiceAccount", env["MLCYCLE_K8S_SERVICE_ACCOUNT"])
    default_release.get("ConfigMap", env["MLCYCLE_K8S_CONFIGMAP"])
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert env["MLCYCLE_K8S_SECRETS"].split(",") == chart_values["tasks"]["credentialsSecrets"]
    for pod in step_pods:
        default_release.get("ServiceAccount", pod.spec["serviceAccountName"])
        for source in pod.base["envFrom"]:
            if "configMapRef" in source:
                default_release.get("ConfigMap", source["configMapRef"]["name"])
    # Airflow's alerts go to Alertmanager (tests/helm/test_airflow_values.py), which alone calls the receiver.
    assert "mlcycle-alert-receiver" not in env["MLCYCLE_ALERT_WEBHOOK_URL"]
    default_release.get("Service", "mlcycle-alert-receiver")


def test_the_pipeline_configmap_points_at_the_mlflow_service(default_release: Rendered) -> None:
    data = default_release.get("ConfigMap", "mlcycle-pipeline")["data"]
    service = default_release.get("Service", "mlcycle-mlflow")
    assert (
        data["MLFLOW_TRACKING_URI"]
        == f"http://mlcycle-mlflow.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    )
    assert data["MLCYCLE_STORAGE_ROOT"].startswith("s3://")


def test_the_cleanup_selects_every_step_pod_and_nothing_else(release: Rendered, step_pods: tuple[StepPod, ...]) -> None:
    selector = _selector(_cleanup_args(release)["--selector"])
    for pod in step_pods:
        assert selector.items() <= pod.pod["metadata"]["labels"].items(), pod.where
    for manifest in release.manifests:
        for name, metadata, _ in pod_specs(manifest):
            assert not selector.items() <= (metadata.get("labels") or {}).items(), f"{name} would be cleaned up"


def test_the_cleanup_budgets_outlast_every_deadline(release: Rendered, step_pods: tuple[StepPod, ...]) -> None:
    args = _cleanup_args(release)
    longest_deadline = max(p.spec["activeDeadlineSeconds"] for p in step_pods)
    assert int(args["--max-running-minutes"]) * 60 > longest_deadline
    longest_wait = max(
        p.operator["schedule_timeout_seconds"] + p.operator["startup_timeout_seconds"] for p in step_pods
    )
    assert int(args["--max-pending-minutes"]) * 60 > longest_wait


def _pod_requests(pod: StepPod) -> dict[str, float]:
    total: dict[str, float] = {}
    for container in pod.spec["containers"]:
        resources = container["resources"]
        for kind, values in (("requests", resources["requests"]), ("limits", resources.get("limits") or {})):
            for resource, value in values.items():
                key = f"{kind}.{resource}"
                total[key] = total.get(key, 0.0) + quantity(value)
    return total


def _admits(quota: dict[str, Any], pod: StepPod) -> bool:
    used = _pod_requests(pod)
    return all(used.get(key, 0.0) <= quantity(limit) for key, limit in quota.items() if key != "pods")


@pytest.mark.parametrize("values", ["default", "gpu"])
def test_the_quota_admits_every_step_pod_it_should(values: str, step_pods: tuple[StepPod, ...]) -> None:
    quota = render(values).get("ResourceQuota", "mlcycle-quota")["spec"]["hard"]
    for pod in step_pods:
        gpu = pod.usecase == GPU_USECASE and pod.step == "train"
        expected = values == "gpu" or not gpu  # a GPU step needs a namespace granted GPUs
        assert _admits(quota, pod) is expected, f"{values}: {pod.where}"
