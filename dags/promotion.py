"""Airflow DAG file: the `<usecase>_promotion` DAG of every use case under include/usecases (see mlcycle.orchestration.dags)."""

from mlcycle.config import discover_usecases
from mlcycle.orchestration.dags import promotion_dag

for _usecase in discover_usecases():
    _dag = promotion_dag(_usecase)
    globals()[_dag.dag_id] = _dag
