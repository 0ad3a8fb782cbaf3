"""The production-like stack of `make up`, through the interfaces users touch, and what it survives.

One stack for the module, started and stopped the way `make up` / `make down` do it (`python -m mlcycle_dev.stack`,
in a subprocess that returns while the services keep running): PostgreSQL, an S3 API (moto), the MLflow server
(PostgreSQL backend, artifacts proxied to S3, basic auth) and Airflow 3's four services on PostgreSQL with the
repository's DAG files, unchanged. The use case is a copy of yarnit with a 7-day window and a smaller model (so
the module fits the CI budget) and nightly cron times at midnight, so "the latest complete day" is yesterday.

What it checks (in any order: the nightly training run that the others build on is a module fixture):
1. `up` returned, every service is healthy, on loopback;
2. the scheduler runs the nightly training run unpausing creates -- and the scheduler is restarted mid-run;
3. a scoring run triggered through the REST API with a `partition` Param; its step process is SIGKILLed mid-run,
   Airflow's retry completes it, and a reader polling the partitions meanwhile never sees one torn;
4. a 7-day scoring backfill created through the REST API completes;
5. data partitions and MLflow artifacts are objects in the S3 endpoint; MLflow lists the runs and `@champion`;
6. MLflow refuses requests without (valid) credentials;
7. MLflow stopped at the worst moment of a training step (version created, not yet tagged): the step fails
   cleanly, its retry succeeds, and no half-registered or duplicate version remains;
and at the end `down` stops exactly what was started: nothing is left running.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.airflow_api import AirflowClient
from mlcycle.backfill import run_backfills
from mlcycle.settings import REPO_ROOT
from mlcycle_dev.stack.local import (
    DATA_BUCKET,
    MLFLOW_BUCKET,
    load_state,
    missing_reason,
    records,
    running_services,
    start_service,
    status,
    stop_service,
)
from mlcycle_dev.stack.mlflow_server import mlflow_request
from mlcycle_dev.stack.process import free_port, wait_until
from support.s3 import s3_client

pytestmark = pytest.mark.integration

PYTHON = sys.executable
USECASE = "yarnit"
MODEL = "yarnit_model"
# Seconds, so that a retry does not wait for the DAGs' 2 minutes (an Airflow cluster policy of the test stack).
RETRY_DELAY = 3
TODAY = dt.datetime.now(dt.UTC).date()
FIRST_DAY, LAST_DAY = TODAY - dt.timedelta(days=15), TODAY
REST_DAY = TODAY - dt.timedelta(days=9)
BACKFILL = (TODAY - dt.timedelta(days=8), TODAY - dt.timedelta(days=2))


@dataclass
class Stack:
    """The running stack as a test sees it: its state file, an Airflow client, S3 and MLflow access."""

    root: Path
    state: dict[str, Any]
    airflow: AirflowClient
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return dict(self.state["env"])

    def reload(self) -> None:
        loaded = load_state(self.root)
        assert loaded is not None
        self.state = loaded

    def s3(self) -> Any:
        return s3_client(self.env)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", []) if not obj["Key"].endswith("/")]

    def mlflow(self, method: str, path: str, body: dict[str, Any] | None = None, *, admin: bool = True) -> Any:
        credentials = self.state["credentials"]["mlflow_admin" if admin else "mlflow_pipeline"]
        return mlflow_request(
            self.env["MLFLOW_TRACKING_URI"],
            method,
            path,
            body,
            user=credentials["user"],
            password=credentials["password"],
        )

    def versions(self) -> list[dict[str, Any]]:
        found = self.mlflow("GET", "/api/2.0/mlflow/model-versions/search", {"filter": f"name='{MODEL}'"})
        return sorted(found.get("model_versions", []), key=lambda v: int(v["version"]))


def _tuned_usecase(folder: Path) -> Path:
    """A copy of yarnit that trains in a fraction of the time, with nightly cron times at midnight UTC."""
    target = folder / USECASE
    shutil.copytree(REPO_ROOT / "include" / "usecases" / USECASE, target)
    config = yaml.safe_load((target / "usecase.yaml").read_text())
    config["schedule"] = {
        **config["schedule"],
        "training": "0 0 * * *",
        "scoring": "0 0 * * *",
        "monitoring": "0 0 * * *",
    }
    config["split"] = {**config["split"], "window_days": 7, "min_partitions": 5}
    config["model"]["params"] = {**config["model"]["params"], "max_iter": 40}
    (target / "usecase.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its folders are private to this account, and PostgreSQL runs as its own
    # account when we are root. 0711: that account may pass through to its data folder, not list ours.
    base = Path(tempfile.mkdtemp(prefix="mlcycle-stack-"))
    base.chmod(0o711)
    root = base / "stack"
    # Airflow's services, and the steps they launch, inherit it from `up`: the DAG files stay as they are.
    env = {**os.environ, "MLCYCLE_USECASES_DIR": str(_tuned_usecase(base / "usecases"))}
    # A CI time-out sends SIGTERM, which would end pytest without running `down` and leave the stack running:
    # turn it into KeyboardInterrupt, for which pytest runs the teardown.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = time.monotonic()
        up = subprocess.run(
            [PYTHON, "-m", "mlcycle_dev.stack", "--root", str(root), "up", "--task-retry-delay", str(RETRY_DELAY)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        up_seconds = time.monotonic() - started
        assert up.returncode == 0, f"make up failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        state = load_state(root)
        assert state is not None
        credentials = state["credentials"]["airflow"]
        client = AirflowClient(
            state["env"]["AIRFLOW_API_URL"], username=credentials["user"], password=credentials["password"]
        )
        handle = Stack(root, state, client, facts={"up_seconds": round(up_seconds), "up_output": up.stdout})
        _generate(handle)
        mp = pytest.MonkeyPatch()
        # In-test readers (Storage, MLflow clients) use the stack like any shell that sourced `make up`'s exports.
        for key, value in {**state["env"], "MLCYCLE_USECASES_DIR": env["MLCYCLE_USECASES_DIR"]}.items():
            mp.setenv(key, value)
        try:
            yield handle
        finally:
            mp.undo()
    finally:
        down = subprocess.run(
            [PYTHON, "-m", "mlcycle_dev.stack", "--root", str(root), "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        left = running_services(root)
        state = load_state(root) or {}
        leftovers = {name: record.members() for name, record in records(state).items() if record.members()}
        shutil.rmtree(base, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous_handler)
        # `make down` leaves nothing running: every process of every recorded session is gone.
        assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
        assert left == {} and leftovers == {}, (left, leftovers)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- helpers ---------------------------------------------------------------------------------------------------


def _day(run: dict[str, Any]) -> str:
    """The day a run processes: its partition key (partition-aware schedules, ADR 0010), else its logical date's."""
    return str(run.get("partition_key") or run["logical_date"][:10])


