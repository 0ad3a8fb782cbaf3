"""RBAC grants exactly what is needed: the pod-launcher Role holds the calls KubernetesPodOperator makes (read
from the installed provider's source, so a provider upgrade that needs more fails here), the cleanup Role can
list and delete pods, and the step pods' identity has no permission at all."""

from __future__ import annotations

import re
from pathlib import Path

import airflow.providers.cncf.kubernetes as provider
import pytest

from support.boundaries import task_namespace
from support.helm_release import Rendered, render

#: Kubernetes client calls -> the (resource, verb) RBAC checks for them.
CALLS = {
    "create_namespaced_pod": {("pods", "create")},
    "read_namespaced_pod": {("pods", "get")},
    "list_namespaced_pod": {("pods", "list")},
    "patch_namespaced_pod": {("pods", "patch")},
    "delete_namespaced_pod": {("pods", "delete")},
    "read_namespaced_pod_log": {("pods/log", "get")},
    # kubernetes.stream opens a WebSocket (GET); API servers with AuthorizePodWebsocketUpgradeCreatePermission
    # (on by default since 1.35) also check `create`.
    "connect_get_namespaced_pod_exec": {("pods/exec", "get"), ("pods/exec", "create")},
    "list_namespaced_event": {("events", "list")},
}
#: The sources of KubernetesPodOperator's path (sync and deferrable); not the executor's, Job's or Spark's.
POD_PATH = ("operators/pod.py", "utils/pod_manager.py", "hooks/kubernetes.py", "triggers/pod.py")


def needed_by_kpo() -> set[tuple[str, str]]:
    root = Path(provider.__file__).parent
    source = "\n".join((root / path).read_text() for path in POD_PATH)
    calls = set(
        re.findall(r"\b((?:create|read|list|patch|delete|replace|connect_\w+?)_namespaced_(?:pod|event)\w*)", source)
    )
    unknown = calls - set(CALLS)
    assert not unknown, f"the provider makes calls this test does not map yet: {sorted(unknown)}"
    needed = set().union(*(CALLS[c] for c in calls))
    # The deferrable trigger watches the pod's events (Watch().stream(list_namespaced_event)).
    if re.search(r"\.stream\(\s*\w+\.list_namespaced_event", source):
        needed.add(("events", "watch"))
    return needed


#: Custom-object client calls of SparkKubernetesOperator's path -> (resource, verb) on SparkApplications.
SPARK_CALLS = {
    "create_namespaced_custom_object": {("sparkapplications", "create")},
    "get_namespaced_custom_object": {("sparkapplications", "get")},
    "get_namespaced_custom_object_status": {("sparkapplications/status", "get")},
    "delete_namespaced_custom_object": {("sparkapplications", "delete")},
}
SPARK_PATH = ("operators/spark_kubernetes.py", "operators/custom_object_launcher.py")
SPARK_GROUP = "sparkoperator.k8s.io"


def needed_by_the_spark_operator() -> set[tuple[str, str]]:
    root = Path(provider.__file__).parent
    source = "\n".join((root / path).read_text() for path in SPARK_PATH)
    calls = set(re.findall(r"\b((?:create|get|list|patch|delete|replace|watch)_namespaced_custom_object\w*)", source))
    unknown = calls - set(SPARK_CALLS)
    assert not unknown, f"the provider makes calls this test does not map yet: {sorted(unknown)}"
    return set().union(*(SPARK_CALLS[c] for c in calls))


def _rules(role: dict, group: str = "") -> set[tuple[str, str]]:
    granted = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [group], f"{role['metadata']['name']}: API group {group or 'core'} only"
        assert "resourceNames" not in rule
        granted |= {(resource, verb) for resource in rule["resources"] for verb in rule["verbs"]}
    return granted


def test_no_cluster_wide_permission(release: Rendered) -> None:
    assert release.of_kind("ClusterRole") == release.of_kind("ClusterRoleBinding") == []


