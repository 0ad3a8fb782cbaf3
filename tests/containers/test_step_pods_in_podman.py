"""Every step pod of every YarnIt DAG, as KubernetesPodOperator builds it (tests/support/step_pods.py), run
with `podman kube play` under the restricted profile from the built image (issue 13, item 2).

One day (2026-09-14, the day the pods are rendered for) runs through the DAGs' steps in order, twice at
once: each step as its pod (storage root and file MLflow store on a host folder mounted into the pod, settings
from the ConfigMap, credentials from podman secrets) and as the local launcher's subprocess (LocalStepOperator,
on another root with the same landing data). Each step's later tasks are rendered from its own launcher's
earlier results, as Airflow would. Per step: the same Airflow outcome, and the same result (paths, run ids
and timings aside). A step over its memory limit is OOM-killed, reported as such, and not restarted.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import models as k8s

from mlcycle.orchestration.kubernetes import RUN_AS_USER
from mlcycle.settings import embedded_environment
from mlcycle_dev.containers.pods import PodRun, create_secret, run_pod, runnable_pod
from mlcycle_dev.containers.runtime import Engine
from support.step_pods import StepPod, render_step_pods

from .conftest import Images

USECASE = "yarnit"
DAY = dt.date(2026, 9, 14)
#: The DAGs' steps in the order Airflow runs them for one day (training, then the day's scoring, monitoring,
#: and the manual promotion DAG with its rendered parameters).
ORDER = (
    ("yarnit_training", "ingest"), ("yarnit_training", "validate"), ("yarnit_training", "features"),
    ("yarnit_training", "train"), ("yarnit_training", "evaluate"), ("yarnit_training", "promote"),
    ("yarnit_scoring", "ingest"), ("yarnit_scoring", "validate"), ("yarnit_scoring", "score"),
    ("yarnit_monitoring", "monitor"), ("yarnit_monitoring", "staleness"), ("yarnit_monitoring", "freshness"),
    ("yarnit_promotion", "promote"),
)  # fmt: skip
#: What a pod's settings are: the storage and MLflow of an embedded environment (no Airflow in a pod).
POD_SETTINGS = ("MLCYCLE_HOME", "MLCYCLE_STORAGE_ROOT", "MLCYCLE_ARTIFACT_ROOT", "MLFLOW_TRACKING_URI")
#: Credentials a pod's Secrets hold in a cluster; the file stores here ignore them.
SECRETS = {
    "mlcycle-s3": {"AWS_ACCESS_KEY_ID": "unused-here", "AWS_SECRET_ACCESS_KEY": "unused-here"},
    "mlcycle-mlflow-client": {"MLFLOW_TRACKING_USERNAME": "unused", "MLFLOW_TRACKING_PASSWORD": "unused"},
}
#: This session's names for them (podman secrets are machine-wide: another session must not replace ours).
SESSION_SECRETS = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in SECRETS}
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
ROWS_PER_DAY = "600"


@dataclasses.dataclass
class Outcome:
    exit_code: int
    result: dict[str, Any] | None
    airflow: str  # "success", or the exception Airflow's task ends with


@dataclasses.dataclass
class StepRuns:
    local: Outcome
    pod: Outcome
    run: PodRun


def _airflow_outcome(call: Any) -> str:
    try:
        call()
    except Exception as exc:  # the outcome is the exception's kind, whichever it is
        return type(exc).__name__
    return "success"


def _pod_status(run: PodRun) -> k8s.V1Pod:
    """The pod as the API server would report it after the step's container ended."""
    terminated = k8s.V1ContainerStateTerminated(
        exit_code=run.exit_code,
        reason="OOMKilled" if run.oom_killed else ("Completed" if not run.exit_code else "Error"),
    )
    status = k8s.V1ContainerStatus(
        name="base", image="", image_id="", ready=False, restart_count=run.restarts,
        state=k8s.V1ContainerState(terminated=terminated),
    )  # fmt: skip
    phase = "Succeeded" if run.exit_code == 0 else "Failed"
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=run.name), status=k8s.V1PodStatus(phase=phase, container_statuses=[status])
    )


