"""The SparkApplication each Spark step of an `engine: spark` use case submits in kubernetes mode (rendered from the
DAGs by tests/support/spark_apps.py): valid for the Spark operator's CRD, hardened like the step pods, sized from
`spark:`, running the local argv, no secret inline, its result coming back as the task's XCom, and its driver's
exit code mapped to the same Airflow outcome as the local launcher's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from kubernetes.client import models as k8s

from mlcycle.cli import XCOM_RETURN
from mlcycle.exitcodes import ExitCode
from mlcycle.orchestration.kubernetes import POD_ONLY_ENV, SCRATCH
from mlcycle.settings import KubernetesSettings
from mlcycle.specs.names import SPARK_STEPS
from support.asyncio_run import in_fresh_thread
from support.kube_checks import REPO, credential_literals, hardening_problems, restricted_violations
from support.spark_apps import SPARK_RESOURCES, SparkStep, build_spark_steps
from support.step_pods import CANARIES, dag_side_env

CRD_SUBSET = REPO / "tests" / "fixtures" / "spark" / "sparkapplication-v1beta2-subset.json"
ROLES = ("driver", "executor")


@pytest.fixture(scope="module")
def spark_steps() -> tuple[SparkStep, ...]:
    return build_spark_steps()


@pytest.fixture(scope="module")
def settings() -> KubernetesSettings:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in dag_side_env().items():
            mp.setenv(name, value)
        return KubernetesSettings.from_env()


def _env(part: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in part["env"]}


def test_the_spark_steps_and_only_they_are_spark_applications(spark_steps: tuple[SparkStep, ...]) -> None:
    from mlcycle.orchestration.kubernetes import StepPodOperator
    from mlcycle.orchestration.spark import StepSparkOperator

    assert {(s.dag_id, s.step) for s in spark_steps} == {
        ("yarnit_spark_training", "validate"),
        ("yarnit_spark_scoring", "validate"),
        ("yarnit_spark_scoring", "score"),
        ("yarnit_spark_monitoring", "monitor"),
    }
    assert {s.step for s in spark_steps} == {step.value for step in SPARK_STEPS}
    # Every other step of the same DAGs stays a pod (training is single-node).
    for dag in {s.task.dag for s in spark_steps}:
        for task in dag.tasks:
            if task.task_id in {step.value for step in SPARK_STEPS}:
                assert isinstance(task, StepSparkOperator), f"{dag.dag_id}.{task.task_id}"
            elif task.task_id in ("ingest", "features", "train", "evaluate", "promote", "freshness"):
                assert isinstance(task, StepPodOperator), f"{dag.dag_id}.{task.task_id}"


def test_applications_are_valid_for_the_spark_operator_crd(spark_steps: tuple[SparkStep, ...]) -> None:
    schema = json.loads(CRD_SUBSET.read_text())
    for step in spark_steps:
        jsonschema.validate(step.application, schema)
        assert step.application["apiVersion"] == "sparkoperator.k8s.io/v1beta2", step.where
        assert step.application["kind"] == "SparkApplication", step.where
        assert step.application["metadata"]["namespace"] == "mlcycle-tasks", step.where


def test_the_crd_subset_refuses_a_field_the_operator_does_not_know(spark_steps: tuple[SparkStep, ...]) -> None:
    """The API server drops unknown fields of a CRD silently: the fixture makes them errors, so a misspelt
    hardening field (here `podSecurityContex`) cannot vanish unnoticed."""
    schema = json.loads(CRD_SUBSET.read_text())
    application = json.loads(json.dumps(spark_steps[0].application))
    application["spec"]["driver"]["podSecurityContex"] = application["spec"]["driver"].pop("podSecurityContext")
    with pytest.raises(jsonschema.ValidationError, match="podSecurityContex"):
        jsonschema.validate(application, schema)


@pytest.mark.parametrize("role", ROLES)
def test_driver_and_executors_meet_the_restricted_profile(spark_steps: tuple[SparkStep, ...], role: str) -> None:
    problems = [
        f"{s.where} {role}: {p}"
        for s in spark_steps
        for p in [*restricted_violations(s.pod_spec(role)), *hardening_problems(s.pod_spec(role))]
    ]
    assert problems == []
    for step in spark_steps:
        pod = step.pod_spec(role)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        # Every writable path is an emptyDir: /tmp (HOME, TMPDIR, the JVM's tmpdir) and Spark's local dir.
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts[SCRATCH] and all("emptyDir" in volumes[name] for name in mounts.values()), step.where
        assert any(name.startswith("spark-local-dir-") for name in mounts.values()), step.where
        assert all(volumes[name]["emptyDir"].get("sizeLimit") for name in mounts.values() if name != "xcom")


def test_resources_identity_and_image_come_from_usecase_and_settings(
    spark_steps: tuple[SparkStep, ...], settings: KubernetesSettings
) -> None:
    for step in spark_steps:
        driver, executor = step.spec["driver"], step.spec["executor"]
        assert (driver["cores"], driver["memory"]) == (
            SPARK_RESOURCES["driver_cores"],
            SPARK_RESOURCES["driver_memory"],
        )
        assert (executor["cores"], executor["memory"], executor["instances"]) == (
            SPARK_RESOURCES["executor_cores"],
            SPARK_RESOURCES["executor_memory"],
            SPARK_RESOURCES["executor_instances"],
        )
        # The driver creates its executors; the executors call no API (the task account has no rights).
        assert driver["serviceAccount"] == settings.spark_service_account == "mlcycle-spark-driver"
        assert executor["serviceAccount"] == settings.service_account
        assert step.spec["image"] == settings.image_spark == settings.image + "-spark"
        # Airflow retries the step; the operator must not resubmit it on its own as well.
        assert step.spec["restartPolicy"] == {"type": "Never"}
        for role in ROLES:
            labels = step.spec[role]["labels"]
            assert labels["app.kubernetes.io/component"] == "step" and labels["mlcycle/spark-role"] == role
            assert (labels["mlcycle/usecase"], labels["mlcycle/step"], labels["mlcycle/dag"]) == (
                "yarnit_spark",
                step.step,
                step.dag_id,
            )


def test_the_driver_runs_the_local_argv_and_env(spark_steps: tuple[SparkStep, ...]) -> None:
    for step in spark_steps:
        main = step.spec["mainApplicationFile"]
        # The main file is the mlcycle CLI (docker/mlcycle-step.py; tests/k8s/test_spark_image.py proves it).
        assert main.startswith("local:///") and Path(main).name == "mlcycle-step.py", step.where
        assert ["mlcycle", *step.spec["arguments"]] == step.local_argv, step.where
        assert step.spec["arguments"][step.spec["arguments"].index("--partition") + 1] == "2026-09-14"
        for role in ROLES:
            env = _env(step.spec[role])
            extra = set(env) - set(step.local_env)
            assert extra == {*POD_ONLY_ENV, "PYSPARK_PYTHON"}, f"{step.where} {role}"
            assert {k: env[k] for k in step.local_env} == step.local_env, f"{step.where} {role}"
            assert "{{" not in json.dumps(env), f"{step.where} {role}: unrendered template"


def test_no_secret_value_reaches_an_application(
    spark_steps: tuple[SparkStep, ...], settings: KubernetesSettings
) -> None:
    for step in spark_steps:
        text = json.dumps(step.application)
        assert not [name for name, value in CANARIES.items() if value in text], step.where
        assert credential_literals(step.application) == [], step.where
        for role in ROLES:
            assert step.spec[role]["envFrom"] == [
                {"configMapRef": {"name": settings.configmap}},
                *({"secretRef": {"name": name}} for name in settings.secrets),
            ], f"{step.where} {role}"


def test_the_result_reaches_xcom_through_the_drivers_sidecar(spark_steps: tuple[SparkStep, ...]) -> None:
    """The CLI writes its JSON result to /airflow/xcom/return.json when that folder exists; the driver mounts an
    emptyDir there, shared with KPO's xcom sidecar (its name, command and a hardened context), which the
    provider's `extract_xcom` reads after the driver container ends (do_xcom_push)."""
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults

    for step in spark_steps:
        assert step.task.do_xcom_push is True
        driver = step.spec["driver"]
        mounts = {m["mountPath"]: m["name"] for m in driver["volumeMounts"]}
        assert mounts[str(XCOM_RETURN.parent)] == PodDefaults.VOLUME_MOUNT.name
        (sidecar,) = driver["sidecars"]
        assert sidecar["name"] == PodDefaults.SIDECAR_CONTAINER_NAME
        assert sidecar["command"] == PodDefaults.SIDECAR_CONTAINER.command
        assert {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]} == {
            str(XCOM_RETURN.parent): PodDefaults.VOLUME_MOUNT.name
        }
        assert sidecar["securityContext"] == driver["securityContext"]
        assert sidecar["resources"]["limits"]["memory"]
        assert "sidecars" not in step.spec["executor"], "executors return nothing"


