"""The landing wait (`mlcycle.orchestration.waiting`): the trigger on local folders and on S3 (moto), the task's
outcomes, and where the DAGs place it.

What the triggerer and the worker do with them is in tests/integration/test_waiting_scheduler.py (a real
scheduler and triggerer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from mlcycle.config import get_usecase
from mlcycle.orchestration.alerts import failure_message
from mlcycle.orchestration.dags import build_dags
from mlcycle.orchestration.waiting import (
    WAIT_TASK_ID,
    DataLate,
    LandingReadError,
    LandingTrigger,
    LandingWaitOperator,
    MarkerMalformed,
    data_deadline,
    read_marker,
)
from mlcycle.specs.names import Runbook, Step
from mlcycle.storage.layout import SUCCESS, Dataset, partition_uri
from mlcycle.storage.partitions import Storage
from support.asyncio_run import run_coroutine
from support.s3 import use_s3_endpoint

DAY = dt.date(2026, 9, 14)
POLL_S = 0.05
#: A bound on waiting for the trigger's one event, never reached when the code is right.
EVENT_TIMEOUT_S = 30


def _later(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


async def _first_event(trigger: LandingTrigger, meanwhile: Any = None) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    waiting = asyncio.ensure_future(first())
    if meanwhile is not None:
        await asyncio.sleep(POLL_S * 4)  # a few looks find nothing first
        assert not waiting.done(), f"the trigger fired before the marker was written: {waiting.result()}"
        await asyncio.to_thread(meanwhile)
    return await asyncio.wait_for(waiting, EVENT_TIMEOUT_S)


def event(trigger: LandingTrigger, meanwhile: Any = None) -> dict[str, Any]:
    return run_coroutine(_first_event(trigger, meanwhile))


# ---- the trigger, on a local folder ----
@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return Path(partition_uri(str(tmp_path), "yarnit", Dataset.LANDING, DAY))


def test_a_late_local_marker_is_waited_for_then_fires_landed(landing: Path) -> None:
    def arrive() -> None:
        landing.mkdir(parents=True)
        (landing / "data.csv").write_text("a\n1\n")
        (landing / SUCCESS).write_text("{}")

    trigger = LandingTrigger(str(landing), _later(600), POLL_S)
    assert event(trigger, meanwhile=arrive) == {"status": "landed", "uri": str(landing)}


def test_a_marker_that_never_comes_fires_late_at_the_deadline(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / "data.csv").write_text("a\n1\n")  # data without its marker is not landed
    assert event(LandingTrigger(str(landing), _later(0.5), POLL_S))["status"] == "late"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert event(LandingTrigger(str(landing), past, POLL_S))["status"] == "late"


def test_a_malformed_marker_fires_malformed_naming_the_marker(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / SUCCESS).write_text("done")
    fired = event(LandingTrigger(str(landing), _later(600), POLL_S))
    assert fired["status"] == "malformed"
    assert f"{landing}/{SUCCESS}" in fired["message"] and "JSON object" in fired["message"]


def test_an_unreadable_landing_path_is_an_error_not_absence(landing: Path) -> None:
    # Tests run as root here, so a folder without permissions would still read: a file where the partition
    # folder should be gives the same kind of failure (an OSError other than "no such file").
    landing.parent.mkdir(parents=True)
    landing.write_text("not a folder")
    fired = event(LandingTrigger(str(landing), _later(600), POLL_S))
    assert fired["status"] == "error" and "NotADirectoryError" in fired["message"], fired


def test_the_trigger_serialises_to_what_rebuilds_it() -> None:
    trigger = LandingTrigger("s3://bucket/root/yarnit/landing/ds=2026-09-14", _later(60), 30.0)
    path, kwargs = trigger.serialize()
    assert path == "mlcycle.orchestration.waiting.LandingTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert LandingTrigger(**kwargs).serialize() == (path, kwargs)


# ---- the trigger, on S3 (moto's server) ----
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from moto.server import ThreadedMotoServer

    from mlcycle_dev.stack.process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_landing(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    import boto3

    use_s3_endpoint(monkeypatch, moto_endpoint)
    client = boto3.client("s3")
    bucket = f"waiting-{request.node.name.replace('_', '-')[:40].lower()}"
    client.create_bucket(Bucket=bucket)
    uri = partition_uri(f"s3://{bucket}/root", "yarnit", Dataset.LANDING, DAY)
    return client, bucket, uri


def test_s3_a_late_marker_is_waited_for_then_fires_landed(s3_landing: Any) -> None:
    client, bucket, uri = s3_landing
    key = uri.removeprefix(f"s3://{bucket}/")
    client.put_object(Bucket=bucket, Key=f"{key}/data.csv", Body=b"a\n1\n")

    def arrive() -> None:
        client.put_object(Bucket=bucket, Key=f"{key}/{SUCCESS}", Body=b"{}")

    assert event(LandingTrigger(uri, _later(600), POLL_S), meanwhile=arrive) == {"status": "landed", "uri": uri}


def test_s3_no_marker_fires_late_and_a_malformed_one_malformed(s3_landing: Any) -> None:
    client, bucket, uri = s3_landing
    assert event(LandingTrigger(uri, _later(0.5), POLL_S))["status"] == "late"
    client.put_object(Bucket=bucket, Key=f"{uri.removeprefix(f's3://{bucket}/')}/{SUCCESS}", Body=b"[1, 2]")
    fired = event(LandingTrigger(uri, _later(600), POLL_S))
    assert fired["status"] == "malformed" and f"{uri}/{SUCCESS}" in fired["message"] and "list" in fired["message"]


def test_s3_a_committed_partition_counts_as_landed(s3_landing: Any) -> None:
    """A landing partition written through `Storage` (a versioned commit) is recognised like a plain marker."""
    _, bucket, uri = s3_landing
    with Storage(f"s3://{bucket}/root").writer(uri, {"source": "test"}) as staging:
        (staging / "data.csv").write_text("a\n1\n")
    assert read_marker(uri) is not None
    assert event(LandingTrigger(uri, _later(600), POLL_S))["status"] == "landed"


def test_s3_a_missing_bucket_is_an_error_not_absence(s3_landing: Any) -> None:
    uri = partition_uri("s3://no-such-bucket-waiting/root", "yarnit", Dataset.LANDING, DAY)
    fired = event(LandingTrigger(uri, _later(600), POLL_S))
    assert fired["status"] == "error" and "NoSuchBucket" in fired["message"], fired


def test_s3_an_unreachable_endpoint_is_an_error_not_absence(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlcycle_dev.stack.process import free_port

    use_s3_endpoint(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    uri = partition_uri("s3://bucket/root", "yarnit", Dataset.LANDING, DAY)
    fired = event(LandingTrigger(uri, _later(600), POLL_S))
    assert fired["status"] == "error" and "EndpointConnectionError" in fired["message"], fired


# ---- the task ----
@pytest.fixture
def wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LandingWaitOperator:
    monkeypatch.setenv("MLCYCLE_STORAGE_ROOT", str(tmp_path))
    operator = LandingWaitOperator(
        task_id=WAIT_TASK_ID,
        usecase="yarnit",
        deadline_after=dt.timedelta(hours=6),
        poll_interval=dt.timedelta(seconds=30),
    )
    operator.partition = DAY.isoformat()  # what the template renders to
    return operator


def _landed(root: Path, marker: str = "{}") -> Path:
    folder = Path(partition_uri(str(root), "yarnit", Dataset.LANDING, DAY))
    folder.mkdir(parents=True)
    (folder / SUCCESS).write_text(marker)
    return folder


def test_landed_data_passes_at_once_without_deferring(wait: LandingWaitOperator, tmp_path: Path) -> None:
    folder = _landed(tmp_path)
    assert wait.execute({}) == {"landing": str(folder), "deferred": False}


def test_missing_data_before_the_deadline_defers_to_the_trigger(
    wait: LandingWaitOperator, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    wait.partition = today.isoformat()  # its deadline, D+1 06:00, is ahead
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LandingTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.uri.endswith(f"/yarnit/landing/ds={today}") and trigger.poll_seconds == 30
    assert dt.datetime.fromisoformat(trigger.deadline) == data_deadline(today, dt.timedelta(hours=6))


def test_missing_data_past_the_deadline_fails_as_data_late_without_retry(wait: LandingWaitOperator) -> None:
    with pytest.raises(DataLate) as late:
        wait.execute({})
    assert isinstance(late.value, AirflowFailException)  # not retried
    assert "2026-09-15T06:00:00+00:00" in str(late.value) and f"ds={DAY}/{SUCCESS}" in str(late.value)


def test_a_malformed_marker_fails_at_once_as_rejected_data(wait: LandingWaitOperator, tmp_path: Path) -> None:
    _landed(tmp_path, marker="not json")
    with pytest.raises(MarkerMalformed) as refused:
        wait.execute({})
    assert isinstance(refused.value, AirflowFailException) and "JSON object" in str(refused.value)


def test_the_resumed_task_turns_each_event_into_its_outcome(wait: LandingWaitOperator) -> None:
    assert wait.execute_complete({}, {"status": "landed"})["deferred"] is True
    with pytest.raises(DataLate):
        wait.execute_complete({}, {"status": "late"})
    with pytest.raises(MarkerMalformed, match="not a list"):
        wait.execute_complete({}, {"status": "malformed", "message": "x/_SUCCESS: not a list"})
    with pytest.raises(LandingReadError, match="EndpointConnectionError") as error:
        wait.execute_complete({}, {"status": "error", "message": "EndpointConnectionError: no"})
    assert not isinstance(error.value, AirflowFailException)  # an error is retried like a step's
    with pytest.raises(LandingReadError, match="does not know"):
        wait.execute_complete({}, {"status": "surprise"})


@pytest.mark.parametrize(
    ("exception", "alert"),
    [
        (DataLate("late"), Runbook.DATA_LATE),
        (MarkerMalformed("bad marker"), Runbook.DATA_REJECTED),
        (LandingReadError("unreachable"), Runbook.STEP_FAILED),
    ],
)
def test_each_failure_of_the_wait_alerts_with_its_runbook(exception: Exception, alert: Runbook) -> None:
    from types import SimpleNamespace

    context = {
        "dag_run": SimpleNamespace(dag_id="yarnit_scoring", run_id="r1", conf={}, logical_date=None),
        "ti": SimpleNamespace(task_id=WAIT_TASK_ID, try_number=1, log_url=""),
        "params": {"partition": DAY.isoformat()},
        "exception": exception,
    }
    message = failure_message(context)
    assert (message["alert"], message["task_id"], message["partition"]) == (alert, WAIT_TASK_ID, str(DAY))


def test_training_and_scoring_wait_for_their_landing_data_before_ingest() -> None:
    dags = build_dags(get_usecase("yarnit"))
    for dag_id in ("yarnit_training", "yarnit_scoring"):
        dag = dags[dag_id]
        assert dag.get_task(Step.INGEST.value).upstream_task_ids == {WAIT_TASK_ID}, dag_id
        assert not dag.get_task(WAIT_TASK_ID).upstream_task_ids, dag_id
    assert WAIT_TASK_ID not in dags["yarnit_monitoring"].task_ids  # it reads what scoring wrote, not landing
