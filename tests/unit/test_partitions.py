"""Daily partitions as Airflow partition keys (ADR 0010): one partition per run, timetables that carry the day."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest

from mlcycle.orchestration.dags import replays_history
from mlcycle.orchestration.macros import PartitionConflictError, mlcycle_partition, mlcycle_trigger
from mlcycle.orchestration.timetables import PartitionedAssetOrCronTimetable, daily_partitions
from mlcycle.settings import embedded_environment

UTC = dt.UTC


def _run(**kw):
    base = {
        "run_id": "r1",
        "logical_date": None,
        "partition_key": None,
        "run_after": dt.datetime(2026, 9, 18, 6, tzinfo=UTC),
        "conf": {},
        "consumed_asset_events": [],
        "run_type": "manual",
    }
    return SimpleNamespace(**{**base, **kw})


def test_a_runs_partition_key_is_its_partition() -> None:
    keyed = _run(partition_key="2026-09-12", logical_date=dt.datetime(2026, 9, 14, tzinfo=UTC))
    assert mlcycle_partition(keyed, {}) == "2026-09-12"  # before the logical date and the Asset event's extra
    # The Param (or conf) may repeat the key: a rerun sends both.
    assert mlcycle_partition(_run(partition_key="2026-09-12", conf={"partition": "2026-09-12"}), {}) == "2026-09-12"
    assert mlcycle_partition(_run(partition_key="2026-09-12"), {"partition": "2026-09-12"}) == "2026-09-12"


@pytest.mark.parametrize(
    ("params", "conf", "what"), [({"partition": "2026-09-01"}, {}, "Param"), ({}, {"partition": "2026-09-01"}, "conf")]
)
def test_a_param_naming_another_day_than_the_key_fails(params, conf, what) -> None:
    with pytest.raises(PartitionConflictError, match=rf"partition key 2026-09-12 but .*{what}.* is 2026-09-01"):
        mlcycle_partition(_run(partition_key="2026-09-12", conf=conf), params)


def test_a_run_without_a_key_takes_the_param() -> None:
    assert mlcycle_partition(_run(conf={"partition": "2026-09-10"}), {"partition": "2026-09-01"}) == "2026-09-01"
    assert mlcycle_partition(_run(conf={"partition": "2026-09-10"}), {}) == "2026-09-10"
    with pytest.raises(ValueError, match="partition key 'last week' is not a day"):
        mlcycle_partition(_run(partition_key="last week"), {})


def test_backfilled_history_is_replayed_not_acted_on() -> None:
    produced_by_backfill = SimpleNamespace(source_run_id="backfill__2026-09-10T04:00:00+00:00__2026-09-10__x")
    produced_nightly = SimpleNamespace(source_run_id="scheduled__2026-09-11T04:00:00+00:00__2026-09-10__y")
    assert replays_history(_run(run_type="backfill"))
    assert replays_history(_run(run_type="asset_triggered", consumed_asset_events=[produced_by_backfill]))
    assert not replays_history(_run(run_type="asset_triggered", consumed_asset_events=[produced_nightly]))
    assert not replays_history(_run(run_type="manual"))


def test_trigger_names_the_produced_partition() -> None:
    event = SimpleNamespace(
        extra={}, asset=SimpleNamespace(name="yarnit_predictions"), partition_key="2026-09-10",
        source_dag_id="yarnit_scoring", source_run_id="s1",
    )  # fmt: skip
    assert mlcycle_trigger(_run(consumed_asset_events=[event])) == (
        "asset: yarnit_predictions 2026-09-10 produced (from yarnit_scoring/s1)"
    )


def test_the_nightly_run_carries_the_day_it_processes() -> None:
    from airflow.timetables.base import TimeRestriction

    timetable = daily_partitions("0 4 * * *")
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 9, 1, tz="UTC"), latest=None, catchup=True)
    info = timetable.next_dagrun_info_v2(last_dagrun_info=None, restriction=restriction)
    assert info is not None
    assert (info.run_after, info.partition_key) == (pendulum.datetime(2026, 9, 1, 4, tz="UTC"), "2026-08-31")
    backfilled = timetable.iter_partition_dagrun_infos(
        earliest=dt.datetime(2026, 9, 9, tzinfo=UTC), latest=dt.datetime(2026, 9, 10, 23, 59, 59, tzinfo=UTC)
    )
    assert [i.partition_key for i in backfilled] == ["2026-09-09", "2026-09-10"]  # backfill days = partition keys


def test_training_is_partition_aware_on_cron_and_on_requests() -> None:
    from airflow.sdk import Asset
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    request = Asset(name="u_retraining_request", uri="mlcycle://u/retraining-request")
    timetable = PartitionedAssetOrCronTimetable(timetable=daily_partitions("0 2 * * *"), assets=request)
    assert timetable.partitioned and timetable.periodic
    assert timetable.get_partition_mapper(name=request.name).to_downstream("2026-09-10") == "2026-09-10"
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 9, 1, tz="UTC"), latest=None, catchup=True)
    info = timetable.next_dagrun_info_v2(last_dagrun_info=None, restriction=restriction)
    assert info is not None and info.partition_key == "2026-08-31"
    encoded = encode_timetable(timetable)  # what the dag-processor stores; the plugin lets the scheduler read it
    decoded = PartitionedAssetOrCronTimetable.deserialize(encoded["__var"])
    assert decoded.summary == timetable.summary == "Partitioned asset or 0 2 * * *"
    with pytest.raises(TypeError, match="needs a CronPartitionTimetable"):
        PartitionedAssetOrCronTimetable(timetable=decoded, assets=request)


def test_the_scheduler_can_read_the_training_schedule_back(tmp_path: Path) -> None:
    """Serialised by the dag-processor, read back where plugins load (scheduler, api-server): a custom timetable
    that no plugin registers would make the training DAG unreadable there."""
    script = """
from mlcycle.config import get_usecase
from mlcycle.orchestration.dags import training_dag
from airflow.serialization.serialized_objects import DagSerialization
timetable = DagSerialization.from_dict(DagSerialization.to_dict(training_dag(get_usecase("yarnit")))).timetable
print(type(timetable).__name__, timetable.partitioned, timetable.asset_condition.name)
"""
    env = {**os.environ, **embedded_environment(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["PartitionedAssetOrCronTimetable", "True", "yarnit_retraining_request"]
