"""Airflow plugin: "MLflow run" and "Evidently report" buttons on mlcycle's train, evaluate and monitor tasks.

The links live in `mlcycle.orchestration.links` (Airflow and the standard library only, like this file: plugins
are imported by every Airflow component, the dag-processor included). They are *global* extra links: the
api-server resolves them from the step's result XCom when a task-instance page is opened, so they need no
change to the DAGs or the operators and work for both launchers (local subprocess and Kubernetes pod).
Set `MLCYCLE_MLFLOW_UI_URL` on the api-server to the MLflow UI address users reach (default
http://127.0.0.1:5000). See docs/ui.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlcycle.orchestration.links import GLOBAL_LINKS


class MlcycleLinksPlugin(AirflowPlugin):
    name = "mlcycle_links"
    global_operator_extra_links = list(GLOBAL_LINKS)
