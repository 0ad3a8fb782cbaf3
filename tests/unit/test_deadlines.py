"""Data and DAG deadlines in usecase.yaml (`data:`, `deadlines:`), and the DeadlineAlerts built from them.

The scheduler's part (a missed deadline calling back through the triggerer) is in
tests/integration/test_waiting_scheduler.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.config import DEFAULT_USECASES_DIR, UseCaseConfigError, get_usecase, load_usecase, parse_duration
from mlcycle.orchestration.dags import build_dags
from mlcycle.orchestration.deadlines import (
    RUN_TASK_ID,
    dag_deadline,
    deadline_interval,
    deadline_message,
    deadline_missed,
)
from mlcycle.specs.names import DagFamily, Runbook
from support.alerting import recording_endpoint


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
        ({"deadlines": {"training": "3h"}, "schedule": {"training": "0 */6 * * *"}}, "does not fire once a day"),
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


def test_the_interval_runs_from_the_logical_date_to_the_deadline_of_the_day() -> None:
    # Scoring of D runs with logical date D 04:00; done by D+1 08:00 is 28 h later.
    assert deadline_interval("0 4 * * *", dt.timedelta(hours=8)) == dt.timedelta(hours=28)
    assert deadline_interval("30 2 * * *", dt.timedelta(hours=6)) == dt.timedelta(hours=27, minutes=30)
    assert deadline_interval("@daily", dt.timedelta(0)) == dt.timedelta(days=1)
    with pytest.raises(ValueError, match="once a day"):
        deadline_interval("*/5 * * * *", dt.timedelta(hours=1))


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
        assert alert.interval == deadline_interval(getattr(usecase.schedule, family.value), after)
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
        record = asyncio.run(deadline_missed("rule", context))
    message = deadline_message("rule", context)
    assert message is not None and sink.on("/hook") == [json.loads(json.dumps(message, default=str))]
    # Airflow stores the callback's return value in a text column: a dict there stops the triggerer.
    assert isinstance(record, str) and record == f"sent: {message['text']}"