def _generate(stack: Stack) -> None:
    argv = [str(Path(PYTHON).parent / "mlcycle"), "generate", "--usecase", USECASE, "--rows", "700"]
    argv += ["--start", FIRST_DAY.isoformat(), "--end", LAST_DAY.isoformat()]
    done = subprocess.run(argv, env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _runs(stack: Stack, dag_id: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.airflow.request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, **params}
    )["dag_runs"]
    return found


def _task(stack: Stack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}"
    found: dict[str, Any] = stack.airflow.request("GET", path)
    return found


def _tries(stack: Stack, dag_id: str, run_id: str, task_id: str) -> dict[int, str | None]:
    """try number -> state of every try of a task (the history Airflow keeps across retries and resets)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/tries"
    tries = stack.airflow.request("GET", path)["task_instances"]
    return {int(t["try_number"]): t["state"] for t in tries}


def _xcom(stack: Stack, dag_id: str, run_id: str, task_id: str) -> Any:
    path = (
        f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    )
    value = stack.airflow.request("GET", path, params={"deserialize": "true"})["value"]
    return json.loads(value) if isinstance(value, str) else value


def _wait_run(stack: Stack, dag_id: str, run_id: str, timeout: float = 900) -> str:
    def finished() -> str | None:
        state = str(stack.airflow.dag_run(dag_id, run_id)["state"])
        return state if state in ("success", "failed") else None

    state = wait_until(finished, timeout, f"{dag_id}/{run_id}", interval=2)
    assert state == "success", (state, stack.airflow.task_states(dag_id, run_id))
    return state


def _step_processes(stack: Stack, step: str, partition: str) -> list[int]:
    """PIDs of `mlcycle <step> ... --partition <partition>` processes the scheduler's session runs."""
    found = []
    for pid in records(stack.state)["scheduler"].members():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if any(w.endswith("/mlcycle") for w in words[:2]) and step in words and partition in words:
            found.append(pid)
    return found


