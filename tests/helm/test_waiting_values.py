"""The landing wait runs on Airflow's side (workers, triggerer): it must look where the step pods write."""

from __future__ import annotations

import yaml

from support.kube_checks import REPO
from support.step_pods import airflow_env


def test_airflow_looks_for_landing_data_under_the_pipelines_storage_root() -> None:
    pipeline = yaml.safe_load((REPO / "helm" / "mlcycle" / "values.yaml").read_text())["tasks"]["pipeline"]
    env = airflow_env()
    assert env["MLCYCLE_STORAGE_ROOT"] == pipeline["storageRoot"]
    assert env["AWS_DEFAULT_REGION"] == pipeline["awsRegion"]
