"""Step pods for the container fault drills (tests/faults/test_faults_containers.py).

The drills reuse the task image that `make image` (or tests/containers) built from the current inputs and never
build it themselves: without it they skip and say so. Everything they create is named `cfault-*` so that a
container test running at the same time (same secret names `mlcycle-*`, same images) is never touched.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from mlcycle.settings import embedded_environment
from mlcycle_dev.containers.base_image import BaseImageError, make_sidecar
from mlcycle_dev.containers.build import built_from_these_inputs
from mlcycle_dev.containers.pods import PodRun, create_secret, run_pod, runnable_pod
from mlcycle_dev.containers.runtime import Engine, EngineUnavailable, detect
from support.step_pods import render_step_pods

PREFIX = "cfault-"
#: What the pods' Secrets hold in a cluster (the file stores here ignore them), under the drills' own names.
SECRETS = {
    "mlcycle-s3": {"AWS_ACCESS_KEY_ID": "unused-here", "AWS_SECRET_ACCESS_KEY": "unused-here"},
    "mlcycle-mlflow-client": {"MLFLOW_TRACKING_USERNAME": "unused", "MLFLOW_TRACKING_PASSWORD": "unused"},
}
#: A pod's settings: the storage and MLflow of an embedded environment under the drill's folder.
POD_SETTINGS = ("MLCYCLE_HOME", "MLCYCLE_STORAGE_ROOT", "MLCYCLE_ARTIFACT_ROOT", "MLFLOW_TRACKING_URI")


@dataclass(frozen=True)
class Images:
    engine: Engine
    task: str
    sidecar: str

    @contextlib.contextmanager
    def without_module(self, module: str) -> Iterator[str]:
        """A throw-away image: the task image with the top-level package `module` deleted from its venv."""
        name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        ref = f"localhost/{PREFIX}without-{module.replace('_', '-')}:{name}"
        # `rm -r` without -f: a package that is not where the venv keeps it fails the drill, not silently passes.
        script = f'rm -r "$VIRTUAL_ENV"/lib/python3*/site-packages/{module}'
        argv = ("run", "--name", name, "--user", "0", "--entrypoint", "/bin/sh", self.task, "-c", script)
        try:
            self.engine.run(*argv)
            self.engine.run("commit", "--quiet", name, ref)
            yield ref
        finally:
            self.engine.run("rm", "--force", name, check=False)
            self.engine.run("rmi", "--force", ref, check=False)


def session_images() -> Images:
    """The engine and the already-built task and sidecar images, or a skip that says what is missing."""
    try:
        engine = detect()
    except EngineUnavailable as exc:
        pytest.skip(f"no container runtime here: {exc}")
    if engine.name != "podman":
        pytest.skip("the pods run through `podman kube play`; this machine's engine is docker")
    task = built_from_these_inputs(engine)
    if task is None:
        pytest.skip("no task image built from the current inputs: run `make image` (the drills never build it)")
    try:
        sidecar = make_sidecar(engine)
    except BaseImageError as exc:
        pytest.skip(f"the xcom sidecar image cannot be made here: {exc}")
    probe = engine.run("run", "--rm", "--user", "10001", task, "--help", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot start a container here: {probe.stderr.strip()[-300:]}")
    return Images(engine, task, sidecar)


@dataclass(frozen=True)
class FaultPod:
    """One step's pod, as the DAG's operator builds it, made runnable here under `cfault-*` names."""

    engine: Engine
    pod: dict[str, Any]
    configmaps: Mapping[str, Mapping[str, str]]
    pod_task: Any

    def run(self, while_running: Callable[[str], None] | None = None) -> PodRun:
        for name, values in SECRETS.items():
            create_secret(self.engine, PREFIX + name, values)
        try:
            return run_pod(self.engine, self.pod, self.configmaps, while_running)
        finally:
            for name in SECRETS:
                self.engine.run("secret", "rm", PREFIX + name, check=False)


def step_pod(
    dag_id: str,
    task_id: str,
    images: Images,
    home: Path,
    *,
    task_image: str | None = None,
    termination_log: Path | None = None,
) -> FaultPod:
    """The yarnit `dag_id`.`task_id` pod on the embedded environment under `home` (mounted into the pod)."""
    (step,) = [s for s in render_step_pods(only="yarnit") if (s.dag_id, s.task_id) == (dag_id, task_id)]
    pod = runnable_pod(
        step.pod,
        task_image=task_image or images.task,
        sidecar_image=images.sidecar,
        host_paths=(home.resolve(),),
        termination_log=termination_log,
        secret_names={name: PREFIX + name for name in SECRETS},
    )
    pod["metadata"]["name"] = f"{PREFIX}{task_id}-{uuid.uuid4().hex[:8]}"
    env = embedded_environment(home)
    settings = {name: env[name] for name in POD_SETTINGS}
    settings |= {"MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false"}
    return FaultPod(images.engine, pod, {step.pod_task.configmaps[0]: settings}, step.pod_task)


def pod_outcome(pod: FaultPod, run: PodRun) -> str:
    """What the worker's StepPodOperator makes of the finished pod (the container tests' own check)."""
    from containers.test_step_pods_in_podman import pod_outcome as outcome

    return outcome(cast(Any, pod), run)
