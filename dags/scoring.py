"""Airflow DAG file: the `<usecase>_scoring` DAG of every use case under include/usecases (see mlcycle.orchestration.dags)."""

from mlcycle.config import discover_usecases
from mlcycle.orchestration.dags import scoring_dag

for _usecase in discover_usecases():
    _dag = scoring_dag(_usecase)
    globals()[_dag.dag_id] = _dag
