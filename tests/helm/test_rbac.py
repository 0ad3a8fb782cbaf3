"""RBAC grants exactly what is needed: the pod-launcher Role holds the calls KubernetesPodOperator makes (read
from the installed provider's source, so a provider upgrade that needs more fails here), the cleanup Role can
list and delete pods, and the step pods' identity has no permission at all."""

from __future__ import annotations

import re
from pathlib import Path

import airflow.providers.cncf.kubernetes as provider

from support.boundaries import task_namespace
from support.helm_release import Rendered

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


def _rules(role: dict) -> set[tuple[str, str]]:
    granted = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], "core API only"
        assert "resourceNames" not in rule
        granted |= {(resource, verb) for resource in rule["resources"] for verb in rule["verbs"]}
    return granted


def test_no_cluster_wide_permission(release: Rendered) -> None:
    assert release.of_kind("ClusterRole") == release.of_kind("ClusterRoleBinding") == []


def test_no_wildcard_and_no_secret_access(release: Rendered) -> None:
    for role in release.of_kind("Role"):
        for resource, verb in _rules(role):
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
