"""Airflow plugin: registers mlcycle's partition-aware "asset or cron" timetable (ADR 0010).

Airflow deserialises a DAG's timetable in the scheduler and the api-server; a timetable class that is not
Airflow's own must be registered by a plugin, or the DAG fails to load there. The class lives in
`mlcycle.orchestration.timetables` (Airflow core and the standard library only, like this file).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlcycle.orchestration.timetables import PartitionedAssetOrCronTimetable


class MlcycleTimetablesPlugin(AirflowPlugin):
    name = "mlcycle_timetables"
    timetables = [PartitionedAssetOrCronTimetable]
