"""H7: DAG code on an Airflow worker cannot reach mlcycle's service secrets. The step pods run in their own
namespace (tasks.namespace), the only one where Airflow's launchers hold a Role; MLflow, the alert receiver and
their Secrets stay in the release namespace, where no Role is bound to the launchers (no pod creation, no exec,
no logs). In the task namespace a ValidatingAdmissionPolicy admits the launchers' pods only with the task
ServiceAccount, the task image(s) and the task Secrets: its CEL is evaluated here by cel-python
(support.boundaries), against the real step pods the DAGs build and against hostile variants of them."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from support.boundaries import (
    admission_denials,
    airflow_launchers,
    altered,
    permissions_of,
    pod_in,
    service_account_user,
    task_namespace,
)
from support.helm_release import NAMESPACE, Rendered, render, render_values
from support.kube_checks import pod_specs
from support.step_pods import StepPod

#: The Secrets of mlcycle's services (values.yaml defaults): none may reach a pod a worker creates.
SERVICE_SECRETS = ("mlcycle-mlflow-auth", "mlcycle-mlflow-db", "mlcycle-alert-receiver")


def _worker(release: Rendered) -> str:
    namespace, names = airflow_launchers(release)
    return service_account_user(namespace, names[0])


def test_the_launchers_hold_rights_in_the_task_namespace_only(release: Rendered) -> None:
    airflow, launchers = airflow_launchers(release)
    for name in launchers:
        granted = permissions_of(release, airflow, name)
        assert set(granted) == {task_namespace(release)}, f"{name} holds rights in {sorted(granted)}"
        for rights in granted.values():
            assert not {r for r, _ in rights} & {"secrets", "configmaps", "serviceaccounts/token"}, name


def test_the_services_and_their_secrets_are_outside_the_task_namespace(release: Rendered) -> None:
    tasks = task_namespace(release)
    assert tasks != NAMESPACE
    for name in ("mlcycle-mlflow", "mlcycle-alert-receiver"):
        deployment = release.get("Deployment", name)
        assert deployment["metadata"]["namespace"] == NAMESPACE, name
    # Every Secret a service pod references lives in the services namespace (a pod names Secrets of its own).
    referenced = {
        ref["name"]
        for manifest in release.manifests
        if manifest["metadata"].get("namespace") == NAMESPACE
        for _, _, spec in pod_specs(manifest)
        for container in spec["containers"]
        for ref in [
            *(e["valueFrom"]["secretKeyRef"] for e in container.get("env") or [] if "valueFrom" in e),
            *(s["secretRef"] for s in container.get("envFrom") or [] if "secretRef" in s),
        ]
    }
    assert {"mlcycle-mlflow-auth", "mlcycle-mlflow-db", "mlcycle-alert-receiver"} <= referenced


def test_the_step_pods_are_launched_into_the_task_namespace(
    default_release: Rendered, step_pods: tuple[StepPod, ...]
) -> None:
    tasks = task_namespace(default_release)
    binding = default_release.get("RoleBinding", "mlcycle-pod-launcher")
    assert binding["metadata"]["namespace"] == tasks
    assert default_release.get("ServiceAccount", "mlcycle-task")["metadata"]["namespace"] == tasks
    assert {pod.pod["metadata"]["namespace"] for pod in step_pods} == {tasks}


def test_the_task_namespace_must_differ_from_the_services_namespace() -> None:
    with pytest.raises(helm_python.HelmError) as caught:
        render_values({"tasks": {"namespace": NAMESPACE}})
    assert "tasks.namespace" in str(caught.value)


def test_the_policy_admits_every_pod_the_dags_build(default_release: Rendered, step_pods: tuple[StepPod, ...]) -> None:
    worker = _worker(default_release)
    for pod in step_pods:
        assert admission_denials(default_release, pod.pod, worker) == [], pod.where


def _secret_volume(pod: dict[str, Any], secret: str) -> None:
    pod["spec"]["volumes"].append({"name": "loot", "secret": {"secretName": secret}})


def _projected_secret(pod: dict[str, Any], secret: str) -> None:
    pod["spec"]["volumes"].append({"name": "loot", "projected": {"sources": [{"secret": {"name": secret}}]}})


def _env_from(pod: dict[str, Any], secret: str) -> None:
    pod["spec"]["containers"][0].setdefault("envFrom", []).append({"secretRef": {"name": secret}})


def _env_key(pod: dict[str, Any], secret: str) -> None:
    env = {"name": "LOOT", "valueFrom": {"secretKeyRef": {"name": secret, "key": "admin-password"}}}
    pod["spec"]["containers"][0].setdefault("env", []).append(env)


def _init_container(pod: dict[str, Any], secret: str) -> None:
    base = pod["spec"]["containers"][0]
    init = {"name": "init", "image": base["image"], "envFrom": [{"secretRef": {"name": secret}}]}
    pod["spec"]["initContainers"] = [init]


@pytest.mark.parametrize("secret", SERVICE_SECRETS)
@pytest.mark.parametrize("how", [_secret_volume, _projected_secret, _env_from, _env_key, _init_container])
def test_the_policy_rejects_a_pod_that_names_a_service_secret(
    default_release: Rendered, step_pods: tuple[StepPod, ...], how: Any, secret: str
) -> None:
    hostile = altered(step_pods[0].pod, lambda pod: how(pod, secret))
    denials = admission_denials(default_release, hostile, _worker(default_release))
    assert any("Secret" in message for message in denials), denials


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda pod: pod["spec"].update(serviceAccountName="mlcycle-orphan-cleanup"), "ServiceAccount"),
        (lambda pod: pod["spec"].pop("serviceAccountName"), "ServiceAccount"),
        (lambda pod: pod["spec"]["containers"][0].update(image="docker.io/attacker/tool:1"), "image"),
        (lambda pod: pod["spec"]["containers"][0].update(image="ghcr.io/mlcycle/mlcycle-task-evil:1"), "image"),
        (lambda pod: pod["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume"),
        (lambda pod: pod["spec"]["volumes"].append({"name": "c", "csi": {"driver": "secrets-store"}}), "volume"),
    ],
)
def test_the_policy_rejects_another_identity_image_or_volume_kind(
    default_release: Rendered, step_pods: tuple[StepPod, ...], change: Any, expected: str
) -> None:
    denials = admission_denials(default_release, altered(step_pods[0].pod, change), _worker(default_release))
    assert any(expected in message for message in denials), denials


def test_the_policy_applies_to_the_launchers_in_the_task_namespace_only(
    default_release: Rendered, step_pods: tuple[StepPod, ...]
) -> None:
    hostile = altered(step_pods[0].pod, lambda pod: _secret_volume(pod, "mlcycle-s3-admin"))
    airflow, launchers = airflow_launchers(default_release)
    for name in launchers:
        assert admission_denials(default_release, hostile, service_account_user(airflow, name)), name
    # Other creators (the Job controller of the cleanup CronJob, cluster admins) are outside its scope.
    assert admission_denials(default_release, hostile, "system:serviceaccount:kube-system:job-controller") == []
    policy = default_release.of_kind("ValidatingAdmissionPolicy")[0]
    assert policy["spec"]["failurePolicy"] == "Fail"
    binding = default_release.of_kind("ValidatingAdmissionPolicyBinding")[0]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": task_namespace(default_release)
    }


def test_the_policy_can_be_left_to_the_cluster_admins() -> None:
    rendered = render_values({"tasks": {"admissionPolicy": {"enabled": False}}})
    assert rendered.of_kind("ValidatingAdmissionPolicy") == rendered.of_kind("ValidatingAdmissionPolicyBinding") == []


def _istio_injected(pod: dict[str, Any]) -> None:
    """What Istio's injector adds before validating admission runs: a proxy sidecar, an init container, volumes."""
    proxy = "docker.io/istio/proxyv2:1.27.3"
    pod["spec"].setdefault("initContainers", []).append({"name": "istio-init", "image": proxy})
    pod["spec"]["containers"].append({"name": "istio-proxy", "image": proxy})
    pod["spec"]["volumes"] += [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
        {"name": "istio-podinfo", "downwardAPI": {"items": []}},
        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"path": "istio-token"}}]}},
    ]


