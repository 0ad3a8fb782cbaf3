"""Daily partitions as Airflow partition keys (ADR 0010): the timetables of the scoring, monitoring and training DAGs.

- `<uc>_scoring`: `CronPartitionTimetable` whose run at the cron tick of day D+1 carries the partition key D
  (`run_offset=-1`, key `YYYY-MM-DD`): the same day ADR 0002's data interval named, now a first-class key that
  the grid, the REST API (`partition_key`) and backfills see.
- `<uc>_monitoring`: `PartitionedAssetTimetable` on the `predictions` Asset: the scheduler creates the run for
  partition D when scoring's score task has produced predictions D (identity mapping, no cron offset to guess).
- `<uc>_training`: nightly on its cron **or** on a retraining request. Airflow 3.3 routes a partitioned Asset
  event (and every outlet event of a partitioned run is partitioned) only to partition-aware DAGs, and its
  `AssetOrTimeSchedule` is not partition-aware, so a request from a monitoring run would never reach training.
  `PartitionedAssetOrCronTimetable` is the partition-aware "asset or time" that 3.3 lacks: cron runs carry the
  key D like scoring's, and a request for partition D starts a run with the key D.

Only Airflow core and the standard library are imported: the dag-processor and the scheduler import this (the
latter through `plugins/mlcycle_timetables.py`, which registers the custom class for deserialisation).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.partition_mappers.identity import IdentityMapper
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronPartitionTimetable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.models.dag import DagModel
    from airflow.partition_mappers.base import PartitionMapper
    from airflow.timetables.base import DagRunInfo, TimeRestriction, Timetable
    from pendulum import DateTime

#: The format of every mlcycle partition key: the day, as the `ds=` folders name it.
PARTITION_KEY_FORMAT = "%Y-%m-%d"


def daily_partitions(cron: str) -> CronPartitionTimetable:
    """Runs on `cron` (UTC); the run at a tick carries the key of the day of the previous tick (the day it processes).

    With a daily cron that is day D for the run on D+1: the run starts after D is over, as with data intervals.
    """
    return CronPartitionTimetable(cron, timezone="UTC", run_offset=-1, key_format=PARTITION_KEY_FORMAT)


class PartitionedAssetOrCronTimetable(AssetOrTimeSchedule):
    """`AssetOrTimeSchedule` that is partition-aware: cron runs and Asset-triggered runs both carry a partition key.

    Time-based scheduling is the inner `CronPartitionTimetable`'s; Asset events are mapped one to one (the event's
    key is the run's key). Airflow creates the Asset-triggered runs through its partitioned-asset path, which
    needs `partitioned = True` and a partition mapper; the cron path needs the inner timetable's partition info.
    """

    partitioned = True

    def __init__(self, *, timetable: Timetable, assets: Any) -> None:
        if not isinstance(timetable, CronPartitionTimetable):
            raise TypeError(
                f"PartitionedAssetOrCronTimetable needs a CronPartitionTimetable, got {type(timetable).__name__}"
            )
        super().__init__(timetable=timetable, assets=assets)
        self.description = f"Triggered by partitioned assets or {timetable.description}"

    @property
    def summary(self) -> str:
        return f"Partitioned asset or {self.timetable.summary}"

    @property
    def _cron(self) -> CronPartitionTimetable:
        timetable = self.timetable
        assert isinstance(timetable, CronPartitionTimetable)  # checked in __init__
        return timetable

    def get_partition_mapper(self, *, name: str = "", uri: str = "") -> PartitionMapper:
        return IdentityMapper()

    def next_dagrun_info_v2(
        self, *, last_dagrun_info: DagRunInfo | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return self._cron.next_dagrun_info_v2(last_dagrun_info=last_dagrun_info, restriction=restriction)

    def next_run_info_from_dag_model(self, *, dag_model: DagModel) -> DagRunInfo | None:
        return self._cron.next_run_info_from_dag_model(dag_model=dag_model)

    def iter_partition_dagrun_infos(self, *, earliest: dt.datetime, latest: dt.datetime) -> Iterable[DagRunInfo]:
        return self._cron.iter_partition_dagrun_infos(earliest=earliest, latest=latest)

    def localize_partition_datetime(self, value: dt.datetime) -> DateTime:
        return self._cron.localize_partition_datetime(value)

    def _decode_partition_date(self, partition_key: str) -> dt.datetime | None:
        return self._cron._decode_partition_date(partition_key)
