"""Run a step pod, as KubernetesPodOperator submits it, with `podman kube play` (no Kubernetes API server).

The pod spec is used as built; only what a cluster would supply differently is changed:

- image names: the locally built task image and a local xcom sidecar image (no registry here);
- storage: folders of this machine mounted at the same path (hostPath), for a storage root and a file MLflow
  store that the ConfigMap names (a cluster's pods use S3 and the MLflow server instead);
- emptyDir volumes get a name of their own for each run (podman 4.3 shares one volume between every pod
  whose emptyDir has the same name; a kubelet gives each pod its own), removed after the run;
- the ConfigMap goes in the same multi-document YAML; Secrets are podman secrets (podman 4.3 resolves a pod's
  `secretRef` from `podman secret create NAME FILE`, FILE a JSON object of key -> base64(value)).

Like KPO, the step's result is read from the sidecar (`cat /airflow/xcom/return.json` through exec) once
the step's container has exited, then the pod is removed.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlcycle_dev.containers.runtime import Engine

BASE_CONTAINER = "base"
SIDECAR_CONTAINER = "airflow-xcom-sidecar"
XCOM_RETURN = "/airflow/xcom/return.json"
#: Where a container's termination message goes when its spec names no other path (Kubernetes' default).
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


class PodRunError(RuntimeError):
    """podman could not start or inspect the pod (not the step's own failure)."""


@dataclass(frozen=True)
class PodRun:
    name: str
    exit_code: int
    oom_killed: bool
    restarts: int
    memory_limit_bytes: int  # what the runtime enforced on the step's container (0: none)
    xcom: dict[str, Any] | None
    logs: str


def runnable_pod(
    pod: Mapping[str, Any],
    *,
    task_image: str,
    sidecar_image: str,
    host_paths: tuple[Path, ...] = (),
    secret_names: Mapping[str, str] | None = None,
    termination_log: Path | None = None,
) -> dict[str, Any]:
    """`pod` with local images and `host_paths` mounted at the same path in the step's container.

    `secret_names` renames the Secrets the pod references (old -> new): podman secrets are machine-wide, so two
    sessions playing pods at once each use their own names, and neither removes the other's.
    `termination_log`: a host file mounted at the step container's terminationMessagePath, as the kubelet
    mounts one; `podman kube play` (4.3) provides no such file, so without it a step's reason is not kept.
    """
    runnable: dict[str, Any] = copy.deepcopy(dict(pod))
    spec = runnable["spec"]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                source["secretRef"]["name"] = (secret_names or {}).get(
                    source["secretRef"]["name"], source["secretRef"]["name"]
                )
        for variable in container.get("env", []):
            ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                ref["name"] = (secret_names or {}).get(ref["name"], ref["name"])
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            volume["secret"]["secretName"] = (secret_names or {}).get(name, name)
    for container in spec["containers"]:
        container["image"] = task_image if container["name"] == BASE_CONTAINER else sidecar_image
    base = next(c for c in spec["containers"] if c["name"] == BASE_CONTAINER)
    mounts: list[tuple[str, str, Path]] = [("Directory", str(path), path) for path in host_paths]
    if termination_log is not None:
        mounts.append(("File", base.get("terminationMessagePath") or TERMINATION_MESSAGE_PATH, termination_log))
    for i, (kind, mount_path, path) in enumerate(mounts):
        name = f"host-{i}"
        spec.setdefault("volumes", []).append({"name": name, "hostPath": {"path": str(path), "type": kind}})
        base.setdefault("volumeMounts", []).append({"name": name, "mountPath": mount_path})
    return runnable


def manifest(pod: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]) -> str:
    """The ConfigMaps and the Pod as one multi-document YAML."""
    docs: list[Any] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)}
        for name, data in configmaps.items()
    ]
    return yaml.safe_dump_all([*docs, dict(pod)], sort_keys=False)