def _driver_pod(exit_code: int) -> k8s.V1Pod:
    """The driver pod as the API server reports it once the driver container ended (the sidecar was stopped)."""

    def status(name: str, code: int) -> k8s.V1ContainerStatus:
        terminated = k8s.V1ContainerStateTerminated(exit_code=code, reason="Completed" if not code else "Error")
        return k8s.V1ContainerStatus(
            name=name, image="", image_id="", ready=False, restart_count=0,
            state=k8s.V1ContainerState(terminated=terminated),
        )  # fmt: skip

    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="yarnit-spark-score-abc-driver", labels={}),
        status=k8s.V1PodStatus(
            phase="Succeeded" if exit_code == 0 else "Failed",
            container_statuses=[status("spark-kubernetes-driver", exit_code), status("airflow-xcom-sidecar", 0)],
        ),
    )


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (ExitCode.OK, "success"),
        (ExitCode.REJECTED, "AirflowFailException"),
        (ExitCode.USAGE, "AirflowFailException"),
        (ExitCode.NOTHING_TO_DO, "AirflowSkipException"),
        (ExitCode.ERROR, "AirflowException"),
    ],
)
def test_the_drivers_exit_code_is_the_steps_outcome(
    spark_steps: tuple[SparkStep, ...], monkeypatch: pytest.MonkeyPatch, code: int, outcome: str
) -> None:
    """The operator's own cleanup on the finished driver pod (API calls stubbed): the same outcome as the local
    launcher's for that exit code, the reason from the step's result, and the application deleted either way."""
    (step,) = [s for s in spark_steps if s.step == "score"]
    task = step.task
    deleted: list[str] = []
    for name in ("patch_already_checked", "_read_pod_events", "_read_pod_container_states", "is_istio_enabled"):
        monkeypatch.setattr(task, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(task, "process_pod_deletion", lambda pod, **kwargs: deleted.append(pod.metadata.name))
    remote = _driver_pod(int(code))
    result = {"status": "x", "reason": "the contract failed on 3 rules"}
    try:
        task.cleanup(remote, remote, xcom_result=result, context=None)
        seen = "success"
    except Exception as exc:  # the outcome under test is the exception's type
        seen = type(exc).__name__
        if code in (ExitCode.REJECTED, ExitCode.USAGE):
            assert "the contract failed on 3 rules" in str(exc)
    assert seen == outcome
    assert deleted == ["yarnit-spark-score-abc-driver"]


class _FakeCluster:
    """The Kubernetes API as the operator's execute path sees it (CoreV1Api, CustomObjectsApi) and its PodManager:
    a submitted SparkApplication runs at once, its driver container ends with `exit_code`, and the xcom sidecar
    holds what the CLI wrote to /airflow/xcom/return.json (`result`)."""

    def __init__(self, exit_code: int, result: dict[str, Any]) -> None:
        self.exit_code, self.result = exit_code, result
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.xcom_read_from: list[str] = []

    # -- CustomObjectsApi --
    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: Any) -> Any:
        assert (group, version, plural) == ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
        self.created.append(json.loads(json.dumps(body)))
        return body

    def get_namespaced_custom_object_status(self, **kwargs: Any) -> dict[str, Any]:
        return {"status": {"applicationState": {"state": "RUNNING"}}}

    def delete_namespaced_custom_object(self, *, name: str, **kwargs: Any) -> None:
        self.deleted.append(name)

    # -- CoreV1Api --
    def driver(self) -> k8s.V1Pod:
        app = self.created[-1]
        pod = _driver_pod(self.exit_code)
        pod.metadata = k8s.V1ObjectMeta(
            name=f"{app['metadata']['name']}-driver",
            namespace=app["metadata"]["namespace"],
            labels=dict(app["spec"]["driver"]["labels"]),
        )
        pod.spec = k8s.V1PodSpec(containers=[k8s.V1Container(name=DRIVER), k8s.V1Container(name=SIDECAR)])
        return pod

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
        return k8s.V1PodList(items=[self.driver()] if self.created else [])

    def patch_namespaced_pod(self, *args: Any, **kwargs: Any) -> None:
        return None

    # -- PodManager --
    async def await_pod_start(self, **kwargs: Any) -> None:
        return None

    async def watch_pod_events(self, *args: Any, **kwargs: Any) -> None:
        return None

    def fetch_requested_container_logs(self, **kwargs: Any) -> None:
        return None

    def await_xcom_sidecar_container_start(self, pod: k8s.V1Pod) -> None:
        # A driver without the sidecar never gets one: the real wait never ends (apache/airflow#39184).
        driver = self.created[-1]["spec"]["driver"]
        if SIDECAR not in [c["name"] for c in driver.get("sidecars") or []]:
            raise TimeoutError(f"{pod.metadata.name}: no {SIDECAR} container, the task would wait forever")

    def extract_xcom(self, pod: k8s.V1Pod, **kwargs: Any) -> str:
        self.xcom_read_from.append(pod.metadata.name)
        return json.dumps(self.result)

    def await_pod_completion(self, *args: Any, **kwargs: Any) -> k8s.V1Pod:
        return self.driver()

    def read_pod(self, pod: k8s.V1Pod) -> k8s.V1Pod:
        return self.driver()

    def read_pod_events(self, pod: k8s.V1Pod) -> Any:
        return k8s.CoreV1EventList(items=[])


