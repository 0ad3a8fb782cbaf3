"""A small client of Airflow 3's REST API (`/api/v2`), standard library only.

Used by `mlcycle rerun`, the Alertmanager webhook receiver and `make backfill` in every mode, by the
test stack, and by a reviewer's client answering the training run's approval (`answer_pending_approval`). Authentication: a JWT from `POST /auth/token` (username/password), or a token issued
beforehand (`AIRFLOW_API_TOKEN`), as Airflow 3's auth managers expect. A JWT expires (`[api_auth]
jwt_expiration_time`, 24 h by default): on HTTP 401 the client gets a new one with its username/password and
retries the call once, so a long-lived process (the alert receiver) outlives its tokens.

Settings (per environment; the credentials from a Secret in production):
`AIRFLOW_API_URL` (default http://127.0.0.1:8080), `AIRFLOW_API_TOKEN`, or `AIRFLOW_USERNAME` +
`AIRFLOW_PASSWORD`.
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

URL_ENV, TOKEN_ENV, USERNAME_ENV, PASSWORD_ENV = (
    "AIRFLOW_API_URL",
    "AIRFLOW_API_TOKEN",
    "AIRFLOW_USERNAME",
    "AIRFLOW_PASSWORD",
)
DEFAULT_URL = "http://127.0.0.1:8080"


class AirflowAPIError(RuntimeError):
    """A non-2xx answer of Airflow's REST API (or no answer: status 0); `status` and `body` say what happened."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def iso(value: dt.date | dt.datetime | str | None) -> str | None:
    """An ISO timestamp Airflow accepts (dates become midnight UTC; naive datetimes are taken as UTC)."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class AirflowClient:
    """Token-authenticated calls to one Airflow API server."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self._token = token or None
        self.timeout = timeout
        # The receiver calls one client from several threads: one refresh at a time.
        self._token_lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AirflowClient:
        env = os.environ if environ is None else environ
        return cls(
            env.get(URL_ENV, DEFAULT_URL),
            username=env.get(USERNAME_ENV, ""),
            password=env.get(PASSWORD_ENV, ""),
            token=env.get(TOKEN_ENV, ""),
        )

    def token(self) -> str:
        """A JWT for the configured user (`POST /auth/token`), cached until Airflow refuses it."""
        with self._token_lock:
            if self._token is None:
                self._token = self._new_token()
            return self._token

    def _new_token(self) -> str:
        if not self.username:
            raise AirflowAPIError(
                "POST", "/auth/token", 0, f"no credentials: set {TOKEN_ENV}, or {USERNAME_ENV} and {PASSWORD_ENV}"
            )
        answer = self._send("POST", "/auth/token", {"username": self.username, "password": self.password}, None)
        return str(answer["access_token"])

    def _refresh(self, rejected: str) -> None:
        """Drop the token Airflow answered 401 to (unless another thread already replaced it)."""
        if not self.username:
            raise AirflowAPIError(
                "POST",
                "/auth/token",
                401,
                f"Airflow refused the token (expired?) and there are no credentials to get a new one: set "
                f"{USERNAME_ENV} and {PASSWORD_ENV} (a fixed {TOKEN_ENV} cannot be renewed)",
            )
        with self._token_lock:
            if self._token == rejected:
                self._token = None

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Call the API; return the parsed JSON answer (None if empty) or raise `AirflowAPIError`.

        An authenticated call answered 401 gets a new token and is sent once more: an expired JWT is routine.
        """
        if not auth:
            return self._send(method, path, json, None, params=params, timeout=timeout)
        token = self.token()
        try:
            return self._send(method, path, json, token, params=params, timeout=timeout)
        except AirflowAPIError as error:
            if error.status != 401:
                raise
            self._refresh(token)
        return self._send(method, path, json, self.token(), params=params, timeout=timeout)

    def _send(
        self,
        method: str,
        path: str,
        json: Any,
        token: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise AirflowAPIError(method, path, error.code, error.read().decode(errors="replace")) from None
        except (urllib.error.URLError, OSError) as error:
            raise AirflowAPIError(method, path, 0, f"cannot reach {self.base_url}: {error}") from None
        return jsonlib.loads(body) if body.strip() else None

    def check_access(self) -> None:
        """Raise `AirflowAPIError` unless this client can authenticate and read DAGs (the receiver's readiness)."""
        self.request("GET", "/api/v2/dags", params={"limit": 1}, timeout=min(self.timeout, 5.0))

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, params={"update_mask": "is_paused"})

    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        logical_date: dt.datetime | str | None = None,
        run_id: str | None = None,
        note: str | None = None,
        partition_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a manual DAG run; return it. A paused DAG's run stays queued until `unpause`.

        `partition_key`: the run's Airflow partition key (only partition-aware DAGs accept one; 400 otherwise).
        """
        # `logical_date` has no default in TriggerDAGRunPostBody: it must be sent, null for "no logical date".
        body: dict[str, Any] = {"conf": dict(conf or {}), "logical_date": iso(logical_date)}
        if partition_key is not None:
            body["partition_key"] = partition_key
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        run: dict[str, Any] = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return run

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")
        return run

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id (with map index when mapped) -> state."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances"
        instances = self.request("GET", path, params={"limit": 100})["task_instances"]
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""): ti["state"]
            for ti in instances
        }

    def asset_id(self, name: str) -> int:
        """The id of the Asset called `name` (`GET /api/v2/assets`); 404 when Airflow has none (DAGs not parsed?)."""
        # name_pattern is a substring match: keep the exact name only.
        found = self.request("GET", "/api/v2/assets", params={"name_pattern": name, "limit": 100})["assets"]
        for asset in found:
            if asset["name"] == name:
                return int(asset["id"])
        raise AirflowAPIError("GET", "/api/v2/assets", 404, f"no asset named {name!r} (are the DAGs parsed?)")

    def asset_events(self, asset_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The latest events of an Asset, newest first."""
        params = {"asset_id": asset_id, "order_by": "-timestamp", "limit": limit}
        events: list[dict[str, Any]] = self.request("GET", "/api/v2/assets/events", params=params)["asset_events"]
        return events

    def create_asset_event(
        self, asset_id: int, extra: Mapping[str, Any], partition_key: str | None = None
    ) -> dict[str, Any]:
        """`POST /api/v2/assets/events`: as a task's outlet would; DAGs scheduled on the Asset are queued.

        Airflow routes an event with a `partition_key` only to partition-aware DAGs, one without only to the others.
        """
        body: dict[str, Any] = {"asset_id": asset_id, "extra": dict(extra)}
        if partition_key is not None:
            body["partition_key"] = partition_key
        event: dict[str, Any] = self.request("POST", "/api/v2/assets/events", body)
        return event

    def pending_approvals(self, dag_id: str = "~", run_id: str = "~") -> list[dict[str, Any]]:
        """Human-in-the-loop requests waiting for an answer (task `awaiting_input`, no response yet), oldest first.

        `~` for every DAG / run. Each item is Airflow's HITLDetail: `subject`, `body`, `options`, `params` (the
        form), `task_instance` (dag_id, dag_run_id, task_id, map_index, state).
        """
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/hitlDetails"
        params = {"response_received": "false", "state": "awaiting_input", "order_by": "created_at", "limit": 100}
        details: list[dict[str, Any]] = self.request("GET", path, params=params)["hitl_details"]
        return details

    def respond(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: Mapping[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a human-in-the-loop request as this client's user (Airflow records it as the responder).

        Airflow answers 409 when the request was already answered (by a person or by its timeout default).
        """
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/"
            f"{urllib.parse.quote(task_id)}/{map_index}/hitlDetails"
        )
        body = {"chosen_options": list(chosen_options), "params_input": dict(params_input or {})}
        answer: dict[str, Any] = self.request("PATCH", path, body)
        return answer

    def create_backfill(
        self,
        dag_id: str,
        from_date: dt.date | dt.datetime | str,
        to_date: dt.date | dt.datetime | str,
        *,
        reprocess_behavior: str = "completed",
        max_active_runs: int = 1,
        run_backwards: bool = False,
        conf: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`POST /api/v2/backfills`: Airflow 3's backfill, executed by the scheduler like any other run.

        `reprocess_behavior`: "none" skips dates that already have a run, "failed" re-runs failed ones,
        "completed" re-runs every existing one. The scheduler runs backfills only for unpaused DAGs.
        """
        body = {
            "dag_id": dag_id,
            "from_date": iso(from_date),
            "to_date": iso(to_date),
            "run_backwards": run_backwards,
            "dag_run_conf": dict(conf or {}),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        for attempt in range(5):
            try:
                backfill: dict[str, Any] = self.request("POST", "/api/v2/backfills", body)
                return backfill
            except AirflowAPIError as error:
                # After a 503 the backfill may exist after all (the lock hit after the insert): a retry then
                # meets 409 "already a running backfill", and the one we asked for is the running one.
                running = self._running_backfill(dag_id, body) if error.status == 409 and attempt else None
                if running is not None:
                    return running
                # On SQLite the route answers 503 when another writer holds the database lock
                # (airflow/api_fastapi/core_api/routes/public/backfills.py): a short retry rides it out.
                if error.status != 503 or attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def _running_backfill(self, dag_id: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.request("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]
        for backfill in found:
            same_range = (_parse(backfill["from_date"]), _parse(backfill["to_date"])) == (
                _parse(body["from_date"]),
                _parse(body["to_date"]),
            )
            if not backfill.get("completed_at") and same_range:
                return dict(backfill)
        return None

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", f"/api/v2/backfills/{backfill_id}")
        return found

    def backfill_runs(self, backfill: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The DAG runs of a backfill, by date (a re-processed run keeps its id, with run_type backfill).

        A partition-aware DAG's runs (mlcycle's, ADR 0010) have a partition key and date and no logical date: they
        are selected by partition date, in whole days as Airflow reads `partition_date_gte/lte`; other DAGs' runs
        by logical date.
        """
        dag = self.request("GET", f"/api/v2/dags/{backfill['dag_id']}")
        field = "partition_date" if dag.get("timetable_partitioned") else "logical_date"
        first, last = backfill["from_date"], backfill["to_date"]
        if field == "partition_date":
            first, last = str(first)[:10], str(last)[:10]
        params = {"run_type": "backfill", f"{field}_gte": first, f"{field}_lte": last, "order_by": field, "limit": 100}
        runs: list[dict[str, Any]] = self.request("GET", f"/api/v2/dags/{backfill['dag_id']}/dagRuns", params=params)[
            "dag_runs"
        ]
        return runs

    def partition_runs(self, dag_id: str, partition_key: str, run_after_gte: str | None = None) -> list[dict[str, Any]]:
        """The runs of `dag_id` whose partition key is `partition_key` (queued from `run_after_gte` on), oldest first."""
        params: dict[str, Any] = {"partition_key_pattern": partition_key, "order_by": "run_after", "limit": 100}
        if run_after_gte is not None:
            params["run_after_gte"] = run_after_gte
        runs = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)["dag_runs"]
        # The pattern is a search (LIKE); only the exact key is this partition.
        return [dict(run) for run in runs if run.get("partition_key") == partition_key]

    def wait_for_backfill(self, backfill_id: int, timeout: float = 1800.0, poll: float = 2.0) -> list[dict[str, Any]]:
        """Wait until the scheduler completes the backfill; return its runs. TimeoutError names the states seen."""
        deadline = time.monotonic() + timeout
        while True:
            backfill = self.backfill(backfill_id)
            if backfill.get("completed_at"):
                return self.backfill_runs(backfill)
            if time.monotonic() > deadline:
                states = {r["dag_run_id"]: r["state"] for r in self.backfill_runs(backfill)}
                paused = self.request("GET", f"/api/v2/dags/{backfill['dag_id']}").get("is_paused")
                raise TimeoutError(
                    f"backfill {backfill_id} of {backfill['dag_id']} not complete after {timeout:.0f}s "
                    f"(DAG paused: {paused}; runs: {states})"
                )
            time.sleep(poll)


#: The two answers of mlcycle's candidate review (Airflow's ApprovalOperator labels; orchestration/approval.py).
APPROVE, REJECT = "Approve", "Reject"


def answer_pending_approval(
    client: AirflowClient,
    dag_id: str,
    *,
    approve: bool,
    reason: str,
    run_id: str = "~",
    task_id: str | None = None,
    timeout: float = 600.0,
    poll: float = 2.0,
    settle: float = 5.0,
) -> dict[str, Any]:
    """Wait until `dag_id` (one run of it, or any) has an approval waiting for an answer; approve or reject it
    with `reason` typed in its form, as a reviewer in the UI would, and return once the task has taken the
    answer: the request as found (`subject`, `body`, `task_instance`), Airflow's answer under `response`.

    Airflow 3.3.2 can lose an answer given within moments of the task starting to wait: the scheduler, handling
    the exit of the worker that parked the task after the answer re-queued it, takes the new try for a task
    changed externally, marks it up_for_retry, and the retry asks again. So a request is answered once it has
    waited `settle` seconds, and until the task succeeds a request asked again is answered again.
    TimeoutError when that does not happen within `timeout` seconds; RuntimeError when the task fails.
    """
    deadline = time.monotonic() + timeout
    first_seen: dict[tuple[Any, ...], float] = {}
    answered: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if answered is not None:
            ti = answered["task_instance"]
            state = client.task_states(ti["dag_id"], ti["dag_run_id"]).get(ti["task_id"])
            if state in ("success", "skipped"):
                return answered
            if state in ("failed", "upstream_failed", "removed"):
                raise RuntimeError(f"{ti['dag_id']} run {ti['dag_run_id']}: {ti['task_id']} {state} after the answer")
            # Otherwise the answer is being applied, or was lost and the retry asks again: answer that one too.
            dag_id, run_id, task_id = ti["dag_id"], ti["dag_run_id"], ti["task_id"]
        for request in client.pending_approvals(dag_id, run_id):
            ti = request["task_instance"]
            if task_id is not None and ti["task_id"] != task_id:
                continue
            key = (ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["map_index"], ti.get("try_number"))
            if time.monotonic() - first_seen.setdefault(key, time.monotonic()) < settle:
                continue
            form = {name: reason for name in request.get("params") or {}}  # mlcycle's review form: one field, why
            choice = [APPROVE if approve else REJECT]
            response = client.respond(ti["dag_id"], ti["dag_run_id"], ti["task_id"], choice, form, ti["map_index"])
            answered = {**request, "response": response}
            break
        time.sleep(poll)
    raise TimeoutError(
        f"the approval of {dag_id} (run {run_id}, task {task_id or 'any'}) was "
        + ("answered but not taken" if answered else "not waiting for an answer")
        + f" within {timeout:.0f}s"
    )
