"""The checkers the other tests trust must fail when they should: each rule of the "restricted" profile, the
resources rule, the credential scan and the schema are shown a pod that breaks them."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from support.kube_checks import (
    KUBE_VERSIONS,
    credential_literals,
    hardening_problems,
    resource_problems,
    restricted_violations,
    schema_errors,
)
from support.step_pods import StepPod

Mutation = Callable[[dict[str, Any]], None]


def _base(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["containers"][0]


def _sc(spec: dict[str, Any]) -> dict[str, Any]:
    return _base(spec)["securityContext"]


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "host network": (lambda s: s.update(hostNetwork=True), "host namespaces"),
    "host PID": (lambda s: s.update(hostPID=True), "host namespaces"),
    "hostPath volume": (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    "privileged": (lambda s: _sc(s).update(privileged=True), "privileged"),
    "host port": (lambda s: _base(s).update(ports=[{"containerPort": 80, "hostPort": 80}]), "host ports"),
    "escalation allowed": (lambda s: _sc(s).update(allowPrivilegeEscalation=True), "privilege escalation"),
    "escalation unset": (lambda s: _sc(s).pop("allowPrivilegeEscalation"), "privilege escalation"),
    "root allowed": (lambda s: _sc(s).update(runAsNonRoot=False), "non-root"),
    "non-root unset": (
        lambda s: (_sc(s).pop("runAsNonRoot"), s["securityContext"].pop("runAsNonRoot")),
        "non-root",
    ),
    "uid 0": (lambda s: _sc(s).update(runAsUser=0), "non-root user"),
    "seccomp unconfined": (lambda s: _sc(s).update(seccompProfile={"type": "Unconfined"}), "seccomp"),
    "seccomp unset": (
        lambda s: (_sc(s).pop("seccompProfile"), s["securityContext"].pop("seccompProfile")),
        "seccomp",
    ),
    "capabilities kept": (lambda s: _sc(s).update(capabilities={}), "capabilities"),
    "capability added": (
        lambda s: _sc(s).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        "capabilities",
    ),
    "unsafe sysctl": (
        lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "sysctls",
    ),
    "SELinux user": (lambda s: _sc(s).update(seLinuxOptions={"user": "root"}), "SELinux"),
    "proc mount": (lambda s: _sc(s).update(procMount="Unmasked"), "/proc mount"),
    "AppArmor unconfined": (lambda s: _sc(s).update(appArmorProfile={"type": "Unconfined"}), "AppArmor"),
    "nfs volume": (
        lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "volume types",
    ),
}


@pytest.fixture(scope="module")
def compliant(step_pods: tuple[StepPod, ...]) -> dict[str, Any]:
    pod = step_pods[0].pod
    assert restricted_violations(pod["spec"]) == []
    return pod


@pytest.mark.parametrize("name", MUTATIONS)
def test_the_restricted_checker_catches(compliant: dict[str, Any], name: str) -> None:
    mutate, rule = MUTATIONS[name]
    spec = copy.deepcopy(compliant["spec"])
    mutate(spec)
    violations = restricted_violations(spec)
    assert any(v.startswith(rule) for v in violations), f"{name}: {violations}"


def test_the_hardening_and_resource_checkers_catch(compliant: dict[str, Any]) -> None:
    spec = copy.deepcopy(compliant["spec"])
    _sc(spec)["readOnlyRootFilesystem"] = False
    del _base(spec)["resources"]["limits"]
    assert hardening_problems(spec) == ["container 'base': readOnlyRootFilesystem must be true"]
    assert resource_problems(spec) == ["container 'base': no limits.memory"]


def test_the_credential_scan_catches(compliant: dict[str, Any]) -> None:
    pod = copy.deepcopy(compliant)
    _base(pod["spec"])["env"].append({"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2"})
    _base(pod["spec"])["env"].append({"name": "DB", "value": "postgresql://u:pw@db/mlflow"})
    _base(pod["spec"])["env"].append({"name": "AWS_ACCESS_KEY_ID", "value": "AKIAABCDEFGHIJKLMNOP"})
    found = credential_literals(pod)
    count = len(_base(pod["spec"])["env"])
    flagged = {int(re.search(r"\.env\[(\d+)\]", f)[1]) for f in found}  # type: ignore[index]
    assert flagged == {count - 3, count - 2, count - 1}, found
    assert "MLFLOW_TRACKING_PASSWORD has a literal value" in found[0]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_schema_check_catches_a_typo_and_a_wrong_type(compliant: dict[str, Any], version: str) -> None:
    typo = copy.deepcopy(compliant)
    _base(typo["spec"])["securityContex"] = {}
    assert "'securityContex' was unexpected" in schema_errors(typo, version)[0]
    wrong = copy.deepcopy(compliant)
    wrong["spec"]["activeDeadlineSeconds"] = "1h"
    assert "spec.activeDeadlineSeconds" in schema_errors(wrong, version)[0]