class TornReadMonitor(threading.Thread):
    """Reads partitions over and over while a step writes them; records any state a reader would see torn.

    A committed partition (one with `_SUCCESS`) is torn if a file its manifest lists is missing or does not
    match the recorded sha256. Absent (not yet committed) is fine: readers treat it as "not there yet".
    """

    def __init__(self, uris: list[str]) -> None:
        super().__init__(daemon=True)
        from mlcycle.settings import storage_root
        from mlcycle.storage.partitions import Storage

        self.storage = Storage(storage_root())
        self.uris = uris
        self.done = threading.Event()
        self.reads = 0
        self.torn: list[str] = []

    def run(self) -> None:
        while not self.done.is_set():
            for uri in self.uris:
                self._check(uri)

    def _check(self, uri: str) -> None:
        try:
            with self.storage.local_copy(uri) as folder:
                manifest = json.loads((folder / "_SUCCESS").read_text())
                for name, meta in manifest["files"].items():
                    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
                    if digest != meta["sha256"]:
                        self.torn.append(f"{uri}/{name}: digest differs")
            self.reads += 1
        except FileNotFoundError:
            pass  # not committed yet, or replaced while we read: an error for the reader, never a mix


class FaultProxy(http.server.ThreadingHTTPServer):
    """An HTTP pass-through in front of the MLflow server; `after(method, path)` runs once a response is in hand.

    When the upstream is down it answers 502, as the ingress in front of a stopped MLflow pod would.
    """

    def __init__(self, upstream: str, after: Callable[[str, str], None]) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.after = after
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", free_port()), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            upstream = http.client.HTTPConnection(self.server.upstream, timeout=120)
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            status, payload = response.status, response.read()
            content_type = response.getheader("Content-Type", "application/json")
            upstream.close()
        except OSError as error:
            status, content_type = 502, "application/json"
            payload = json.dumps({"error_code": "BAD_GATEWAY", "message": f"MLflow unreachable: {error}"}).encode()
        self.server.seen.append(f"{self.command} {self.path.split('?')[0]} {status}")
        self.server.after(self.command, self.path.split("?")[0])
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reports what matters
        pass


# --- the tests (any order: what several need is a module fixture) ------------------------------------------


