"""Offline checks of Kubernetes objects, shared by tests/k8s (the pods the DAGs build) and tests/helm (the chart).

- `schema_errors`: the Kubernetes OpenAPI schema (kubernetes-validate, strict: unknown fields are errors);
- `restricted_violations`: the Pod Security Standards "restricted" profile (which includes "baseline"), as
  written in https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version latest);
- `resource_problems`, `credential_literals`, `pod_specs`: what this project adds on top.

Objects are plain dicts in the API's JSON form (camelCase), as `kubectl` would submit them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mlcycle"


def chart_min_kube_version() -> str:
    """The minimum the chart declares (Chart.yaml kubeVersion: ">=X.Y.Z-0") as X.Y."""
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.match(r"^>=\s*(\d+\.\d+)", declared)
    assert match, f"kubeVersion {declared!r} should read >=X.Y.Z"
    return match[1]


#: Validated against the oldest Kubernetes the chart supports and the newest the schemas know.
KUBE_VERSIONS = (chart_min_kube_version(), ".".join(kubernetes_validate.latest_version().split(".")[:2]))


def serialize(obj: Any) -> dict[str, Any]:
    """A kubernetes-client model object as the JSON the API server receives."""
    from kubernetes.client import ApiClient

    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return data


def schema_errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Readable schema errors of one object ([] when valid)."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "<root>"
        return [f"{manifest['kind']}/{manifest['metadata'].get('name')} (Kubernetes {version}): {where}: {exc.message}"]
    return []


# ---- pods inside workloads ----
def pod_specs(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, pod metadata, pod spec) of every pod a manifest creates."""
    kind, name = manifest["kind"], f"{manifest['kind']}/{manifest['metadata']['name']}"
    if kind == "Pod":
        yield name, manifest["metadata"], manifest["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = manifest["spec"]["template"]
        yield name, template.get("metadata") or {}, template["spec"]
    elif kind == "CronJob":
        template = manifest["spec"]["jobTemplate"]["spec"]["template"]
        yield name, template.get("metadata") or {}, template["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *spec["containers"], *(spec.get("ephemeralContainers") or [])]


# ---- Pod Security Standards: restricted ----
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def restricted_violations(spec: dict[str, Any], metadata: dict[str, Any] | None = None) -> list[str]:
    """Every rule of the "restricted" profile `spec` breaks, one readable line each ([] when compliant)."""
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = all_containers(spec)

    # -- baseline --
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"host namespaces: spec.{field} must be unset or false")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("HostProcess: spec.securityContext.windowsOptions.hostProcess must be false")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            out.append(f"hostPath volumes: volume {volume['name']!r} is a hostPath")
    if pod_sc.get("seccompProfile", {}).get("type") == "Unconfined":
        out.append("seccomp: spec.securityContext.seccompProfile.type must not be Unconfined")
    out += _selinux("spec.securityContext", pod_sc)
    out += _apparmor("spec.securityContext", pod_sc)
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in _SAFE_SYSCTLS:
            out.append(f"sysctls: {sysctl['name']} is not in the safe set")
    for annotation, value in ((metadata or {}).get("annotations") or {}).items():
        if annotation.startswith("container.apparmor.security.beta.kubernetes.io/"):
            if value != "runtime/default" and not value.startswith("localhost/"):
                out.append(f"AppArmor: annotation {annotation}={value}")

    # -- restricted --
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            out.append(f"volume types: volume {volume['name']!r} is {sorted(kinds)}")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    if pod_sc.get("runAsUser") == 0:
        out.append("non-root user: spec.securityContext.runAsUser must not be 0")

    for container in containers:
        where = f"container {container['name']!r}"
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"privileged: {where} is privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"HostProcess: {where}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"host ports: {where} uses hostPort {port['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"/proc mount: {where} procMount must be Default")
        out += _selinux(where, sc)
        out += _apparmor(where, sc)
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"privilege escalation: {where} must set allowPrivilegeEscalation: false")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot") is True):
            out.append(f"non-root: {where} must run with runAsNonRoot: true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"non-root user: {where} runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined" or not (pod_seccomp or seccomp in ("RuntimeDefault", "Localhost")):
            out.append(f"seccomp: {where} needs seccompProfile RuntimeDefault or Localhost (pod or container)")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            out.append(f"capabilities: {where} must drop ALL")
        added = set(capabilities.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            out.append(f"capabilities: {where} may add only NET_BIND_SERVICE, adds {sorted(added)}")
        if added - _BASELINE_CAPABILITIES:
            out.append(f"capabilities (baseline): {where} adds {sorted(added - _BASELINE_CAPABILITIES)}")
    return out


def _selinux(where: str, sc: dict[str, Any]) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    out = []
    if options.get("type", "") not in _SELINUX_TYPES:
        out.append(f"SELinux: {where} type {options['type']!r}")
    if options.get("user") or options.get("role"):
        out.append(f"SELinux: {where} must not set user or role")
    return out


def _apparmor(where: str, sc: dict[str, Any]) -> list[str]:
    profile = (sc.get("appArmorProfile") or {}).get("type")
    if profile not in (None, "RuntimeDefault", "Localhost"):
        return [f"AppArmor: {where} appArmorProfile {profile!r}"]
    return []


# ---- what this project requires on top ----
def hardening_problems(spec: dict[str, Any]) -> list[str]:
    """Beyond "restricted": read-only root filesystem everywhere, and each writable path mounted."""
    out = []
    for container in all_containers(spec):
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            out.append(f"container {container['name']!r}: readOnlyRootFilesystem must be true")
    return out


def resource_problems(spec: dict[str, Any]) -> list[str]:
    """Every container requests CPU and memory and limits memory (the namespace quota counts limits.memory)."""
    out = []
    for container in all_containers(spec):
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests]
        missing += [] if "memory" in limits else ["limits.memory"]
        if missing:
            out.append(f"container {container['name']!r}: no {', '.join(missing)}")
    return out


CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
#: Variables that hold the *names* of Secrets (MLCYCLE_K8S_SECRETS), not their content.
SECRET_NAMES = re.compile(r"(_SECRETS|_SECRET_NAMES?)$")
#: Values that are credentials whatever their key: AWS access key ids, private keys, URIs with a password.
CREDENTIAL_VALUE = re.compile(r"(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/\s:@]*:[^/\s@]+@)")


def credential_literals(obj: Any, path: str = "") -> list[str]:
    """Places in `obj` where a credential is written literally: an env var whose name says credential given
    a literal `value` (instead of valueFrom.secretKeyRef / envFrom), or a credential-shaped string."""
    out: list[str] = []
    if isinstance(obj, dict):
        name = obj.get("name")
        if (
            isinstance(name, str)
            and obj.get("value")
            and CREDENTIAL_NAME.search(name)
            and not SECRET_NAMES.search(name)
        ):
            out.append(f"{path}: env {name} has a literal value (use valueFrom.secretKeyRef)")
        for key, value in obj.items():
            out += credential_literals(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for index, item in enumerate(obj):
            out += credential_literals(item, f"{path}[{index}]")
    elif isinstance(obj, str):
        found = CREDENTIAL_VALUE.search(obj)
        if found:
            out.append(f"{path}: looks like a credential ({found[0][:12]}...)")
    return out
