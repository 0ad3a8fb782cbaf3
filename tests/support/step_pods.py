"""The pods the DAGs would submit: every KubernetesPodOperator task of every DAG of every use case, built the
way production Airflow builds them, and rendered for one run.

- Settings: the `env` of helm/airflow-values.yaml (what Airflow's components run with), not the defaults.
- Use cases: every folder under include/usecases, plus `yarnit_gpu`, a copy of yarnit that trains the
  torch MLP on a GPU (model.family torch_mlp, resources.train.gpu 1), loaded through the real loader.
- Worker environment: credential-looking canaries, so a launcher that copied the worker's environment
  into the pod would be caught.
- Each pod is built by KPO's own `build_pod_request_obj` after template rendering, with a task-instance
  context (so KPO's dag_id/task_id/run_id/try_number labels are there), and serialized as the API server
  receives it.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from mlcycle.specs.names import REVIEW_TASK
from support.kube_checks import REPO, serialize

AIRFLOW_VALUES = REPO / "helm" / "airflow-values.yaml"
GPU_USECASE = "yarnit_gpu"
GPU_RESOURCES = {
    "default": {"cpu": "500m", "memory": "1Gi"},
    "train": {
        "cpu": "4",
        "memory": "8Gi",
        "memory_limit": "12Gi",
        "gpu": 1,
        "gpu_node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "gpu_tolerations": ["dedicated=ml-training:NoSchedule"],
    },
}
#: Values a careless launcher would copy from the worker into the pod.
CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-7f3a",
    "MLFLOW_TRACKING_PASSWORD": "canary-mlflow-password-7f3a",
    "MLCYCLE_ALERT_WEBHOOK_TOKEN": "canary-webhook-token-7f3a",
    "AIRFLOW__CORE__FERNET_KEY": "canary-fernet-7f3a",
}
RUN_ID = "scheduled__2026-09-14T02:00:00+00:00"


@dataclass(frozen=True)
class StepPod:
    dag_id: str
    task_id: str
    usecase: str
    step: str
    local_argv: list[str]
    local_env: dict[str, str]
    pod: dict[str, Any]
    #: The KubernetesPodOperator settings that are not in the pod spec (what the worker does with the pod).
    operator: dict[str, Any]
    #: The rendered tasks themselves: the pod task (StepPodOperator) and the local launcher's twin.
    pod_task: Any = field(default=None, compare=False, repr=False)
    local_task: Any = field(default=None, compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    @property
    def spec(self) -> dict[str, Any]:
        return self.pod["spec"]

    @property
    def base(self) -> dict[str, Any]:
        return next(c for c in self.spec["containers"] if c["name"] == "base")


def airflow_env() -> dict[str, str]:
    """The settings Airflow's components get from helm/airflow-values.yaml (`env`)."""
    values = yaml.safe_load(AIRFLOW_VALUES.read_text())
    return {item["name"]: str(item["value"]) for item in values["env"]}


def dag_side_env() -> dict[str, str]:
    """The part of airflow_env() the DAG side reads (mlcycle.settings), safe to put in this process's env."""
    return {name: value for name, value in airflow_env().items() if name.startswith("MLCYCLE_")}


def gpu_usecase_dir(root: Path) -> Path:
    """include/usecases/yarnit copied as yarnit_gpu, training the torch MLP on one GPU."""
    folder = root / GPU_USECASE
    shutil.copytree(REPO / "include" / "usecases" / "yarnit", folder)
    config = yaml.safe_load((folder / "usecase.yaml").read_text())
    config.update(name=GPU_USECASE, resources=GPU_RESOURCES)
    config["model"] = {**config["model"], "family": "torch_mlp", "params": {"epochs": 5}}
    (folder / "usecase.yaml").write_text(yaml.safe_dump(config))
    return folder


# The upstream results DAG templates read (mlcycle_result validates them with the step's result model).
_UPSTREAM = {
    "train": {
        "outputs": {"model_uri": "models:/yarnit/7", "features": "s3://b/yarnit/features/ds=2026-09-14"},
        "metrics": {"model_version": "7", "run_id": "r7", "parent_run_id": "p7"},
    },
    "evaluate": {
        "outputs": {"decision": "s3://b/yarnit/evaluation/ds=2026-09-14"},
        "metrics": {
            "decision": "promote",
            "candidate_version": "7",
            "champion_version": "6",
            "compute": {"mode": "soft", "factor": 2.0, "regressions": []},
        },
    },
}