def test_the_production_mesh_sidecar_is_admitted(step_pods: tuple[StepPod, ...]) -> None:
    """Mutating admission (the mesh's injector) runs first: with transport.meshMtls the policy must admit the
    proxy image it injects (KPO then stops Istio's proxy through pods/exec when the step ends)."""
    production = render("production")
    assert production.values["transport"]["meshMtls"] is True
    allowed = set(production.values["tasks"]["credentialsSecrets"])

    def as_in_production(pod: dict[str, Any]) -> None:
        # Production's Airflow settings name production's Secrets (MLCYCLE_K8S_SECRETS = tasks.credentialsSecrets).
        base = pod["spec"]["containers"][0]
        base["envFrom"] = [s for s in base["envFrom"] if "secretRef" not in s or s["secretRef"]["name"] in allowed]
        _istio_injected(pod)

    injected = altered(step_pods[0].pod, as_in_production)
    assert admission_denials(production, injected, _worker(production)) == []
    without_proxy_image = render_values(
        {
            **production.values,
            "tasks": {
                **production.values["tasks"],
                "admissionPolicy": {"enabled": True, "extraAllowedImages": ["alpine"]},
            },
        }
    )
    denials = admission_denials(without_proxy_image, injected, _worker(without_proxy_image))
    assert any("image" in d for d in denials), denials


