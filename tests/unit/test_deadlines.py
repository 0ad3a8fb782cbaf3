"""Data and DAG deadlines in usecase.yaml (`data:`, `deadlines:`), and the DeadlineAlerts built from them.

The scheduler's part (a missed deadline calling back through the triggerer) is in
tests/integration/test_waiting_scheduler.py.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from mlcycle.config import DEFAULT_USECASES_DIR, UseCaseConfigError, get_usecase, load_usecase, parse_duration
from mlcycle.orchestration.dags import build_dags
from mlcycle.orchestration.deadlines import (
    RUN_TASK_ID,
    PartitionDayEnd,
    PartitionDayEndError,
    dag_deadline,
    day_end,
    deadline_message,
    deadline_missed,
)
from mlcycle.settings import REPO_ROOT
from mlcycle.specs.names import DagFamily, Runbook
from support.alerting import recording_endpoint
from support.asyncio_run import run_coroutine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", dt.timedelta(hours=6)),
        ("1d2h30m", dt.timedelta(days=1, hours=2, minutes=30)),
        ("90s", dt.timedelta(seconds=90)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_durations_are_written_with_units(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["06:00", "6", 6, "", "6 h", "30m6h", "PT6H", None])
def test_a_duration_that_reads_two_ways_is_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def _usecase_with(tmp_path: Path, **changes: Any) -> Path:
    folder = tmp_path / "yarnit"
    folder.mkdir()
    for name in ("usecase.yaml", "contract.yaml"):
        (folder / name).write_text((DEFAULT_USECASES_DIR / "yarnit" / name).read_text())
    data = yaml.safe_load((folder / "usecase.yaml").read_text())
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value}
    (folder / "usecase.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "usecase.yaml"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": {"deadline": "06:00"}}, "data.deadline"),
        ({"data": {"deadline": "8d"}}, "more than 7 days"),
        ({"data": {"poll_interval": "2h"}}, "data.poll_interval"),
        ({"deadlines": {"scoring": "4h"}}, "deadlines.scoring: D+1 +4:00:00 is not after the run starts"),
        ({"deadlines": {"training": "0s"}}, r"deadlines.training: +0:00:00 is not after the end of the day D"),
        ({"deadlines": {"promotion": "3h"}}, "deadlines.promotion"),
    ],
)
def test_a_wrong_deadline_is_refused_naming_the_key(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UseCaseConfigError, match=message.replace("+", r"\+")):
        load_usecase(_usecase_with(tmp_path, **changes))


def test_yarnit_declares_its_data_deadline_and_run_deadlines() -> None:
    usecase = get_usecase("yarnit")
    assert usecase.data.deadline == dt.timedelta(hours=3)
    assert (usecase.deadlines.training, usecase.deadlines.scoring) == (dt.timedelta(hours=6), dt.timedelta(hours=8))


def test_monitoring_deadlines_ignore_the_unread_monitoring_cron(tmp_path: Path) -> None:
    """Monitoring starts on scoring's predictions (ADR 0010): its old cron no longer places its deadline."""
    path = _usecase_with(tmp_path, deadlines={"monitoring": "1h"}, schedule={"monitoring": "0 6 * * *"})
    assert load_usecase(path).deadlines.monitoring == dt.timedelta(hours=1)


def _run(**fields: Any) -> SimpleNamespace:
    """A new DAG run as Airflow creates it: no consumed Asset events yet."""
    return SimpleNamespace(
        **{
            "dag_id": "yarnit_scoring",
            "run_id": "manual__x",
            "conf": {},
            "partition_key": None,
            "logical_date": None,
            "consumed_asset_events": [],
            "run_after": dt.datetime(2026, 9, 15, 4, tzinfo=dt.UTC),
            **fields,
        }
    )


def test_the_deadline_of_a_keyed_run_follows_its_partition_key_not_its_schedule() -> None:
    # A scoring run at D+1 04:00 or a rerun triggered a month later with partition_key D: both end at D+1 00:00.
    for run_after in (dt.datetime(2026, 9, 15, 4, tzinfo=dt.UTC), dt.datetime(2026, 10, 15, tzinfo=dt.UTC)):
        assert day_end(_run(partition_key="2026-09-14", run_after=run_after)) == dt.datetime(2026, 9, 15, tzinfo=dt.UTC)