DRIVER, SIDECAR = "spark-kubernetes-driver", "airflow-xcom-sidecar"


class _Recorder(SimpleNamespace):
    pushed: dict[str, Any]

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.mark.parametrize(("code", "outcome"), [(ExitCode.OK, None), (ExitCode.REJECTED, "AirflowFailException")])
def test_the_operator_submits_the_application_and_returns_the_steps_result(
    spark_steps: tuple[SparkStep, ...], code: int, outcome: str | None
) -> None:
    """SparkKubernetesOperator's own execute path (provider 10.25) against a fake API: it submits the rendered
    application, follows its driver, reads the step's JSON result from the driver's xcom sidecar and returns
    it as the XCom; a rejected step fails without retry, its result (the reason) pushed first; the application is
    deleted either way."""
    (step,) = [s for s in spark_steps if s.step == "score"]
    task = copy.deepcopy(step.task)
    task.deferrable = False  # the worker's path; deferred, the provider's KPO trigger waits on the same driver pod
    result = {"status": "rejected" if code else "success", "step": "score", "reason": "3 rules failed" if code else ""}
    cluster = _FakeCluster(int(code), result)
    for name in ("client", "custom_obj_api", "pod_manager"):
        task.__dict__[name] = cluster  # the operator's cached_property clients
    ti = _Recorder(dag_id=step.dag_id, task_id="score", try_number=1, map_index=-1, pushed={})
    context = {"ti": ti, "task_instance": ti, "run_id": "scheduled__2026-09-14", "dag": task.dag}
    try:
        # The provider calls asyncio.run itself: in a thread of its own (see support.asyncio_run).
        returned = in_fresh_thread(task.execute, context)
        seen = None
    except Exception as exc:  # the outcome under test is the exception's type
        seen, returned = type(exc).__name__, None
        assert "3 rules failed" in str(exc)
    assert seen == outcome
    (created,) = cluster.created
    # What is submitted is the rendered application, plus what the operator adds: Airflow's labels (to find the
    # driver again after a worker restart) and the application's name as SPARK_APPLICATION_NAME.
    submitted, rendered = copy.deepcopy(created["spec"]), copy.deepcopy(step.spec)
    for role in ROLES:
        assert _env(submitted[role]) == {**_env(rendered[role]), "SPARK_APPLICATION_NAME": created["metadata"]["name"]}
        assert rendered[role]["labels"].items() <= submitted[role]["labels"].items()
        assert submitted[role]["labels"]["task_id"] == "score"
        for key in ("env", "labels"):
            del submitted[role][key], rendered[role][key]
    del submitted["labels"]
    assert submitted == rendered
    assert cluster.xcom_read_from == [f"{created['metadata']['name']}-driver"]
    assert cluster.deleted == [created["metadata"]["name"]]
    if code == ExitCode.OK:
        assert returned == result
    else:
        assert ti.pushed["return_value"] == result