def test_no_wildcard_and_no_secret_access(release: Rendered) -> None:
    for role in release.of_kind("Role"):
        group = SPARK_GROUP if role["metadata"]["name"] == "mlcycle-spark-launcher" else ""
        for resource, verb in _rules(role, group):
            assert "*" not in (resource, verb), role["metadata"]["name"]
            assert resource not in ("secrets", "configmaps", "serviceaccounts/token"), role["metadata"]["name"]


def test_the_pod_launcher_role_is_exactly_what_kpo_calls(release: Rendered) -> None:
    needed = needed_by_kpo()
    assert ("pods", "create") in needed and ("pods/exec", "get") in needed  # the scan found the calls
    assert _rules(release.get("Role", "mlcycle-pod-launcher")) == needed


def test_the_pod_launcher_is_bound_to_airflows_launchers_only(release: Rendered) -> None:
    binding = release.get("RoleBinding", "mlcycle-pod-launcher")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlcycle-pod-launcher",
    }
    airflow = release.values.get("airflow") or {}
    names = airflow.get("launcherServiceAccounts", ["airflow-worker", "airflow-triggerer"])
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": name, "namespace": airflow.get("namespace", "airflow")} for name in names
    ]


def test_the_cleanup_role_lists_and_deletes_pods_only(release: Rendered) -> None:
    assert _rules(release.get("Role", "mlcycle-orphan-cleanup")) == {("pods", "list"), ("pods", "delete")}
    binding = release.get("RoleBinding", "mlcycle-orphan-cleanup")
    tasks = task_namespace(release)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlcycle-orphan-cleanup", "namespace": tasks}]


def test_the_step_identity_has_no_permission(release: Rendered) -> None:
    subjects = [s["name"] for b in release.of_kind("RoleBinding") for s in b["subjects"]]
    assert "mlcycle-task" not in subjects
    assert release.get("ServiceAccount", "mlcycle-task")["automountServiceAccountToken"] is False


def test_spark_rbac_only_when_asked_for(default_release: Rendered, release: Rendered) -> None:
    assert [r for r in default_release.of_kind("Role") if "spark" in r["metadata"]["name"]] == []
    enabled = (release.values.get("spark") or {}).get("enabled", False)
    assert bool([r for r in release.of_kind("Role") if "spark" in r["metadata"]["name"]]) is enabled


@pytest.fixture(scope="module")
def spark_release() -> Rendered:
    """The production values set: the one with spark.enabled."""
    release = render("production")
    assert release.values["spark"]["enabled"] is True
    return release


def test_the_spark_launcher_role_is_exactly_what_the_spark_operator_calls(spark_release: Rendered) -> None:
    """Airflow's launchers create, poll and delete SparkApplications (the calls read from the provider's source);
    the driver pod itself goes through the pod-launcher Role, in the same namespace."""
    release = spark_release
    needed = needed_by_the_spark_operator()
    assert ("sparkapplications", "create") in needed and ("sparkapplications", "delete") in needed
    role = release.get("Role", "mlcycle-spark-launcher")
    assert role["metadata"]["namespace"] == task_namespace(release)
    assert _rules(role, SPARK_GROUP) == needed
    binding = release.get("RoleBinding", "mlcycle-spark-launcher")
    assert binding["subjects"] == release.get("RoleBinding", "mlcycle-pod-launcher")["subjects"]


def test_the_spark_driver_manages_pods_and_services_only_and_alone(spark_release: Rendered) -> None:
    release = spark_release
    tasks = task_namespace(release)
    role = release.get("Role", "mlcycle-spark-driver")
    assert {resource for resource, _ in _rules(role)} == {"pods", "services"}
    binding = release.get("RoleBinding", "mlcycle-spark-driver")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlcycle-spark-driver", "namespace": tasks}]
    account = release.get("ServiceAccount", "mlcycle-spark-driver")
    assert account["automountServiceAccountToken"] is True and account["metadata"]["namespace"] == tasks
    # Airflow names the same account for the drivers (helm/airflow-values.yaml, read by mlcycle.settings).
    from support.step_pods import airflow_env

    assert airflow_env()["MLCYCLE_K8S_SPARK_SERVICE_ACCOUNT"] == "mlcycle-spark-driver"
