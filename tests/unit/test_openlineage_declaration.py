"""What both launchers declare to Airflow's OpenLineage provider: a step's datasets, from its own JSON result.

The local launcher runs a real `mlcycle ingest`; the pod launcher reads the same kind of result from its XCom
(what KPO's sidecar returned). The events those declarations become are checked end to end, through the provider
and its HTTP transport, in tests/integration/test_training_dag.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlcycle.cli import main as cli_main
from mlcycle.orchestration.openlineage import declared, step_lineage
from mlcycle.orchestration.operators import LocalStepOperator

DAY = "2026-09-02"


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_the_local_launcher_declares_the_partitions_its_step_read_and_wrote(mlcycle_env: dict[str, str]) -> None:
    argv = ["generate", "--usecase", "yarnit", "--start", DAY, "--end", DAY, "--rows", "50"]
    assert cli_main(argv) == 0
    operator = LocalStepOperator(
        task_id="ingest", cmds=["mlcycle"], arguments=["ingest", "--usecase", "yarnit", "--partition", DAY]
    )
    operator.execute(context={})
    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)
    root = Path(mlcycle_env["MLCYCLE_STORAGE_ROOT"]) / "yarnit"
    assert _names(lineage.inputs) == [("file", f"{root}/landing/ds={DAY}")]
    assert _names(lineage.outputs) == [("file", f"{root}/raw/ds={DAY}")]


class _PodTaskInstance:
    """The task instance the provider hands over: what the pod's sidecar returned is its XCom."""

    task_id = "score"

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def xcom_pull(self, task_ids: str) -> str:
        assert task_ids == self.task_id
        return json.dumps(self.result)


def test_the_pod_launcher_declares_the_model_version_and_the_s3_partitions() -> None:
    from mlcycle.orchestration.kubernetes import StepPodOperator

    result = {
        "status": "success",
        "outputs": {"predictions": "s3://bucket/root/yarnit/predictions/ds=2026-09-20/role=champion"},
        "inputs": {
            "validated": "s3://bucket/root/yarnit/validated/ds=2026-09-20",
            "model_champion": "models:/yarnit_model/3",
        },
        "metrics": {"model_version": "3"},
    }
    operator = StepPodOperator(task_id="score", name="yarnit-score", image="mlcycle:test")
    lineage = operator.get_openlineage_facets_on_complete(_PodTaskInstance(result))
    assert _names(lineage.inputs) == [
        ("s3://bucket", "root/yarnit/validated/ds=2026-09-20"),
        ("mlflow", "yarnit_model/3"),
    ]
    assert lineage.inputs[1].facets["version"].datasetVersion == "3"
    assert _names(lineage.outputs) == [("s3://bucket", "root/yarnit/predictions/ds=2026-09-20/role=champion")]


def test_reports_inside_a_partition_and_what_was_also_read_are_not_outputs_of_their_own() -> None:
    result = {
        "inputs": {"features": "/r/uc/features/ds=D", "validated": ["/r/uc/validated/ds=A", "/r/uc/validated/ds=B"]},
        "outputs": {
            "model_uri": "models:/uc_model/2",
            "features": "/r/uc/features/ds=D",
            "report": "/r/uc/monitoring/ds=D/report.html",
            "monitoring": "/r/uc/monitoring/ds=D",
            "mlflow_run_id": "0123abcd",
        },
    }
    inputs, outputs = declared(result)
    assert inputs == ["/r/uc/features/ds=D", "/r/uc/validated/ds=A", "/r/uc/validated/ds=B"]
    assert outputs == ["models:/uc_model/2", "/r/uc/monitoring/ds=D"]
    assert step_lineage(None).inputs == [] and declared({"status": "rejected"}) == ([], [])