def test_up_returned_and_every_service_is_healthy_on_loopback(stack: Stack) -> None:
    assert status(stack.root) == {name: "healthy" for name in stack.state["services"]}
    assert set(stack.state["services"]) == {
        "postgres",
        "s3",
        "mlflow",
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
    }
    for name, spec in stack.state["services"].items():
        assert spec["url"] == "" or spec["url"].split("//")[1].startswith("127.0.0.1:"), (name, spec["url"])
    output = stack.facts["up_output"]
    for shown in ("export MLFLOW_TRACKING_URI=", "export AIRFLOW_API_URL=", "export MLCYCLE_STORAGE_ROOT=s3://"):
        assert shown in output
    assert stack.state["credentials"]["mlflow_admin"]["password"] in output
    # The measured start-up, for the record (pytest -rP shows it).
    print(json.dumps({"up_seconds": stack.facts["up_seconds"], **stack.state["startup_seconds"]}))
    # The services outlived the `up` process; the DAG files are the repository's, parsed on PostgreSQL.
    assert stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    dag_ids = {d["dag_id"] for d in stack.airflow.request("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
    assert {f"{USECASE}_{f}" for f in ("training", "scoring", "monitoring", "promotion")} <= dag_ids


@pytest.fixture(scope="module")
def nightly(stack: Stack) -> dict[str, Any]:
    """The scheduler's own nightly training run, with the scheduler restarted while `validate` runs. It registers
    v1 and makes it @champion: the scoring, backfill, S3/MLflow and outage tests build on it, whatever their order."""
    dag_id = f"{USECASE}_training"
    stack.airflow.unpause(dag_id)  # the scheduler now creates the latest nightly run by itself
    scheduled = wait_until(lambda: _runs(stack, dag_id, run_type="scheduled"), 180, "the nightly run", interval=2)
    run = scheduled[0]
    run_id = run["dag_run_id"]

    # Restart the scheduler while a task of the run is executing.
    wait_until(
        lambda: _task(stack, dag_id, run_id, "validate")["state"] == "running", 600, "validate to run", interval=1
    )
    took = stack.facts["scheduler_restart_seconds"] = _restart(stack, "scheduler")
    print(f"scheduler restarted, healthy after {took} s")
    state = _wait_run(stack, dag_id, run_id, timeout=900)
    return {"dag_id": dag_id, "run": run, "run_id": run_id, "partition": _day(run), "state": state}


def test_the_scheduler_runs_the_nightly_training_and_survives_its_own_restart(
    stack: Stack, nightly: dict[str, Any]
) -> None:
    dag_id, run, run_id, partition = nightly["dag_id"], nightly["run"], nightly["run_id"], nightly["partition"]
    # Data-interval semantics: the run after midnight processes the day that just ended.
    assert (
        partition
        == (
            dt.datetime.fromisoformat(run["run_after"].replace("Z", "+00:00")).date() - dt.timedelta(days=1)
        ).isoformat()
    )
    # The scheduler's workers die with it, the running try with them; the new scheduler resets it and re-runs it.
    tries = _tries(stack, dag_id, run_id, "validate")
    print(f"validate tries across the restart: {tries}")
    assert len(tries) >= 2 and tries[1] != "success" and tries[max(tries)] == "success", tries
    train = _xcom(stack, dag_id, run_id, "train")
    assert train["partition"] == partition and train["metrics"]["model_version"] == "1"
    promote = _xcom(stack, dag_id, run_id, "promote")
    assert promote["metrics"]["champion_version"] == "1"


def _restart(stack: Stack, name: str) -> float:
    left = stop_service(stack.root, name)
    assert left == [], f"{name} left {left}"
    took = start_service(stack.root, name)
    stack.reload()
    return took


def test_a_rest_triggered_run_with_params_completes_after_its_step_is_killed(
    stack: Stack, nightly: dict[str, Any]
) -> None:
    from mlcycle.settings import storage_root
    from mlcycle.storage.partitions import Storage

    dag_id = f"{USECASE}_scoring"
    day = REST_DAY.isoformat()
    storage = Storage(storage_root())
    targets = [storage.partition_uri(USECASE, "validated", REST_DAY)]
    targets += [
        storage.partition_uri(USECASE, "predictions", REST_DAY, f"role={r}") for r in ("champion", "challenger")
    ]
    monitor = TornReadMonitor(targets)
    monitor.start()
    try:
        stack.airflow.unpause(dag_id)
        run_id = stack.airflow.trigger(dag_id, conf={"partition": day}, note="test: Params through the REST API")[
            "dag_run_id"
        ]
        # SIGKILL the step's own process as soon as it runs: what an OOM kill or a lost node does to a task.
        pids = wait_until(lambda: _step_processes(stack, "score", day), 600, "the score step's process", interval=0.2)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        _wait_run(stack, dag_id, run_id, timeout=600)
    finally:
        monitor.done.set()
        monitor.join(30)
    tries = _tries(stack, dag_id, run_id, "score")
    assert tries == {1: "failed", 2: "success"}, tries  # the killed try failed; Airflow's retry completed the run
    assert stack.airflow.dag_run(dag_id, run_id)["conf"] == {"partition": day}
    result = _xcom(stack, dag_id, run_id, "score")
    assert result["partition"] == day
    assert storage.exists(targets[0]) and storage.exists(targets[1])
    assert monitor.reads > 0 and monitor.torn == [], monitor.torn


def test_a_seven_day_backfill_created_through_the_api_completes(stack: Stack, nightly: dict[str, Any]) -> None:
    first, last = BACKFILL
    results = run_backfills(stack.airflow, USECASE, first, last, ["scoring"], timeout=900)
    days = {_day(run): run["state"] for run in results[f"{USECASE}_scoring"]}
    expected = {(first + dt.timedelta(days=i)).isoformat(): "success" for i in range(7)}
    assert days == expected
    assert all(run["run_type"] == "backfill" for run in results[f"{USECASE}_scoring"])
    predictions = stack.keys(DATA_BUCKET, f"{USECASE}/predictions/")
    for day in expected:
        assert f"{USECASE}/predictions/ds={day}/role=champion/_SUCCESS" in predictions


def test_data_and_artifacts_are_in_s3_and_mlflow_lists_the_runs_and_aliases(
    stack: Stack, nightly: dict[str, Any]
) -> None:
    partition = nightly["partition"]
    data = stack.keys(DATA_BUCKET)
    for dataset in ("landing", "raw", "validated", "features", "evaluation"):
        assert any(k.startswith(f"{USECASE}/{dataset}/ds={partition}/") and k.endswith("_SUCCESS") for k in data), (
            dataset
        )
    # Every committed manifest's files are objects under the version prefix it names.
    s3 = stack.s3()
    manifests = [k for k in data if k.endswith("/_SUCCESS")]
    for key in manifests:
        manifest = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())
        folder = key.rsplit("/", 1)[0] + (f"/{manifest['data_prefix']}" if manifest.get("data_prefix") else "")
        assert {f"{folder}/{name}" for name in manifest["files"]} <= set(data), key

    artifacts = stack.keys(MLFLOW_BUCKET)
    assert any(k.endswith("/MLmodel") for k in artifacts), artifacts[:20]
    assert any(k.endswith(".png") or k.endswith(".html") or k.endswith(".json") for k in artifacts)

    model = stack.mlflow("GET", "/api/2.0/mlflow/registered-models/get", {"name": MODEL})["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    assert aliases.get("champion") == "1", aliases
    experiment = stack.mlflow(
        "GET", "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": f"mlcycle/{USECASE}"}
    )
    experiment = experiment["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:/"), experiment  # proxied to S3
    found = stack.mlflow(
        "POST",
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment_id"]], "filter": f"tags.`airflow.run_id` = '{nightly['run_id']}'"},
    )
    roles = [t["value"] for r in found["runs"] for t in r["data"]["tags"] if t["key"] == "mlcycle.role"]
    assert roles.count("parent") == 1 and "candidate" in roles, roles


def test_mlflow_refuses_requests_without_valid_credentials(stack: Stack) -> None:
    url = stack.env["MLFLOW_TRACKING_URI"]
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(url + path, timeout=30)
    assert anonymous.value.code == 401
    wrong = urllib.request.Request(
        url + path, headers={"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    )
    with pytest.raises(urllib.error.HTTPError) as bad_password:
        urllib.request.urlopen(wrong, timeout=30)
    assert bad_password.value.code == 401
    # The pipeline's own user may use the tracking API but not administer users.
    assert stack.mlflow("GET", path, admin=False)["experiments"]
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        stack.mlflow(
            "POST", "/api/2.0/mlflow/users/create", {"username": "intruder", "password": "x" * 16}, admin=False
        )
    assert forbidden.value.code == 403
    with urllib.request.urlopen(f"{url}/health", timeout=30) as health:  # the probe needs no login
        assert health.status == 200


def test_mlflow_stopped_mid_training_fails_the_step_cleanly_and_leaves_no_half_registered_version(
    stack: Stack, nightly: dict[str, Any]
) -> None:
    """Driven outside the scheduler: the outage must hit the one moment that matters, right after the version is
    created and before it is tagged, which only a proxy in the request path can time. The retry is what Airflow's
    would be: the same command and run id, the next try number."""
    partition = nightly["partition"]
    before = {v["version"] for v in stack.versions()}
    stopped = threading.Event()

    def stop_mlflow_after_registration(method: str, path: str) -> None:
        if method == "POST" and path.endswith("/model-versions/create") and not stopped.is_set():
            assert stop_service(stack.root, "mlflow") == []
            stopped.set()

    proxy = FaultProxy(stack.env["MLFLOW_TRACKING_URI"], stop_mlflow_after_registration)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        **stack.env,
        "MLFLOW_TRACKING_URI": proxy.url,
        # A new code version: the training cache must not answer with an earlier run's model.
        "MLCYCLE_CODE_VERSION": f"durability-{time.time_ns()}",
        "MLCYCLE_AIRFLOW_DAG_ID": f"{USECASE}_training",
        "MLCYCLE_AIRFLOW_RUN_ID": "manual__mlflow-outage",
        # Fail fast instead of riding out the outage with MLflow's client retries (minutes of back-off).
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    train = [
        str(Path(PYTHON).parent / "mlcycle"),
        "train",
        "--usecase",
        USECASE,
        "--partition",
        partition,
        "--cache",
        "on",
    ]
    try:
        first = subprocess.run(
            train, env={**env, "MLCYCLE_AIRFLOW_TRY_NUMBER": "1"}, capture_output=True, text=True, timeout=600
        )
        assert stopped.is_set(), f"MLflow was never stopped: {proxy.seen[-10:]}\n{first.stdout[-2000:]}"
        result = json.loads(first.stdout.strip().splitlines()[-1])
        # Clean: the infrastructure-error exit code (Airflow retries it), one line saying why, no hang.
        assert first.returncode == 1, (first.returncode, first.stdout[-2000:], first.stderr[-3000:])
        assert result["status"] == "error" and result["reason"], result

        stack.facts["mlflow_restart_seconds"] = start_service(stack.root, "mlflow")
        stack.reload()
        second = subprocess.run(
            train, env={**env, "MLCYCLE_AIRFLOW_TRY_NUMBER": "2"}, capture_output=True, text=True, timeout=600
        )
        assert second.returncode == 0, (second.stdout[-2000:], second.stderr[-3000:])
    finally:
        proxy.shutdown()
        if not status(stack.root).get("mlflow") == "healthy":
            start_service(stack.root, "mlflow")
    retried = json.loads(second.stdout.strip().splitlines()[-1])
    new = [v for v in stack.versions() if v["version"] not in before]
    tags = {v["version"]: {t["key"]: t["value"] for t in v.get("tags", [])} for v in new}
    # Exactly one new version, complete (it names its run and its cache key), and it is the one the retry returned:
    # no half-registered version (created, never tagged) and no duplicate registered by the retry.
    assert list(tags) == [retried["metrics"]["model_version"]], f"versions created by the two tries: {tags}"
    assert all({"mlcycle.cache_key", "mlcycle.run_id", "mlcycle.features_uri"} <= set(t) for t in tags.values()), tags