class _TI(SimpleNamespace):
    upstream: Mapping[str, dict[str, Any]]

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> dict[str, Any] | None:
        if task_ids == REVIEW_TASK and task_ids not in self.upstream:
            return None  # the gate decided alone (evaluate's "promote"): the review skipped, without an XCom
        envelope = {"status": "success", "step": task_ids, "usecase": "yarnit", "partition": "2026-09-14"}
        return {**envelope, **self.upstream[task_ids]}


def _context(
    dag: Any,
    task_id: str,
    upstream: Mapping[str, dict[str, Any]],
    run_overrides: Mapping[str, Any] | None = None,
    param_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    run = SimpleNamespace(
        dag_id=dag.dag_id,
        run_id=RUN_ID,
        logical_date=dt.datetime(2026, 9, 14, 2, tzinfo=dt.UTC),
        run_after=dt.datetime(2026, 9, 15, 2, tzinfo=dt.UTC),
        run_type="scheduled",
        conf={},
        consumed_asset_events=[],
    )
    vars(run).update(run_overrides or {})
    params = {"partition": None, "action": "promote", "version": 7, "approver": "ana", "reason": "reviewed"}
    params |= param_overrides or {}
    ti = _TI(dag_id=dag.dag_id, task_id=task_id, map_index=-1, try_number=1, upstream=upstream)
    return {"dag_run": run, "params": {**params, "no_cache": False}, "ti": ti, "dag": dag, "run_id": RUN_ID}


def _env(values: dict[str, str]) -> dict[str, str | None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    return previous


def _restore(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


OPERATOR_SETTINGS = (
    "on_finish_action", "on_kill_action", "deferrable", "schedule_timeout_seconds", "startup_timeout_seconds",
    "log_pod_spec_on_failure", "log_events_on_failure", "get_logs", "do_xcom_push", "skip_on_exit_code",
    "execution_timeout", "retries",
)  # fmt: skip


def _operator_settings(task: Any) -> dict[str, Any]:
    settings = {name: getattr(task, name) for name in OPERATOR_SETTINGS}
    settings["on_finish_action"] = str(getattr(task.on_finish_action, "value", task.on_finish_action))
    settings["on_kill_action"] = str(getattr(task.on_kill_action, "value", task.on_kill_action))
    settings["skip_on_exit_code"] = sorted(task.skip_on_exit_code)
    return settings


@functools.cache
def build_step_pods() -> tuple[StepPod, ...]:
    """Every step pod of every DAG (built once per test session)."""
    return render_step_pods()


def render_step_pods(
    upstream: Mapping[str, dict[str, Any]] = _UPSTREAM,
    *,
    only: str | None = None,
    run: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[StepPod, ...]:
    """Every step pod of every DAG (or of use case `only`), with templates rendered from `upstream`: the
    results of the tasks other tasks read (train, evaluate), as the DAG's earlier tasks returned them.

    `run` replaces attributes of the DAG run (e.g. `logical_date=None` and `consumed_asset_events` for a run
    an Asset event started), `params` the run's Params (e.g. `partition`)."""
    from mlcycle.config import discover_usecases, load_usecase
    from mlcycle.orchestration.dags import build_dags
    from mlcycle.orchestration.operators import LocalStepOperator

    settings = dag_side_env()
    root = Path(tempfile.mkdtemp(prefix="mlcycle-k8s-usecases-"))
    usecases = [*discover_usecases(), load_usecase(gpu_usecase_dir(root) / "usecase.yaml")]
    usecases = [u for u in usecases if only in (None, u.name)]
    pods: list[StepPod] = []
    previous = _env({**settings, **CANARIES, "MLCYCLE_EXECUTION_MODE": "local"})
    try:
        for usecase in usecases:
            os.environ["MLCYCLE_EXECUTION_MODE"] = "local"
            local = build_dags(usecase)
            os.environ["MLCYCLE_EXECUTION_MODE"] = "kubernetes"
            remote = build_dags(usecase)
            for dag_id, dag in remote.items():
                for task in local[dag_id].tasks:
                    if not isinstance(task, LocalStepOperator):
                        continue
                    pod_task: Any = dag.get_task(task.task_id)
                    context: Any = _context(dag, task.task_id, upstream, run, params)
                    task.render_template_fields(context)
                    pod_task.render_template_fields(context)
                    pod = serialize(pod_task.build_pod_request_obj(context, dry_run=True))
                    step = task.arguments[0]
                    pods.append(
                        StepPod(
                            dag_id,
                            task.task_id,
                            usecase.name,
                            step,
                            list(task.argv),
                            dict(task.env_vars),
                            pod,
                            _operator_settings(pod_task),
                            pod_task,
                            task,
                        )
                    )
    finally:
        _restore(previous)
        shutil.rmtree(root, ignore_errors=True)
    return tuple(pods)
