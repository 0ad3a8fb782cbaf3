"""Delete the step pods that outlived their Airflow task: the chart's orphan-pod CronJob.

KubernetesPodOperator deletes its pod when the task ends, but some pods escape it: a task marked failed or
cleared in the UI while deferred (apache/airflow#37263, #62398), a worker that died, a pod still Pending
when the schedule timeout gave up (#59083: it would start later), a sidecar keeping a pod Running after its
task was gone (#58968). The step pods' active deadline ends the running ones; a pod that never started has
no deadline, and finished pods stay until someone deletes them.

This selects the step pods by label and deletes, by age:

- Succeeded or Failed pods whose last container ended more than --finished-retention-minutes ago (kept
  that long for `kubectl logs` / `kubectl describe`);
- Pending pods created more than --max-pending-minutes ago;
- Running (or Unknown) pods started more than --max-running-minutes ago (past any step's deadline).

It runs with a ServiceAccount that may only list and delete pods in its namespace, and talks to the API
server with the standard library (no client library in the image is needed). `--dry-run` only logs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_SERVER = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class Policy:
    finished_retention: dt.timedelta
    max_pending: dt.timedelta
    max_running: dt.timedelta


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _finished_at(pod: dict[str, Any]) -> dt.datetime | None:
    """When the pod's last container ended (a finished pod without container states: its creation)."""
    ends = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        ended = _time(terminated.get("finishedAt"))
        if ended:
            ends.append(ended)
    return max(ends) if ends else _time(pod["metadata"].get("creationTimestamp"))


def verdict(pod: dict[str, Any], now: dt.datetime, policy: Policy) -> str | None:
    """Why `pod` should be deleted now, or None to keep it."""
    if pod["metadata"].get("deletionTimestamp"):
        return None  # already going
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    created = _time(pod["metadata"].get("creationTimestamp"))
    if phase in ("Succeeded", "Failed"):
        ended = _finished_at(pod)
        if ended and now - ended > policy.finished_retention:
            return f"{phase.lower()} for {_minutes(now - ended)} min (retention {_minutes(policy.finished_retention)})"
        return None
    if phase == "Pending":
        if created and now - created > policy.max_pending:
            return f"pending for {_minutes(now - created)} min (max {_minutes(policy.max_pending)})"
        return None
    started = _time((pod.get("status") or {}).get("startTime")) or created
    if started and now - started > policy.max_running:
        return f"{phase.lower()} for {_minutes(now - started)} min (max {_minutes(policy.max_running)})"
    return None


def orphans(pods: Iterable[dict[str, Any]], now: dt.datetime, policy: Policy) -> list[tuple[dict[str, Any], str]]:
    """The pods to delete, each with its reason, oldest first."""
    found = [(pod, reason) for pod in pods if (reason := verdict(pod, now, policy))]
    return sorted(found, key=lambda item: item[0]["metadata"].get("creationTimestamp") or "")


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)


class PodApi(Protocol):
    def list_pods(self, namespace: str, selector: str) -> Iterator[dict[str, Any]]: ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> None: ...


class InClusterApi:
    """The two calls this needs, authenticated with the pod's ServiceAccount token."""

    def __init__(self, server: str = API_SERVER, account: Path = SERVICE_ACCOUNT) -> None:
        self.server = server
        self.token = (account / "token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(account / "ca.crt"))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.server + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            loaded: dict[str, Any] = json.load(response)
            return loaded

    def list_pods(self, namespace: str, selector: str) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            query = urllib.parse.urlencode({"labelSelector": selector, "limit": 200, "continue": token})
            page = self._call("GET", f"/api/v1/namespaces/{namespace}/pods?{query}")
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        # The uid precondition: never delete a newer pod that happens to reuse the name.
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            self._call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
        except urllib.error.HTTPError as exc:
            if exc.code not in (404, 409):  # gone already, or replaced
                raise


def run(api: PodApi, namespace: str, selector: str, policy: Policy, now: dt.datetime, dry_run: bool) -> int:
    """Delete the orphans; one JSON line per pod. Exit status 1 when a deletion failed (the Job shows it)."""
    failed = 0
    found = orphans(api.list_pods(namespace, selector), now, policy)
    for pod, reason in found:
        meta = pod["metadata"]
        record = {"pod": meta["name"], "reason": reason, "labels": meta.get("labels") or {}, "dry_run": dry_run}
        if not dry_run:
            try:
                api.delete_pod(namespace, meta["name"], meta["uid"])
            except (urllib.error.URLError, OSError) as exc:
                record["error"] = str(exc)
                failed += 1
        print(json.dumps(record, sort_keys=True), flush=True)
    print(json.dumps({"deleted": 0 if dry_run else len(found) - failed, "orphans": len(found), "failed": failed}))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selector", required=True, help="label selector of the step pods")
    parser.add_argument("--namespace", help="default: the ServiceAccount's namespace")
    parser.add_argument("--finished-retention-minutes", type=int, required=True)
    parser.add_argument("--max-pending-minutes", type=int, required=True)
    parser.add_argument("--max-running-minutes", type=int, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    policy = Policy(
        finished_retention=dt.timedelta(minutes=args.finished_retention_minutes),
        max_pending=dt.timedelta(minutes=args.max_pending_minutes),
        max_running=dt.timedelta(minutes=args.max_running_minutes),
    )
    namespace = args.namespace or (SERVICE_ACCOUNT / "namespace").read_text().strip()
    now = dt.datetime.now(dt.UTC)
    return run(InClusterApi(), namespace, args.selector, policy, now, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
