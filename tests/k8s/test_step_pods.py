"""The pod every KubernetesPodOperator task of every DAG would submit (tests/support/step_pods.py builds them the way
production Airflow does) is schema-valid, "restricted", has resources, runs the local argv, carries no secret,
and is placed, labelled and cleaned up on purpose."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mlcycle.cli import TERMINATION_LOG, XCOM_RETURN
from mlcycle.config import STEPS, discover_usecases
from mlcycle.orchestration.kubernetes import DEADLINE_MARGIN_S, POD_ENV, SCRATCH
from mlcycle.settings import KubernetesSettings
from support.kube_checks import (
    KUBE_VERSIONS,
    credential_literals,
    hardening_problems,
    resource_problems,
    restricted_violations,
    schema_errors,
)
from support.step_pods import CANARIES, GPU_USECASE, StepPod, dag_side_env

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.fixture(scope="module")
def settings(monkeypatch_module: pytest.MonkeyPatch) -> KubernetesSettings:
    """What Airflow's components run with (helm/airflow-values.yaml), parsed by the DAG side's own code."""
    for name, value in dag_side_env().items():
        monkeypatch_module.setenv(name, value)
    return KubernetesSettings.from_env()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _by_step(step_pods: tuple[StepPod, ...], usecase: str, step: str) -> list[StepPod]:
    return [p for p in step_pods if p.usecase == usecase and p.step == step]


def test_every_step_of_every_dag_is_a_pod(step_pods: tuple[StepPod, ...]) -> None:
    built = {(p.usecase, p.step) for p in step_pods}
    for usecase in [u.name for u in discover_usecases()] + [GPU_USECASE]:
        steps = {step for name, step in built if name == usecase}
        # Every lifecycle step the DAGs run (STEPS is the config's list; report/generate are CLI-only).
        assert {"ingest", "validate", "features", "train", "evaluate", "promote", "score", "monitor"} <= steps
        assert steps <= set(STEPS), f"{usecase}: a pod runs an unknown step {steps - set(STEPS)}"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_pods_are_valid_against_the_kubernetes_schema(step_pods: tuple[StepPod, ...], version: str) -> None:
    errors = [e for p in step_pods for e in schema_errors(p.pod, version)]
    assert errors == []


def test_pods_meet_the_restricted_pod_security_standard(step_pods: tuple[StepPod, ...]) -> None:
    problems = [f"{p.where}: {v}" for p in step_pods for v in restricted_violations(p.spec, p.pod["metadata"])] + [
        f"{p.where}: {v}" for p in step_pods for v in hardening_problems(p.spec)
    ]
    assert problems == []


def test_the_xcom_sidecar_is_hardened_too(step_pods: tuple[StepPod, ...]) -> None:
    for pod in step_pods:
        names = [c["name"] for c in pod.spec["containers"]]
        assert names == ["base", "airflow-xcom-sidecar"], pod.where  # do_xcom_push: the result comes back
        sidecar = pod.spec["containers"][1]
        assert sidecar["securityContext"] == pod.base["securityContext"], pod.where


def test_every_container_has_requests_and_limits(step_pods: tuple[StepPod, ...]) -> None:
    assert [f"{p.where}: {v}" for p in step_pods for v in resource_problems(p.spec)] == []


def test_step_resources_come_from_usecase_yaml(step_pods: tuple[StepPod, ...]) -> None:
    from mlcycle.config import get_usecase

    yarnit = get_usecase("yarnit")
    for pod in step_pods:
        if pod.usecase != "yarnit":
            continue
        wanted = yarnit.resources_for(pod.step)
        resources = pod.base["resources"]
        assert resources["requests"]["cpu"] == wanted.cpu, pod.where
        assert resources["requests"]["memory"] == wanted.memory, pod.where
        assert resources["limits"]["memory"] == (wanted.memory_limit or wanted.memory), pod.where
    train = _by_step(step_pods, "yarnit", "train")[0].base["resources"]
    assert train == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "6Gi"}}


def test_the_torch_step_asks_for_a_gpu_and_lands_on_gpu_nodes(
    step_pods: tuple[StepPod, ...], settings: KubernetesSettings
) -> None:
    (train,) = [p for p in _by_step(step_pods, GPU_USECASE, "train") if p.dag_id.endswith("_training")]
    resources = train.base["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    assert train.base["image"] == settings.image_cuda != settings.image
    # The cluster's GPU nodes (MLCYCLE_K8S_GPU_*) and the use case's own pin, merged.
    assert train.spec["nodeSelector"] == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert {json.dumps(t, sort_keys=True) for t in train.spec["tolerations"]} == {
        json.dumps({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, sort_keys=True),
        json.dumps(
            {"key": "dedicated", "operator": "Equal", "value": "ml-training", "effect": "NoSchedule"}, sort_keys=True
        ),
    }


def test_only_the_gpu_step_gets_gpu_placement(step_pods: tuple[StepPod, ...], settings: KubernetesSettings) -> None:
    others = [p for p in step_pods if not (p.usecase == GPU_USECASE and p.step == "train")]
    assert others
    for pod in others:
        assert "nvidia.com/gpu" not in json.dumps(pod.base["resources"]), pod.where
        assert not pod.spec.get("nodeSelector") and not pod.spec.get("tolerations"), pod.where
        assert pod.base["image"] == settings.image, pod.where


def test_pods_run_the_local_argv(step_pods: tuple[StepPod, ...]) -> None:
    for pod in step_pods:
        argv = [*pod.base["command"], *pod.base["args"]]
        assert argv == pod.local_argv, pod.where
        assert argv[:2] == ["mlcycle", pod.step]
        assert "{{" not in " ".join(argv), f"{pod.where}: unrendered template"
        assert argv[argv.index("--partition") + 1] == "2026-09-14"


def test_no_secret_value_reaches_a_pod(step_pods: tuple[StepPod, ...]) -> None:
    """The worker's environment held credential canaries while the pods were built: none may be in a pod, and
    no credential is written literally anywhere in a pod spec."""
    for pod in step_pods:
        text = json.dumps(pod.pod)
        leaked = [name for name, value in CANARIES.items() if value in text or f'"{name}"' in text]
        assert leaked == [], f"{pod.where} carries {leaked}"
        assert credential_literals(pod.pod) == [], pod.where


def test_settings_and_credentials_come_from_the_configmap_and_secrets(
    step_pods: tuple[StepPod, ...], settings: KubernetesSettings
) -> None:
    for pod in step_pods:
        sources = pod.base["envFrom"]
        assert {"configMapRef": {"name": settings.configmap}} in sources, pod.where
        assert [s["secretRef"]["name"] for s in sources if "secretRef" in s] == list(settings.secrets), pod.where
        assert all("valueFrom" not in e for e in pod.base["env"]), pod.where


def test_pods_run_as_the_task_identity_without_api_access(
    step_pods: tuple[StepPod, ...], settings: KubernetesSettings
) -> None:
    for pod in step_pods:
        assert pod.pod["metadata"]["namespace"] == settings.namespace, pod.where
        assert pod.spec["serviceAccountName"] == settings.service_account, pod.where
        assert pod.spec["automountServiceAccountToken"] is False, pod.where


def test_pods_are_labelled_for_use_case_step_dag_and_run(step_pods: tuple[StepPod, ...]) -> None:
    for pod in step_pods:
        labels = pod.pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "mlcycle"
        assert labels["app.kubernetes.io/component"] == "step"
        assert (labels["mlcycle/usecase"], labels["mlcycle/step"], labels["mlcycle/dag"]) == (
            pod.usecase,
            pod.step,
            pod.dag_id,
        )
        # KPO's own: how it finds its pod again, and how a person finds the pods of a run.
        assert labels["dag_id"] == pod.dag_id and labels["task_id"] == pod.task_id
        assert labels["run_id"].startswith("scheduled__2026-09-14") and labels["try_number"] == "1"
        assert labels["kubernetes_pod_operator"] == "True"
        bad = {k: v for k, v in labels.items() if len(v) > 63 or not _LABEL_VALUE.match(v)}
        assert bad == {}, f"{pod.where}: invalid label values"


def test_the_read_only_root_filesystem_leaves_every_needed_path_writable(step_pods: tuple[StepPod, ...]) -> None:
    for pod in step_pods:
        mounts = {m["mountPath"] for m in pod.base["volumeMounts"]}
        assert {SCRATCH, str(XCOM_RETURN.parent)} <= mounts, pod.where  # scratch, and the step's JSON result
        env = {e["name"]: e["value"] for e in pod.base["env"]}
        for name in POD_ENV:
            assert any(env[name] == m or env[name].startswith(m + "/") for m in mounts), f"{pod.where}: {name}"
        scratch = next(v for v in pod.spec["volumes"] if v["name"] == "scratch")
        assert scratch["emptyDir"]["sizeLimit"], "an unbounded emptyDir can fill the node's disk"


def test_failure_and_cleanup_are_set_on_purpose(step_pods: tuple[StepPod, ...], settings: KubernetesSettings) -> None:
    for pod in step_pods:
        operator = pod.operator
        # delete_pod: a pod left Pending by the schedule timeout would start later and run twice (#59083).
        assert operator["on_finish_action"] == "delete_pod" == settings.on_finish_action
        assert operator["on_kill_action"] == "delete_pod"  # marking a task failed stops its pod (#37263)
        assert operator["deferrable"] is settings.deferrable is True  # production sets it (airflow-values)
        assert operator["schedule_timeout_seconds"] == settings.schedule_timeout
        assert operator["startup_timeout_seconds"] == settings.startup_timeout
        assert operator["skip_on_exit_code"] == [99] and operator["do_xcom_push"] and operator["get_logs"]
        # The failure message is the step's one-line reason: the file the CLI writes (kubelet mounts it writable
        # even on a read-only root filesystem), else the log tail when the process died before writing it.
        assert pod.base["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert pod.base.get("terminationMessagePath", "/dev/termination-log") == str(TERMINATION_LOG)
        assert operator["log_pod_spec_on_failure"] is False and operator["log_events_on_failure"] is True
        # The pod's own deadline backs up Airflow's execution_timeout, which fires first.
        timeout = operator["execution_timeout"].total_seconds()
        assert pod.spec["activeDeadlineSeconds"] == timeout + DEADLINE_MARGIN_S
        assert pod.spec["restartPolicy"] == "Never"  # a retry is Airflow's decision, not kubelet's
        assert pod.spec["terminationGracePeriodSeconds"] == 30


def test_pod_only_environment_is_the_documented_set(
    step_pods: tuple[StepPod, ...], settings: KubernetesSettings
) -> None:
    for pod in step_pods:
        env: dict[str, Any] = {e["name"]: e["value"] for e in pod.base["env"]}
        extra = {k: v for k, v in env.items() if k not in pod.local_env}
        assert extra == {**POD_ENV, "MLCYCLE_IMAGE": pod.base["image"]}, pod.where
        assert {k: env[k] for k in pod.local_env} == pod.local_env, pod.where