def pod_outcome(step: StepPod, run: PodRun) -> str:
    """What the worker's StepPodOperator does with the finished pod (its own cleanup, the API calls stubbed)."""
    task = step.pod_task
    api_calls = (
        "patch_already_checked", "process_pod_deletion", "_read_pod_events", "_read_pod_container_states",
        "is_istio_enabled",  # reads the pod back from the API; no Istio sidecar here (None is "no")
    )  # fmt: skip
    for name in api_calls:
        setattr(task, name, lambda *args, **kwargs: None)
    remote = _pod_status(run)
    return _airflow_outcome(lambda: task.cleanup(remote, remote, xcom_result=run.xcom, context=None))


def run_local(step: StepPod) -> Outcome:
    """The local launcher (LocalStepOperator.execute); its exit code and parsed result are read where it hands
    them to `raise_for_exit_code` (a failed task has no XCom to read them from)."""
    from mlcycle.orchestration import operators

    seen: dict[str, Any] = {}
    original = operators.raise_for_exit_code

    def recording(code: int, result: dict[str, Any] | None, where: str) -> None:
        seen.update(code=code, result=result)
        original(code, result, where)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(operators, "raise_for_exit_code", recording)
        airflow = _airflow_outcome(lambda: step.local_task.execute(context={}))
    return Outcome(seen["code"], seen["result"], airflow)


def normalized(result: dict[str, Any] | None, roots: tuple[Path, ...]) -> Any:
    """`result` without what differs between two launchers by design: storage roots, run ids, timings."""
    text = json.dumps(result, sort_keys=True)
    for root in roots:
        text = text.replace(str(root), "<root>")
    text = _RUN_ID.sub("<run-id>", text)

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds",)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(text))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(local home, pod home), both with the same landing data; the pod's belongs to the pods' user."""
    base = tmp_path_factory.mktemp("kube-play")
    local, pods = base / "local", base / "pods"
    env = {**os.environ, **embedded_environment(local)}
    mlcycle = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "mlcycle")
    mlcycle = mlcycle if Path(mlcycle).exists() else shutil.which("mlcycle") or "mlcycle"
    start = (DAY - dt.timedelta(days=14)).isoformat()
    generate = [
        mlcycle,
        "generate",
        "--usecase",
        USECASE,
        "--start",
        start,
        "--end",
        DAY.isoformat(),
        "--rows",
        ROWS_PER_DAY,
    ]
    subprocess.run(generate, env=env, check=True, capture_output=True)
    landing = Path(env["MLCYCLE_STORAGE_ROOT"]) / USECASE / "landing"
    shutil.copytree(landing, Path(embedded_environment(pods)["MLCYCLE_STORAGE_ROOT"]) / USECASE / "landing")
    for path in [pods, *pods.rglob("*")]:
        os.chown(path, RUN_AS_USER, RUN_AS_USER)
    yield local.resolve(), pods.resolve()


def _step(pods: tuple[StepPod, ...], dag_id: str, task_id: str) -> StepPod:
    (found,) = [p for p in pods if p.dag_id == dag_id and p.task_id == task_id]
    return found


@pytest.fixture(scope="module")
def lifecycle(engine: Engine, images: Images, roots: tuple[Path, Path]) -> Iterator[dict[tuple[str, str], StepRuns]]:
    local_home, pod_home = roots
    pod_env = embedded_environment(pod_home)
    configmap = {name: pod_env[name] for name in POD_SETTINGS}
    configmap |= {"MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false"}
    for name, values in SECRETS.items():
        create_secret(engine, SESSION_SECRETS[name], values)
    mp = pytest.MonkeyPatch()
    for name, value in embedded_environment(local_home).items():
        mp.setenv(name, value)  # the local launcher's subprocesses inherit the worker's environment
    upstream_local: dict[str, dict[str, Any]] = {}
    upstream_pod: dict[str, dict[str, Any]] = {}
    runs: dict[tuple[str, str], StepRuns] = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for dag_id, task_id in ORDER:
                local_step = _step(render_step_pods(_defaults(upstream_local), only=USECASE), dag_id, task_id)
                pod_step = _step(render_step_pods(_defaults(upstream_pod), only=USECASE), dag_id, task_id)
                configmaps = {pod_step.pod_task.configmaps[0]: configmap}
                pod = runnable_pod(
                    pod_step.pod,
                    task_image=images.task,
                    sidecar_image=images.sidecar,
                    host_paths=(pod_home,),
                    secret_names=SESSION_SECRETS,
                )
                local_future = pool.submit(run_local, local_step)
                pod_run = run_pod(engine, pod, configmaps)
                local = local_future.result()
                pod_outcome_ = Outcome(pod_run.exit_code, pod_run.xcom, pod_outcome(pod_step, pod_run))
                runs[dag_id, task_id] = StepRuns(local, pod_outcome_, pod_run)
                if dag_id == "yarnit_training" and task_id in ("train", "evaluate"):
                    for upstream, outcome in ((upstream_local, local), (upstream_pod, pod_outcome_)):
                        if outcome.result:
                            upstream[task_id] = outcome.result
        yield runs
    finally:
        mp.undo()
        for name in SESSION_SECRETS.values():
            engine.run("secret", "rm", name, check=False)