def test_the_deadline_of_a_keyless_run_follows_its_partition_by_the_tasks_rule() -> None:
    logical = dt.datetime(2026, 9, 14, 23, 30, tzinfo=dt.UTC)
    assert day_end(_run(logical_date=logical)) == dt.datetime(2026, 9, 15, tzinfo=dt.UTC)
    assert day_end(_run(logical_date=logical, conf={"partition": "2026-09-01"})) == dt.datetime(
        2026, 9, 2, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (_run(partition_key="2026-09-14T00:00:00"), "the run's partition key '2026-09-14T00:00:00' is not a day"),
        (_run(conf={"partition": "yesterday"}), "conf's partition 'yesterday' is not a day"),
        (_run(partition_key="2026-09-14", conf={"partition": "2026-09-13"}), "has the partition key 2026-09-14"),
    ],
)
def test_a_run_whose_day_is_unknown_is_an_error_not_a_missing_deadline(run: SimpleNamespace, message: str) -> None:
    with pytest.raises(PartitionDayEndError, match=f"deadline of run yarnit_scoring/manual__x: .*{message}"):
        day_end(run)


def test_the_reference_is_registered_by_the_plugin_and_serialized_with_its_class_path() -> None:
    """The scheduler reads the reference back by its class path, among the classes that plugins register."""
    from airflow.serialization.encoders import encode_deadline_reference

    spec = importlib.util.spec_from_file_location("mlcycle_deadlines", REPO_ROOT / "plugins" / "mlcycle_deadlines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = "mlcycle.orchestration.deadlines.PartitionDayEnd"
    assert encode_deadline_reference(PartitionDayEnd())["__class_path"] == path
    assert module.MlcycleDeadlinesPlugin.deadline_references == [PartitionDayEnd]


def test_each_dag_gets_the_deadline_of_its_family() -> None:
    usecase = get_usecase("yarnit")
    dags = build_dags(usecase)
    for family in DagFamily:
        alert = dag_deadline(usecase, family)
        after = getattr(usecase.deadlines, family.value, None)
        if after is None:
            assert alert is None and not dags[family.dag_id("yarnit")].deadline, family
            continue
        assert alert is not None and alert.name == f"yarnit_{family.value}_done"
        assert isinstance(alert.reference, PartitionDayEnd) and alert.interval == after
        assert alert.callback.path == "mlcycle.orchestration.deadlines.deadline_missed"
        assert dags[family.dag_id("yarnit")].deadline == [alert]


def _context(run_after: str, deadline: str, **run: Any) -> dict[str, Any]:
    """What Airflow 3.3 passes a deadline callback (models/deadline.py `handle_miss`)."""
    return {
        "dag_run": {
            "dag_id": "yarnit_scoring",
            "dag_run_id": "scheduled__2026-09-14T04:00:00+00:00",
            "logical_date": "2026-09-14T04:00:00Z",
            "run_after": run_after,
            "state": "running",
            "conf": {},
            **run,
        },
        "deadline": {"id": "0199", "deadline_time": deadline},
    }


def test_a_missed_deadline_becomes_a_deadline_missed_alert() -> None:
    message = deadline_message(
        "scoring of day D done by D+1 +8h", _context("2026-09-15T04:00:00Z", "2026-09-15T08:00:00Z")
    )
    assert message is not None
    assert message["alert"] == Runbook.DEADLINE_MISSED and message["runbook"].endswith("/deadline-missed.md")
    assert (message["dag_id"], message["task_id"], message["partition"]) == (
        "yarnit_scoring",
        RUN_TASK_ID,
        "2026-09-14",
    )
    assert message["run_id"] == "scheduled__2026-09-14T04:00:00+00:00" and message["severity"] == "warning"
    assert "2026-09-15T08:00:00+00:00" in message["reason"] and "state running" in message["reason"]
    assert message["rerun"].startswith("mlcycle rerun --usecase yarnit --dag scoring --partition 2026-09-14")


def test_a_run_due_after_its_deadline_raises_no_alert() -> None:
    """A backfill or rerun of an old day cannot be in time: one alert per old day would be noise."""
    late_start = _context("2026-12-01T10:00:00Z", "2026-09-15T08:00:00Z", conf={"partition": "2026-09-14"})
    assert deadline_message("rule", late_start) is None
    # A backfill's run is due at its historical time (run_after), before the deadline it never had a chance to meet.
    backfill = _context("2026-09-15T04:00:00Z", "2026-09-15T08:00:00Z", run_type="backfill")
    assert deadline_message("rule", backfill) is None
    assert deadline_message("rule", {**backfill, "dag_run": {**backfill["dag_run"], "run_type": "scheduled"}})


def test_the_callback_sends_through_the_alert_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with recording_endpoint() as sink:
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", f"{sink.url}/hook")
        context = _context("2026-09-15T04:00:00Z", "2026-09-15T08:00:00Z")
        record = run_coroutine(deadline_missed("rule", context))
    message = deadline_message("rule", context)
    assert message is not None and sink.on("/hook") == [json.loads(json.dumps(message, default=str))]
    # Airflow stores the callback's return value in a text column: a dict there stops the triggerer.
    assert isinstance(record, str) and record == f"sent: {message['text']}"
