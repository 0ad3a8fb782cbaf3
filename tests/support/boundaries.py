"""The cluster's security boundaries, evaluated offline on a rendered chart (there is no API server here):

- `permissions_of`: what a ServiceAccount may do, per namespace, through the release's Roles and RoleBindings;
- `admission_denials`: what the release's ValidatingAdmissionPolicies say about a pod a user creates, by
  evaluating their real CEL (match conditions and validations) with cel-python, the way the API server does;
- `egress_allowed`: whether the NetworkPolicies let a pod open a TCP connection to an address outside the cluster.

Shared by tests/helm (the chart's boundaries) and tests/faults/test_faults_boundaries.py (the drills).
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import celpy

from support.helm_release import Rendered

#: The namespace the step pods run in (values.yaml tasks.namespace; helm/airflow-values.yaml MLCYCLE_NAMESPACE).
TASK_NAMESPACE = "mlcycle-tasks"


def task_namespace(release: Rendered) -> str:
    return str((release.values.get("tasks") or {}).get("namespace", TASK_NAMESPACE))


def airflow_launchers(release: Rendered) -> tuple[str, list[str]]:
    """Airflow's namespace and the ServiceAccounts of it that launch the step pods."""
    airflow = release.values.get("airflow") or {}
    names = airflow.get("launcherServiceAccounts", ["airflow-worker", "airflow-triggerer"])
    return str(airflow.get("namespace", "airflow")), list(names)


def service_account_user(namespace: str, name: str) -> str:
    """The user name the API server gives a ServiceAccount's token."""
    return f"system:serviceaccount:{namespace}:{name}"


# ---- RBAC ----
def permissions_of(release: Rendered, namespace: str, name: str) -> dict[str, set[tuple[str, str]]]:
    """{namespace: {(resource, verb)}} the ServiceAccount `namespace`/`name` holds through the release's RBAC."""
    assert release.of_kind("ClusterRoleBinding") == [], "a cluster-wide grant: this helper reads Roles only"
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in release.of_kind("Role")}
    granted: dict[str, set[tuple[str, str]]] = {}
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    for binding in release.of_kind("RoleBinding"):
        if subject not in binding["subjects"]:
            continue
        where = binding["metadata"]["namespace"]
        assert binding["roleRef"]["kind"] == "Role", binding["metadata"]["name"]
        for rule in roles[(where, binding["roleRef"]["name"])]:
            granted.setdefault(where, set()).update((r, v) for r in rule["resources"] for v in rule["verbs"])
    return granted


# ---- admission (ValidatingAdmissionPolicy, CEL) ----
_CEL = celpy.Environment()


def _evaluate(expression: str, activation: dict[str, Any]) -> bool:
    program = _CEL.program(_CEL.compile(expression))
    result = program.evaluate(activation)
    assert isinstance(result, celpy.celtypes.BoolType), f"{expression!r} gave {result!r}, not a bool"
    return bool(result)


_OPERATORS = {
    "In": lambda e, labels: labels.get(e["key"]) in e["values"],
    "NotIn": lambda e, labels: labels.get(e["key"]) not in e["values"],
    "Exists": lambda e, labels: e["key"] in labels,
    "DoesNotExist": lambda e, labels: e["key"] not in labels,
}


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions, all must hold) against an object's labels."""
    selector = selector or {}
    expressions = selector.get("matchExpressions") or []
    matched = all(_OPERATORS[e["operator"]](e, labels) for e in expressions)
    return matched and (selector.get("matchLabels") or {}).items() <= labels.items()


def _selects_namespace(selector: dict[str, Any] | None, namespace: str) -> bool:
    # Namespaces carry kubernetes.io/metadata.name (set by the API server); the chart selects on it alone.
    return label_selector_matches(selector, {"kubernetes.io/metadata.name": namespace})


def _matches_pod_create(policy: dict[str, Any]) -> bool:
    return any(
        "" in rule["apiGroups"] and "v1" in rule["apiVersions"] and "pods" in rule["resources"]
        and ("CREATE" in rule["operations"] or "*" in rule["operations"])
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
    )  # fmt: skip


def admission_denials(release: Rendered, pod: dict[str, Any], username: str) -> list[str]:
    """The messages of every validation the release's policies fail for `pod` created by `username` in the pod's
    namespace ([]: admitted). A policy applies when a binding selects the namespace, its constraints match a
    pod CREATE, and all its match conditions hold, as in the API server."""
    namespace = pod["metadata"]["namespace"]
    request = {
        "operation": "CREATE",
        "namespace": namespace,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "userInfo": {"username": username},
    }
    activation = {"object": celpy.json_to_cel(pod), "request": celpy.json_to_cel(request)}
    policies = {p["metadata"]["name"]: p for p in release.of_kind("ValidatingAdmissionPolicy")}
    denials: list[str] = []
    for binding in release.of_kind("ValidatingAdmissionPolicyBinding"):
        spec = binding["spec"]
        policy = policies[spec["policyName"]]
        constraints = policy["spec"]["matchConstraints"]
        in_scope = _selects_namespace((spec.get("matchResources") or {}).get("namespaceSelector"), namespace)
        in_scope = in_scope and _selects_namespace(constraints.get("namespaceSelector"), namespace)
        if not (in_scope and _matches_pod_create(policy)):
            continue
        conditions = policy["spec"].get("matchConditions") or []
        if not all(_evaluate(c["expression"], activation) for c in conditions):
            continue
        assert "Deny" in spec["validationActions"], f"{binding['metadata']['name']} only warns or audits"
        for validation in policy["spec"]["validations"]:
            if not _evaluate(validation["expression"], activation):
                denials.append(validation["message"])
    return denials


def pod_in(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A Pod object as a client submits it."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": namespace}, "spec": spec}


def altered(pod: dict[str, Any], change: Any) -> dict[str, Any]:
    """A deep copy of `pod` after `change(copy)`: variants of a real step pod."""
    variant = copy.deepcopy(pod)
    change(variant)
    return variant


# ---- NetworkPolicy ----
def _selects_pod(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return label_selector_matches(policy["spec"]["podSelector"], labels)


def _port_matches(entry: dict[str, Any], port: int) -> bool:
    if entry.get("protocol", "TCP") != "TCP":
        return False
    if "port" not in entry:
        return True
    return int(entry["port"]) <= port <= int(entry.get("endPort", entry["port"]))


def _peer_contains(peer: dict[str, Any], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Pod and namespace selectors match pods of the cluster, never an outside address.
    block = peer.get("ipBlock")
    if not block:
        return False
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cut) for cut in block.get("except") or [])


def egress_allowed(release: Rendered, namespace: str, labels: dict[str, str], address: str, port: int) -> bool:
    """Whether a pod with `labels` in `namespace` may open TCP `address`:`port` (an address outside the cluster)
    under the release's NetworkPolicies: isolated for egress as soon as one policy selects it for Egress, then
    allowed only by a rule whose ports and peers both match."""
    target = ipaddress.ip_address(address)
    selecting = [
        p
        for p in release.of_kind("NetworkPolicy")
        if p["metadata"]["namespace"] == namespace
        and "Egress" in p["spec"].get("policyTypes", [])
        and _selects_pod(p, labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("egress") or []:
            ports_match = "ports" not in rule or any(_port_matches(e, port) for e in rule["ports"])
            peers_match = "to" not in rule or any(_peer_contains(peer, target) for peer in rule["to"])
            if ports_match and peers_match:
                return True
    return False