def _defaults(upstream: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The tasks' upstream results so far; placeholders (those of support.step_pods) until they ran."""
    from support.step_pods import _UPSTREAM

    return {**_UPSTREAM, **upstream}


def test_the_order_covers_every_yarnit_step_pod() -> None:
    every = {(p.dag_id, p.task_id) for p in render_step_pods(only=USECASE)}
    assert every == set(ORDER)


@pytest.mark.parametrize(("dag_id", "task_id"), ORDER, ids=[f"{d}.{t}" for d, t in ORDER])
def test_the_pod_ends_as_the_local_launcher_does(
    lifecycle: dict[tuple[str, str], StepRuns], roots: tuple[Path, Path], dag_id: str, task_id: str
) -> None:
    runs = lifecycle[dag_id, task_id]
    where = f"{dag_id}.{task_id} (pod log tail: {runs.run.logs[-1500:]})"
    assert runs.pod.exit_code == runs.local.exit_code, where
    assert runs.pod.airflow == runs.local.airflow, where
    assert not runs.run.oom_killed and runs.run.restarts == 0, where
    assert runs.pod.result is not None, f"{where}: no /airflow/xcom/return.json"
    assert normalized(runs.pod.result, roots) == normalized(runs.local.result, roots), where


def test_the_lifecycle_went_through(lifecycle: dict[tuple[str, str], StepRuns]) -> None:
    """The day trained, evaluated, promoted and scored for real in the pods (not a chain of skips)."""
    outcomes = {key: runs.pod.airflow for key, runs in lifecycle.items()}
    for key in ORDER[:9]:
        assert outcomes[key] == "success", (key, lifecycle[key].run.logs[-2000:])


def test_a_step_over_its_memory_limit_is_oom_killed_and_not_restarted(
    engine: Engine, images: Images, roots: tuple[Path, Path]
) -> None:
    """A limit far under what the step needs (the same step passes with its own limit in the lifecycle above):
    the runtime enforces it, the kernel kills the step (137), the pod is not restarted (restartPolicy Never)
    and the task fails as an infrastructure error, retried a bounded number of times. podman 4.3 on cgroups
    v1 does not flag the kill as OOMKilled (kubelet does): the pod status handed to KPO says what it said."""
    step = _step(render_step_pods(only=USECASE), "yarnit_training", "features")
    pod = runnable_pod(step.pod, task_image=images.task, sidecar_image=images.sidecar, secret_names=SESSION_SECRETS)
    assert pod["spec"]["restartPolicy"] == "Never"
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    base["resources"] = {"requests": {"cpu": "100m", "memory": "48Mi"}, "limits": {"memory": "48Mi"}}
    pod["metadata"]["name"] = f"yarnit-oom-drill-{uuid.uuid4().hex[:8]}"
    for name, values in SECRETS.items():
        create_secret(engine, SESSION_SECRETS[name], values)
    try:
        run = run_pod(engine, pod, {step.pod_task.configmaps[0]: {"MLCYCLE_STORAGE_ROOT": "/tmp/data"}})
    finally:
        for name in SESSION_SECRETS.values():
            engine.run("secret", "rm", name, check=False)
    assert (run.exit_code, run.restarts, run.memory_limit_bytes) == (137, 0, 48 * 2**20), run.logs[-1000:]
    assert run.xcom is None
    assert pod_outcome(step, run) == "AirflowException"  # retried: an OOM kill is not the data's fault
    assert isinstance(step.pod_task.retries, int) and 0 < step.pod_task.retries <= 5
