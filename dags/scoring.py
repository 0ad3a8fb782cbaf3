"""Airflow DAG file: the `<usecase>_scoring` DAG of every use case under include/usecases (see mlcycle.orchestration.dags)."""

from mlcycle.orchestration.dags import loadable_usecases, scoring_dag

# A use case whose files do not load is left out here and reported by usecase_errors.py.
for _usecase in loadable_usecases():
    _dag = scoring_dag(_usecase)
    globals()[_dag.dag_id] = _dag