def create_secret(engine: Engine, name: str, values: Mapping[str, str]) -> None:
    """A podman secret that `kube play` hands to a pod's `secretRef: NAME` (replacing one of that name)."""
    engine.run("secret", "rm", name, check=False)
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(encoded, file)
        file.flush()
        engine.run("secret", "create", name, file.name)


def _inspect(engine: Engine, container: str, template: str) -> str:
    return engine.run("inspect", "--format", template, container).stdout.strip()


def run_pod(
    engine: Engine,
    pod: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, str]],
    while_running: Callable[[str], None] | None = None,
) -> PodRun:
    """Play the pod, wait for the step's container, read its result from the sidecar, remove the pod.

    `while_running(container)`, if given, is called with the step's container name once the pod has started
    and before waiting for it (a fault drill kills the container from there)."""
    name = pod["metadata"]["name"]
    base, sidecar = f"{name}-{BASE_CONTAINER}", f"{name}-{SIDECAR_CONTAINER}"
    pod, volumes = _own_empty_dirs(pod)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
        file = Path(folder) / "pod.yaml"
        file.write_text(manifest(pod, configmaps))
        # conmon, started by `kube play`, leaves files (an `oom` marker) in its working directory: not the caller's.
        played = engine.run("kube", "play", "--network", "host", str(file), check=False, cwd=Path(folder))
        if played.returncode != 0:
            raise PodRunError(f"podman kube play {name}: {played.stderr.strip()[-1000:]}")
        try:
            if while_running is not None:
                while_running(base)
            waited = engine.run("wait", base, check=False)
            if waited.returncode != 0:
                raise PodRunError(f"podman wait {base}: {waited.stderr.strip()[-500:]}")
            exit_code = int(waited.stdout.strip())
            cat = engine.run("exec", sidecar, "cat", XCOM_RETURN, check=False)
            xcom = json.loads(cat.stdout) if cat.returncode == 0 and cat.stdout.strip() else None
            oom = _inspect(engine, base, "{{.State.OOMKilled}}") == "true"
            restarts = int(_inspect(engine, base, "{{.RestartCount}}") or 0)
            memory = int(_inspect(engine, base, "{{.HostConfig.Memory}}") or 0)
            logs = engine.run("logs", base, check=False).stdout
        finally:
            engine.run("kube", "down", str(file), check=False)
            for volume in volumes:
                # Named for this run alone: one left behind (podman may already have removed it) harms nothing.
                engine.run("volume", "rm", "--force", volume, check=False)
    return PodRun(name, exit_code, oom, restarts, memory, xcom, logs)


def _own_empty_dirs(pod: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`pod` with each emptyDir volume renamed for this run alone, and those names.

    podman 4.3 makes an emptyDir a volume named as the spec names it (`xcom`, `scratch`), shared by every pod
    that uses the same name, and kept while any of them runs: a step that wrote no result would report
    another pod's. A kubelet gives each pod its own empty folder; a name of its own does the same here.
    """
    own: dict[str, Any] = copy.deepcopy(dict(pod))
    spec = own["spec"]
    renamed = {
        volume["name"]: f"{volume['name']}-{uuid.uuid4().hex[:12]}"
        for volume in spec.get("volumes", [])
        if "emptyDir" in volume
    }
    for volume in spec.get("volumes", []):
        volume["name"] = renamed.get(volume["name"], volume["name"])
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return own, list(renamed.values())


#: podman's --read-only alone still mounts tmpfs on /tmp, /var/tmp and /run; a pod's read-only root does not.
RESTRICTED = (
    "--user", "10001:10001", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
)  # fmt: skip


def run_container(
    engine: Engine, image: str, *argv: str, volumes: tuple[str, ...] = (), entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`image` under the restricted profile by hand: uid 10001, read-only root, no capabilities."""
    flags = ["--rm", *RESTRICTED, *(["--entrypoint", entrypoint] if entrypoint else [])]
    flags += [arg for volume in volumes for arg in ("--volume", volume)]
    return engine.run("run", *flags, image, *argv, check=False)
