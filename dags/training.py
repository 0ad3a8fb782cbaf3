"""Airflow DAG file: the `<usecase>_training` DAG of every use case under include/usecases (see mlcycle.orchestration.dags)."""

from mlcycle.orchestration.dags import loadable_usecases, training_dag

# A use case whose files do not load is left out here and reported by usecase_errors.py.
for _usecase in loadable_usecases():
    _dag = training_dag(_usecase)
    globals()[_dag.dag_id] = _dag