def _executor_pod(namespace: str, application: dict[str, Any]) -> dict[str, Any]:
    """The executor pod a Spark driver creates from a SparkApplication (Spark's pod plus what the operator's
    webhook applies: identity, security contexts, environment, mounts and their volumes)."""
    spec, executor = application["spec"], application["spec"]["executor"]
    mounted = {m["name"] for m in executor["volumeMounts"]}
    container = {
        "name": "spark-kubernetes-executor",
        "image": spec["image"],
        "args": ["executor"],
        "env": executor["env"],
        "envFrom": executor["envFrom"],
        "volumeMounts": executor["volumeMounts"],
        "securityContext": executor["securityContext"],
    }
    return pod_in(
        namespace,
        {
            "serviceAccountName": executor["serviceAccount"],
            "securityContext": executor["podSecurityContext"],
            "containers": [container],
            "volumes": [v for v in spec["volumes"] if v["name"] in mounted],
        },
    )


def test_the_policy_holds_a_spark_drivers_executors_to_the_same_rules() -> None:
    """With spark.enabled a driver may create pods (its executors) in the task namespace: the policy admits the
    executors of the DAGs' SparkApplications and refuses what a compromised driver could try instead."""
    from support.spark_apps import build_spark_steps

    release = render_values({"spark": {"enabled": True}})
    tasks = task_namespace(release)
    driver = service_account_user(tasks, "mlcycle-spark-driver")
    steps = build_spark_steps()
    for step in steps:
        assert admission_denials(release, _executor_pod(tasks, step.application), driver) == [], step.where
    executor = _executor_pod(tasks, steps[0].application)
    as_driver = altered(executor, lambda p: p["spec"].update(serviceAccountName="mlcycle-spark-driver"))
    assert admission_denials(release, as_driver, driver), "an executor with the driver's API rights"
    for change in (_env_from, _secret_volume):
        hostile = altered(executor, lambda p, change=change: change(p, "mlcycle-mlflow-auth"))
        assert admission_denials(release, hostile, driver), change.__name__
    # Without spark.enabled there is no driver account, and the policy does not speak for one.
    assert admission_denials(render("default"), as_driver, driver) == []
