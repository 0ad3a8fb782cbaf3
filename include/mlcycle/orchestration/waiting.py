"""Waiting for a day's landing data: a deferrable task before ingest, and the trigger it defers to.

A data source signals a complete landing partition by writing `landing/ds=D/_SUCCESS` last (a JSON object,
e.g. `{}`). `wait_for_landing` (task `wait_for_data`) looks once in the worker: landed -> done at once (the demo
and every backfill of landed days never defer); else it defers to `LandingTrigger`, which looks every
`data.poll_interval` in the triggerer, holding no worker slot, until the marker appears or the use case's data
deadline (`data.deadline` after the end of day D, UTC) passes. Then:

- landed -> the task succeeds and ingest runs;
- past the deadline -> `DataLate` (not retried: the deadline is gone), whose alert is `data-late`;
- a marker that is not a JSON object -> `MarkerMalformed` (not retried: the source must rewrite it), whose
  alert is `data-rejected`; the marker is decoded by the same code as the ingest step's (`storage/manifest.py`);
- anything else (permission denied, an unreachable or refusing S3 endpoint, a missing bucket) is an error,
  never "not landed yet": the task fails with it and is retried like any step.

Local folders and `s3://` roots are read; boto3 is imported inside the S3 read only, never at parse time (the
triggerer runs in Airflow's environment, which has boto3 but none of the ML libraries).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlcycle.config import UseCase
from mlcycle.settings import storage_root
from mlcycle.specs.names import Runbook
from mlcycle.storage.layout import SUCCESS, Dataset, partition_uri
from mlcycle.storage.manifest import ManifestError, decode_manifest, read_local_manifest

WAIT_TASK_ID = "wait_for_data"
_PARTITION_TEMPLATE = "{{ mlcycle_partition(dag_run, params) }}"


class DataLate(AirflowFailException):
    """The landing partition was not complete by its data deadline (not retried: the deadline has passed)."""

    runbook = Runbook.DATA_LATE


class MarkerMalformed(AirflowFailException):
    """The landing partition's `_SUCCESS` is not a JSON object (not retried: the data source must rewrite it)."""

    runbook = Runbook.DATA_REJECTED


class LandingReadError(AirflowException):
    """The landing partition could not be looked at (permission, endpoint, bucket): an error, retried."""


