"""The SparkApplications the DAGs would submit for `yarnit_spark`, a test fixture use case: include/usecases/yarnit
with `engine: spark` and its own `spark:` resources, loaded through the real loader (not a folder of the repo).

Each Spark task is built by the DAG factory in kubernetes mode with the settings of helm/airflow-values.yaml and
credential canaries in the worker's environment, its templates rendered for one run, and its SparkApplication
built by the provider's own `CustomObjectLauncher` (what `SparkKubernetesOperator.execute` creates; the operator
adds Airflow's dag_id/task_id/run_id labels at submit time).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.kube_checks import REPO
from support.step_pods import _UPSTREAM, CANARIES, _context, _env, _restore, dag_side_env

SPARK_USECASE = "yarnit_spark"
SPARK_RESOURCES = {
    "driver_cores": 1,
    "driver_memory": "2g",
    "executor_cores": 2,
    "executor_memory": "3g",
    "executor_instances": 4,
}


@dataclass(frozen=True)
class SparkStep:
    dag_id: str
    task_id: str
    step: str
    local_argv: list[str]
    local_env: dict[str, str]
    #: The SparkApplication as the API server receives it.
    application: dict[str, Any]
    task: Any = field(default=None, compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    @property
    def spec(self) -> dict[str, Any]:
        return self.application["spec"]

    def pod_spec(self, role: str) -> dict[str, Any]:
        """The driver's or the executors' part as the pod spec it becomes (the Spark operator's webhook applies
        these fields to the pod Spark creates), for the checks tests/k8s applies to step pods."""
        part = self.spec[role]
        container = {
            "name": f"spark-kubernetes-{role}",
            "securityContext": part.get("securityContext"),
            "volumeMounts": part.get("volumeMounts"),
        }
        return {
            "securityContext": part.get("podSecurityContext"),
            "serviceAccountName": part.get("serviceAccount"),
            "containers": [container, *(part.get("sidecars") or [])],
            "initContainers": part.get("initContainers") or [],
            "volumes": self.spec.get("volumes") or [],
            "hostNetwork": part.get("hostNetwork"),
        }


def spark_usecase_dir(root: Path) -> Path:
    """include/usecases/yarnit copied as yarnit_spark, with `engine: spark`."""
    folder = root / SPARK_USECASE
    shutil.copytree(REPO / "include" / "usecases" / "yarnit", folder)
    config = yaml.safe_load((folder / "usecase.yaml").read_text())
    config.update(name=SPARK_USECASE, engine="spark", spark=SPARK_RESOURCES)
    (folder / "usecase.yaml").write_text(yaml.safe_dump(config))
    return folder


@functools.cache
def build_spark_steps() -> tuple[SparkStep, ...]:
    """Every Spark task of every DAG of yarnit_spark, rendered for one run (built once per test session)."""
    from airflow.providers.cncf.kubernetes.operators.custom_object_launcher import CustomObjectLauncher

    from mlcycle.config import load_usecase
    from mlcycle.orchestration.dags import build_dags
    from mlcycle.orchestration.operators import LocalStepOperator
    from mlcycle.orchestration.spark import StepSparkOperator

    root = Path(tempfile.mkdtemp(prefix="mlcycle-spark-usecases-"))
    previous = _env({**dag_side_env(), **CANARIES, "MLCYCLE_EXECUTION_MODE": "local"})
    steps: list[SparkStep] = []
    try:
        usecase = load_usecase(spark_usecase_dir(root) / "usecase.yaml")
        local = build_dags(usecase)
        os.environ["MLCYCLE_EXECUTION_MODE"] = "kubernetes"
        remote = build_dags(usecase)
        for dag_id, dag in remote.items():
            for task in dag.tasks:
                if not isinstance(task, StepSparkOperator):
                    continue
                twin = local[dag_id].get_task(task.task_id)
                assert isinstance(twin, LocalStepOperator), f"{dag_id}.{task.task_id}: no local twin"
                context: Any = _context(dag, task.task_id, _UPSTREAM)
                twin.render_template_fields(context)
                task.render_template_fields(context)
                launcher = CustomObjectLauncher(
                    name=task.create_job_name(),
                    namespace=task.namespace,
                    kube_client=None,  # type: ignore[arg-type]  # building the body calls no API
                    custom_obj_api=None,  # type: ignore[arg-type]
                    template_body=task.template_body,
                )
                steps.append(
                    SparkStep(
                        dag_id,
                        task.task_id,
                        twin.arguments[0],
                        list(twin.argv),
                        dict(twin.env_vars),
                        launcher.body,
                        task,
                    )
                )
    finally:
        _restore(previous)
        shutil.rmtree(root, ignore_errors=True)
    return tuple(steps)