def test_the_crd_subset_keeps_what_is_used_and_what_is_required() -> None:
    """mlcycle_dev.spark_crd (how the fixture is made): the fields the applications set, with their types, plus the
    required ones; closed objects; maps and lists pruned by their values."""
    from mlcycle_dev.spark_crd import subset

    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "enum": ["Python", "Scala"], "description": "dropped"},
                    "unused": {"type": "string"},
                    "conf": {"type": "object", "additionalProperties": {"type": "string"}},
                    "env": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "value": {"type": "string"},
                                "x": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }
    crd = {
        "metadata": {"name": "things.example"},
        "spec": {"versions": [{"name": "v1beta2", "schema": {"openAPIV3Schema": schema}}]},
    }
    application = {"spec": {"conf": {"a": "b"}, "env": [{"name": "A"}, {"value": "v"}]}}
    pruned = subset(crd, [application])
    spec = pruned["properties"]["spec"]
    assert sorted(spec["properties"]) == ["conf", "env", "type"] and spec["additionalProperties"] is False
    assert spec["properties"]["type"] == {"type": "string", "enum": ["Python", "Scala"]}
    assert spec["properties"]["conf"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert sorted(spec["properties"]["env"]["items"]["properties"]) == ["name", "value"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"type": "Python", "unused": "x"}}, pruned)
