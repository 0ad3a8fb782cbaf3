"""What the container fault drills (tests/faults/test_faults_containers.py) rely on in the pod runner, checked
without a container runtime: `podman kube play` (4.3) gives a container no terminationMessagePath file, so the
runner mounts one where the kubelet would, and a step's failure reason is kept as in a cluster."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from mlcycle_dev.containers.pods import TERMINATION_MESSAGE_PATH, PodRun, run_pod, runnable_pod

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


def _xcom_pod(name: str, step: str) -> dict[str, Any]:
    """A pod shaped as KPO's (a base container, the xcom sidecar, an emptyDir `xcom` shared by both)."""
    xcom = {"name": "xcom", "mountPath": "/airflow/xcom"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "xcom", "emptyDir": {}}],
            "containers": [
                {"name": "base", "image": "", "command": ["sh", "-c", step], "volumeMounts": [xcom]},
                {
                    "name": "airflow-xcom-sidecar",
                    "image": "",
                    "command": ["sh", "-c", 'trap "exit 0" INT TERM; while true; do sleep 1; done'],
                    "volumeMounts": [xcom],
                },
            ],
        },
    }


def test_two_pods_at_once_never_share_an_emptydir(engine: Any, images: Any) -> None:
    """podman 4.3 makes a pod's emptyDir a volume named as in the spec (`xcom`), which every pod with the same
    volume name then shares: a step that wrote no result would report another pod's. Each run gets its own."""
    writes = _xcom_pod(f"cfault-writes-{uuid.uuid4().hex[:6]}", 'echo \'{"pod": "one"}\' > /airflow/xcom/return.json')
    silent = _xcom_pod(f"cfault-silent-{uuid.uuid4().hex[:6]}", "true")
    local = {"task_image": images.sidecar, "sidecar_image": images.sidecar}
    second: list[PodRun] = []

    def run_the_other(container: str) -> None:
        engine.run("wait", container)  # the result is written; the first pod (its sidecar) is still up
        second.append(run_pod(engine, runnable_pod(silent, **local), {}))

    first = run_pod(engine, runnable_pod(writes, **local), {}, while_running=run_the_other)
    assert (first.exit_code, first.xcom) == (0, {"pod": "one"}), first.logs
    assert (second[0].exit_code, second[0].xcom) == (0, None), second[0].logs
