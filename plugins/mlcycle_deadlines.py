"""Airflow plugin: registers mlcycle's deadline reference `PartitionDayEnd` (the end of the day a run processes).

Airflow evaluates a DAG's deadline reference when it creates a run, in the scheduler or the api-server, from
the serialized DAG; a reference class that is not Airflow's own must be registered by a plugin there, or the
run's deadline cannot be read back. The class lives in `mlcycle.orchestration.deadlines`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlcycle.orchestration.deadlines import PartitionDayEnd


class MlcycleDeadlinesPlugin(AirflowPlugin):
    name = "mlcycle_deadlines"
    deadline_references = [PartitionDayEnd]
