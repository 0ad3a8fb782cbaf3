"""What the container fault drills (tests/faults/test_faults_containers.py) rely on in the pod runner, checked
without a container runtime: `podman kube play` (4.3) gives a container no terminationMessagePath file, so the
runner mounts one where the kubelet would, and a step's failure reason is kept as in a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcycle_dev.containers.pods import TERMINATION_MESSAGE_PATH, runnable_pod

POD: dict[str, Any] = {
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "base", "image": "x"}, {"name": "airflow-xcom-sidecar", "image": "y"}]},
}


def _mounts(pod: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """mountPath -> (host path, hostPath type) of the step's container."""
    volumes = {v["name"]: v["hostPath"] for v in pod["spec"].get("volumes", []) if "hostPath" in v}
    base = pod["spec"]["containers"][0]
    return {m["mountPath"]: (volumes[m["name"]]["path"], volumes[m["name"]]["type"]) for m in base["volumeMounts"]}


def test_the_termination_log_is_a_host_file_at_the_kubernetes_default_path(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    pod = runnable_pod(POD, task_image="t", sidecar_image="s", host_paths=(tmp_path,), termination_log=log)
    assert _mounts(pod) == {str(tmp_path): (str(tmp_path), "Directory"), TERMINATION_MESSAGE_PATH: (str(log), "File")}
    assert [c["image"] for c in pod["spec"]["containers"]] == ["t", "s"]
    assert "volumes" not in POD["spec"]  # the pod as built is left as it was


def test_the_termination_log_goes_where_the_container_says(tmp_path: Path) -> None:
    custom = {**POD, "spec": {"containers": [{**POD["spec"]["containers"][0], "terminationMessagePath": "/x/why"}]}}
    pod = runnable_pod(custom, task_image="t", sidecar_image="s", termination_log=tmp_path / "log")
    assert _mounts(pod) == {"/x/why": (str(tmp_path / "log"), "File")}
