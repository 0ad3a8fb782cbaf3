"""Airflow DAG file: the `<usecase>_training` DAG of every use case under include/usecases (see mlcycle.orchestration.dags)."""

from mlcycle.config import discover_usecases
from mlcycle.orchestration.dags import training_dag

for _usecase in discover_usecases():
    _dag = training_dag(_usecase)
    globals()[_dag.dag_id] = _dag