def data_deadline(day: dt.date, after: dt.timedelta) -> dt.datetime:
    """When day `day`'s landing data must be complete: `after` past the end of the day, UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + after


def read_marker(uri: str) -> dict[str, Any] | None:
    """The manifest in `<uri>/_SUCCESS`, or None when there is no marker yet.

    Only "no such file / key" is None; any other failure raises (ManifestError for a marker that is not a JSON
    object, OSError or botocore's errors for everything else).
    """
    where = f"{uri}/{SUCCESS}"
    if uri.startswith("s3://"):
        return _read_s3_marker(uri, where)
    return read_local_manifest(uri.removeprefix("file://"), where)


def _read_s3_marker(uri: str, where: str) -> dict[str, Any] | None:
    # Imported here only: for s3:// roots, and never at parse time.
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    # The client reads AWS_ENDPOINT_URL(_S3), the region and credentials from the environment, as Storage does.
    client = boto3.client("s3")
    try:
        answer = client.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{SUCCESS}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return decode_manifest(answer["Body"].read(), where)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class LandingTrigger(BaseTrigger):
    """Fires once: when `<uri>/_SUCCESS` exists ("landed"), at `deadline` ("late"), or on an error."""

    def __init__(self, uri: str, deadline: str, poll_seconds: float) -> None:
        super().__init__()
        self.uri = uri
        self.deadline = deadline  # ISO 8601 with a time zone: trigger arguments are serialised as JSON
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"uri": self.uri, "deadline": self.deadline, "poll_seconds": self.poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = dt.datetime.fromisoformat(self.deadline)
        while True:
            try:
                # Off the triggerer's event loop: a slow file system or endpoint must not stall other triggers.
                marker = await asyncio.to_thread(read_marker, self.uri)
            except ManifestError as exc:
                yield TriggerEvent({"status": "malformed", "uri": self.uri, "message": str(exc)})
                return
            except Exception as exc:  # every other failure is reported to the task, which raises it
                yield TriggerEvent({"status": "error", "uri": self.uri, "message": _error_text(exc)})
                return
            if marker is not None:
                yield TriggerEvent({"status": "landed", "uri": self.uri})
                return
            left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            if left <= 0:
                yield TriggerEvent({"status": "late", "uri": self.uri})
                return
            await asyncio.sleep(min(self.poll_seconds, left))


class LandingWaitOperator(BaseOperator):
    """Wait, deferred, for the run's landing partition (`landing/ds=D/_SUCCESS`) up to the data deadline."""

    template_fields: Sequence[str] = ("partition",)
    ui_color = "#fdf3e1"

    def __init__(
        self,
        *,
        usecase: str,
        deadline_after: dt.timedelta,
        poll_interval: dt.timedelta,
        partition: str = _PARTITION_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.usecase = usecase
        self.deadline_after = deadline_after
        self.poll_interval = poll_interval
        self.partition = partition

    def _target(self) -> tuple[str, dt.date, dt.datetime]:
        day = dt.date.fromisoformat(str(self.partition))
        # The storage root of the environment running the task (the worker's), like every step's.
        uri = partition_uri(storage_root(), self.usecase, Dataset.LANDING, day)
        return uri, day, data_deadline(day, self.deadline_after)

    def execute(self, context: Any) -> dict[str, Any]:
        uri, day, deadline = self._target()
        try:
            marker = read_marker(uri)
        except ManifestError as exc:
            raise self._malformed(str(exc), day) from None
        except Exception as exc:
            raise LandingReadError(f"cannot look for {uri}/{SUCCESS}: {_error_text(exc)}") from exc
        if marker is not None:
            return {"landing": uri, "deferred": False}
        if dt.datetime.now(dt.UTC) >= deadline:
            raise self._late(uri, day, deadline)
        self.log.info("waiting for %s/%s until %s (deferred: no worker slot held)", uri, SUCCESS, deadline)
        self.defer(
            trigger=LandingTrigger(uri, deadline.isoformat(), self.poll_interval.total_seconds()),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        uri, day, deadline = self._target()
        status = event.get("status")
        if status == "landed":
            return {"landing": uri, "deferred": True}
        if status == "late":
            raise self._late(uri, day, deadline)
        if status == "malformed":
            raise self._malformed(str(event.get("message")), day)
        if status == "error":
            raise LandingReadError(f"cannot look for {uri}/{SUCCESS}: {event.get('message')}")
        raise LandingReadError(f"the landing trigger for {uri} sent an event this task does not know: {event!r}")

    def _late(self, uri: str, day: dt.date, deadline: dt.datetime) -> DataLate:
        return DataLate(
            f"landing partition {day} not complete by its data deadline {deadline.isoformat()} "
            f"(data.deadline {self.deadline_after} after the end of the day): no {uri}/{SUCCESS}"
        )

    def _malformed(self, problem: str, day: dt.date) -> MarkerMalformed:
        return MarkerMalformed(
            f"landing partition refused (not retried): {problem}. The data source must rewrite the marker; "
            f"then rerun the day ({day})"
        )


def wait_for_landing(usecase: UseCase) -> LandingWaitOperator:
    """The task that waits for the run's landing partition, placed before ingest."""
    return LandingWaitOperator(
        task_id=WAIT_TASK_ID,
        usecase=usecase.name,
        deadline_after=usecase.data.deadline,
        poll_interval=usecase.data.poll_interval,
        doc_md=f"Waits (deferred) for `landing/ds=D/{SUCCESS}` until {usecase.data.deadline} after the end of "
        "day D (usecase.yaml `data.deadline`); late: `data-late` alert.",
    )
