"""`make backfill USECASE=u FROM=d1 TO=d2 [DAGS=scoring,monitoring] [REPROCESS=completed]`: Airflow 3 backfills.

Re-runs a date range through Airflow's own backfill (`POST /api/v2/backfills`), executed by the scheduler
like any run, one DAG after the other in lifecycle order (training, scoring, monitoring: monitoring reads
the predictions scoring writes), then prints each day's run state and the digests of what it committed.
Every run's partition key is its day (ADR 0010).

Monitoring is not backfilled by Airflow: it is scheduled on the `predictions` Asset's partitions, and Airflow
backfills only time-scheduled DAGs. When scoring is backfilled too, the scheduler starts the monitoring run of
each day as scoring produces its predictions (as it does every night), and this command waits for those runs;
when monitoring alone is asked for, it triggers one run per day with that day's partition key, one at a time.

Why it is safe to repeat:
- every step is idempotent: a day's partitions are re-committed with the same bytes (same digests), and
  training re-uses the registered version trained on the same data, config and code (no duplicates);
- backfilled monitoring runs never request a retrain (history is replayed, not acted on) -- they only notify:
  a run started by a backfilled scoring run's predictions sees that its Asset event came from a backfill, and
  a run this command triggers has `retraining_mode=notify_only`;
- `max_active_runs`: the backfill's own limit is the DAG's (training 1: runs race for @champion;
  monitoring 1: decisions in day order; scoring 3: days are independent). Nightly scheduled runs are
  not paused by a backfill: Airflow schedules both, and the DAG-level `max_active_runs` bounds each.

Where it runs: against the Airflow named by AIRFLOW_API_URL (+ AIRFLOW_USERNAME/AIRFLOW_PASSWORD or
AIRFLOW_API_TOKEN) -- `make up`, or production. This runtime command only talks to an Airflow API; for the
embedded default, `make backfill` (`python -m mlcycle_dev.backfill`) starts the embedded Airflow's
services for the duration and then runs the same backfills.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from mlcycle.airflow_api import URL_ENV, AirflowClient
from mlcycle.specs.names import BACKFILL_ORDER, MAX_ACTIVE_RUNS, DagFamily, ModelRole
from mlcycle.storage.layout import PERFORMANCE_FILE, SUMMARY_FILE, Dataset, partition_folder, role_sub

ORDER = tuple(family.value for family in BACKFILL_ORDER)
COMMITTED = {
    DagFamily.TRAINING: (Dataset.FEATURES,),
    DagFamily.SCORING: (Dataset.VALIDATED, Dataset.PREDICTIONS),
    DagFamily.MONITORING: (Dataset.MONITORING,),
}


def backfill_range(start: dt.date, end: dt.date) -> tuple[str, str]:
    """The logical-date window covering partitions start..end (a day's run may start at any hour of it)."""
    return f"{start.isoformat()}T00:00:00+00:00", f"{end.isoformat()}T23:59:59+00:00"


def check_request(start: dt.date, end: dt.date, families: Sequence[str]) -> None:
    """Raise ValueError when the range is reversed or a DAG family is not backfillable."""
    if end < start:
        raise ValueError(f"FROM {start} is after TO {end}")
    unknown = sorted(set(families) - set(ORDER))
    if unknown:
        raise ValueError(f"DAGS: {unknown} are not backfillable; choose from {list(ORDER)}")


def families_of(args: argparse.Namespace) -> list[str]:
    """The DAG families named by --dags."""
    return [f.strip() for f in args.dags.split(",") if f.strip()]


TERMINAL_STATES = ("success", "failed")


def days_of(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from start to end, both included."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _wait_for_partition(
    client: AirflowClient, dag_id: str, day: dt.date, since: str, timeout: float, poll: float = 2.0
) -> dict[str, Any]:
    """The newest run of `dag_id` for partition `day` queued since `since`, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        runs = client.partition_runs(dag_id, day.isoformat(), run_after_gte=since)
        if runs and runs[-1]["state"] in TERMINAL_STATES:
            return runs[-1]
        if time.monotonic() > deadline:
            seen = {run["dag_run_id"]: run["state"] for run in runs}
            raise TimeoutError(
                f"{dag_id}: no finished run for partition {day} queued since {since} after {timeout:.0f}s "
                f"(runs seen: {seen or 'none'})"
            )
        time.sleep(poll)


def monitoring_runs(
    client: AirflowClient, usecase: str, days: Sequence[dt.date], *, follows_scoring: bool, since: str, timeout: float
) -> list[dict[str, Any]]:
    """Monitoring for `days`: the runs the scheduler starts from backfilled predictions, or one triggered run a day."""
    dag_id = DagFamily.MONITORING.dag_id(usecase)
    runs = []
    for day in days:
        if not follows_scoring:
            client.trigger(
                dag_id,
                conf={"retraining_mode": "notify_only", "reason": f"backfill of {days[0]}..{days[-1]}"},
                partition_key=day.isoformat(),
                note=f"backfill of {day}: monitoring replays history and never requests a retrain",
            )
        runs.append(_wait_for_partition(client, dag_id, day, since, timeout))
    return runs


def run_backfills(
    client: AirflowClient,
    usecase: str,
    start: dt.date,
    end: dt.date,
    families: Sequence[str],
    reprocess: str = "completed",
    timeout: float = 3600.0,
) -> dict[str, list[dict[str, Any]]]:
    """One backfill per DAG, in lifecycle order, each waited for; returns the runs per DAG id."""
    check_request(start, end, families)
    first, last = backfill_range(start, end)
    since = dt.datetime.now(dt.UTC).isoformat()
    follows_scoring = DagFamily.SCORING.value in families
    results: dict[str, list[dict[str, Any]]] = {}
    if DagFamily.MONITORING.value in families:
        # Unpaused first: with scoring in the range, its runs start as scoring produces each day's predictions.
        client.unpause(DagFamily.MONITORING.dag_id(usecase))
    for family in (f for f in ORDER if f in families):
        dag_id = DagFamily(family).dag_id(usecase)
        if family == DagFamily.MONITORING.value:
            print(f"{dag_id}: {start}..{end}, one run per partition", flush=True)
            results[dag_id] = monitoring_runs(
                client, usecase, days_of(start, end), follows_scoring=follows_scoring, since=since, timeout=timeout
            )
            continue
        client.unpause(dag_id)  # the scheduler runs no backfill of a paused DAG
        backfill = client.create_backfill(
            dag_id, first, last, reprocess_behavior=reprocess, max_active_runs=MAX_ACTIVE_RUNS[DagFamily(family)]
        )
        print(f"backfill {backfill['id']}: {dag_id} {start}..{end} (reprocess {reprocess})", flush=True)
        results[dag_id] = client.wait_for_backfill(int(backfill["id"]), timeout=timeout)
    return results


# What "the same partition" means: the data files and our own summaries. Reports (HTML, GX's validation
# JSON) embed the time they were made and are left out.
COMPARED_FILES = (".parquet", SUMMARY_FILE, PERFORMANCE_FILE)


def committed_digests(usecase: str, families: Sequence[str], days: Sequence[dt.date]) -> dict[str, str]:
    """`<dataset>/ds=D[/sub]` -> one digest of its committed data files (from the manifests), for comparison."""
    import hashlib
    import json

    from mlcycle.settings import storage_root
    from mlcycle.storage.partitions import Storage

    storage = Storage(storage_root())
    digests: dict[str, str] = {}
    for family in families:
        for dataset in COMMITTED.get(DagFamily(family), ()):
            for day in days:
                subs = tuple(role_sub(r) for r in ModelRole) if dataset == Dataset.PREDICTIONS else (None,)
                for sub in subs:
                    manifest = storage.manifest(storage.partition_uri(usecase, dataset, day, sub))
                    if manifest is not None:
                        compared = {k: v for k, v in manifest.get("files", {}).items() if k.endswith(COMPARED_FILES)}
                        files = json.dumps(compared, sort_keys=True)
                        key = f"{dataset}/{partition_folder(day)}" + (f"/{sub}" if sub else "")
                        digests[key] = hashlib.sha256(files.encode()).hexdigest()[:16]
    return digests


def build_parser(prog: str = "python -m mlcycle.backfill") -> argparse.ArgumentParser:
    """The command line, shared with the dev wrapper that starts an embedded Airflow first."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--usecase", required=True)
    parser.add_argument("--from", dest="start", required=True, type=dt.date.fromisoformat, help="first partition")
    parser.add_argument("--to", dest="end", required=True, type=dt.date.fromisoformat, help="last partition")
    parser.add_argument("--dags", default="scoring,monitoring", help=f"comma-separated, of {','.join(ORDER)}")
    parser.add_argument("--reprocess", choices=["none", "failed", "completed"], default="completed")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per DAG's backfill")
    return parser


def run(args: argparse.Namespace, client: AirflowClient) -> int:
    """Run the parsed backfill against `client`, print each run's state and the committed digests; 1 if any failed."""
    families = families_of(args)
    days = days_of(args.start, args.end)
    results = run_backfills(client, args.usecase, args.start, args.end, families, args.reprocess, args.timeout)
    failed = 0
    for dag_id, runs in results.items():
        for dag_run in runs:
            failed += dag_run["state"] != "success"
            print(f"  {dag_id} {dag_run['partition_key']}: {dag_run['state']}  ({dag_run['dag_run_id']})")
    for key, digest in committed_digests(args.usecase, families, days).items():
        print(f"  {key}: {digest}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not os.environ.get(URL_ENV):
        parser.error(
            f"{URL_ENV} is not set: point it at Airflow's API (`make up`, or production), "
            "or use `make backfill`, which starts the embedded Airflow for the duration"
        )
    return run(args, AirflowClient.from_env())


if __name__ == "__main__":
    sys.exit(main())
