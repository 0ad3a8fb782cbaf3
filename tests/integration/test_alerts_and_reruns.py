"""`mlcycle rerun` and the Alertmanager webhook receiver against a real Airflow API server on loopback.

The api-server and the dag-processor run for real (SQLite, simple auth manager with a password); the
triggered runs are read back through the REST API with their conf, a training alert's retraining request as
the Asset event and the training DAG's queued event. No scheduler: the runs stay queued, which is all these
tests need (what a run does is tested elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle.alert_receiver import AlertReceiver, make_server
from mlcycle.config import get_usecase
from mlcycle.retraining import request_asset_name
from mlcycle.settings import embedded_environment
from mlcycle_dev.stack.airflow import AirflowServices

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TOKEN = "test-webhook-token"
POLICIES = {"yarnit": get_usecase("yarnit").retraining}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    env = {**os.environ, **embedded_environment(tmp_path_factory.mktemp("alerts"))}
    with AirflowServices(env, components=("api-server", "dag-processor")) as services:
        services.wait_for_dags(["yarnit_scoring", "yarnit_training", "yarnit_monitoring"], timeout=180)
        yield services


@pytest.fixture(scope="module")
def receiver_url(airflow: AirflowServices) -> Iterator[str]:
    client = AirflowClient(airflow.base_url, username=airflow.username, password=airflow.password)
    server = make_server(AlertReceiver(client, TOKEN, POLICIES), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _post(url: str, payload: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{url}/alerts", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _alert(fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "data-rejected", "usecase": "yarnit", **labels},
        "annotations": {"summary": "contract rejected 2026-09-16: price renamed"},
        "startsAt": "2026-09-17T06:10:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "mlcycle", "groupKey": "{}:{}", "alerts": list(alerts)}


def _runs(airflow: AirflowServices, dag_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})[
        "dag_runs"
    ]
    return runs


def test_rerun_cli_triggers_a_run_through_the_rest_api(airflow: AirflowServices) -> None:
    env = {
        **airflow.env,
        "AIRFLOW_API_URL": airflow.base_url,
        "AIRFLOW_USERNAME": airflow.username,
        "AIRFLOW_PASSWORD": airflow.password,
    }
    argv = [str(BIN / "mlcycle"), "rerun", "--usecase", "yarnit", "--partition", "2026-09-16", "--dag", "scoring"]
    out = subprocess.run([*argv, "--reason", "upstream export fixed"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    run = airflow.request("GET", f"/api/v2/dags/yarnit_scoring/dagRuns/{result['outputs']['run_id']}")
    assert run["conf"] == {"partition": "2026-09-16", "reason": "upstream export fixed"}
    assert run["partition_key"] == "2026-09-16"  # the grid shows the day (ADR 0010)
    assert run["run_type"] == "manual" and result["metrics"]["paused"] is True
    assert "unpause yarnit_scoring" in result["reason"]

    # Wrong credentials: Airflow refuses, the CLI says so and does not retry (REJECTED would be wrong: 401 is an error).
    bad = subprocess.run(
        [*argv, "--reason", "x" * 5], env={**env, "AIRFLOW_PASSWORD": "wrong"}, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "HTTP 401" in bad.stdout


def test_webhook_turns_an_alert_into_one_run(airflow: AirflowServices, receiver_url: str) -> None:
    status, answer = _post(receiver_url, _payload(_alert("fp-1", partition="2026-09-16")))
    assert status == 200 and len(answer["created"]) == 1, answer
    created = answer["created"][0]
    assert created["dag_id"] == "yarnit_scoring" and created["partition"] == "2026-09-16"
    run = airflow.request("GET", f"/api/v2/dags/yarnit_scoring/dagRuns/{created['run_id']}")
    assert run["conf"]["partition"] == "2026-09-16"
    assert run["conf"]["reason"] == "alert data-rejected: contract rejected 2026-09-16: price renamed"
    assert run["conf"]["alert"]["fingerprint"] == "fp-1"


def _retraining_requests(airflow: AirflowServices) -> list[dict[str, Any]]:
    asset_id = airflow.asset_id(request_asset_name("yarnit"))
    return airflow.asset_events(asset_id)


def test_a_training_alert_is_one_retraining_request_and_repeats_are_deduplicated(
    airflow: AirflowServices, receiver_url: str
) -> None:
    airflow.unpause("yarnit_training")  # Airflow queues Asset-triggered runs of unpaused DAGs only
    before = len(_retraining_requests(airflow))
    payload = _payload(_alert("fp-stale", alertname="model-stale"))
    first = _post(receiver_url, payload)
    assert first[0] == 200 and first[1]["created"][0]["dag_id"] == "yarnit_training", first
    assert first[1]["created"][0]["partition"] == "2026-09-16"  # the day before the alert started
    (event, *_) = _retraining_requests(airflow)  # newest first
    assert event["extra"]["partition"] == "2026-09-16" and event["extra"]["reason"].startswith("alert model-stale")
    assert event["partition_key"] == "2026-09-16"
    # The training DAG is partition-aware (ADR 0010): the request is a pending partitioned run for its day.
    pending = airflow.request(
        "GET", "/ui/partitioned_dag_runs", params={"dag_id": "yarnit_training", "has_created_dag_run_id": False}
    )["partitioned_dag_runs"]
    assert [p["partition_key"] for p in pending] == ["2026-09-16"], "the training DAG runs on the request"
    repeat = _post(receiver_url, payload)
    assert repeat[0] == 200 and repeat[1]["created"] == [] and len(repeat[1]["duplicates"]) == 1
    # A second receiver (a restart, or another replica) has no memory: the request's event still dedups.
    client = AirflowClient(airflow.base_url, username=airflow.username, password=airflow.password)
    fresh = AlertReceiver(client, TOKEN, POLICIES)
    status, answer = fresh.handle({"Authorization": f"Bearer {TOKEN}"}, json.dumps(payload).encode())
    assert status == 200 and answer["created"] == [] and len(answer["duplicates"]) == 1
    assert len(_retraining_requests(airflow)) == before + 1
    assert _runs(airflow, "yarnit_training") == [], "no run bypasses the Asset"


def test_a_rerun_alert_is_deduplicated_across_receivers(airflow: AirflowServices, receiver_url: str) -> None:
    payload = _payload(_alert("fp-repeat", partition="2026-09-15"))
    first = _post(receiver_url, payload)
    assert first[0] == 200 and len(first[1]["created"]) == 1
    client = AirflowClient(airflow.base_url, username=airflow.username, password=airflow.password)
    status, answer = AlertReceiver(client, TOKEN, POLICIES).handle(
        {"Authorization": f"Bearer {TOKEN}"}, json.dumps(payload).encode()
    )
    assert status == 200 and answer["duplicates"] == [
        {"dag_id": "yarnit_scoring", "run_id": first[1]["created"][0]["run_id"]}
    ]


def _expired(airflow: AirflowServices) -> str:
    """A token the api-server issued, re-signed with its own secret with an `exp` in the past: an expired JWT."""
    token = airflow.token()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(iat=claims["iat"] - 7200, nbf=claims.get("nbf", claims["iat"]) - 7200, exp=claims["iat"] - 3600)
    secret = airflow.env["AIRFLOW__API_AUTH__JWT_SECRET"]
    return jwt.encode(claims, secret, algorithm=header["alg"], headers={k: v for k, v in header.items() if k == "kid"})


def test_an_expired_token_is_renewed_and_the_rerun_created(airflow: AirflowServices) -> None:
    expired = _expired(airflow)
    stale = AirflowClient(airflow.base_url, token=expired)
    with pytest.raises(AirflowAPIError, match="HTTP 401"):
        stale.request("GET", "/api/v2/dags", params={"limit": 1})
    client = AirflowClient(airflow.base_url, username=airflow.username, password=airflow.password, token=expired)
    receiver = AlertReceiver(client, TOKEN, POLICIES)
    payload = _payload(_alert("fp-expired", partition="2026-09-14"))
    status, answer = receiver.handle({"Authorization": f"Bearer {TOKEN}"}, json.dumps(payload).encode())
    assert status == 200 and len(answer["created"]) == 1, answer
    run = airflow.request("GET", f"/api/v2/dags/yarnit_scoring/dagRuns/{answer['created'][0]['run_id']}")
    assert run["conf"]["alert"]["fingerprint"] == "fp-expired"


def test_readiness_fails_with_credentials_airflow_refuses(airflow: AirflowServices) -> None:
    good = AlertReceiver(
        AirflowClient(airflow.base_url, username=airflow.username, password=airflow.password), TOKEN, POLICIES
    )
    bad = AlertReceiver(AirflowClient(airflow.base_url, username=airflow.username, password="wrong"), TOKEN, POLICIES)
    assert good.readiness()[0] == 200
    status, answer = bad.readiness()
    assert status == 503 and "HTTP 401" in answer["error"]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_webhook_rejects_unauthenticated_requests(receiver_url: str, token: str | None) -> None:
    status, answer = _post(receiver_url, _payload(_alert("fp-auth")), token=token)
    assert status == 401 and "bearer token" in answer["error"]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"{not json", "body is not JSON"),
        ({"version": "3", "alerts": [_alert("fp-v")]}, "$.version: expected '4'"),
        (_payload(), "$.alerts: expected a non-empty list"),
        (_payload(_alert("fp-u", usecase="nope")), "$.alerts[0].labels.usecase: 'nope' is not a known use case"),
        (_payload(_alert("fp-d", dag="promotion")), "$.alerts[0].labels.dag: 'promotion' is not one of"),
        (_payload(_alert("fp-p", partition="16/09/2026")), "$.alerts[0].labels.partition: '16/09/2026'"),
        (_payload({**_alert("fp-t"), "startsAt": "yesterday"}), "$.alerts[0].startsAt: not an RFC 3339 time"),
        (_payload(_alert("fp-ok"), {**_alert(""), "fingerprint": ""}), "$.alerts[1].fingerprint: missing"),
    ],
)
def test_webhook_rejects_malformed_payloads(
    airflow: AirflowServices, receiver_url: str, payload: Any, problem: str
) -> None:
    before = len(_runs(airflow, "yarnit_scoring"))
    status, answer = _post(receiver_url, payload)
    assert status == 400
    assert problem in json.dumps(answer).replace('\\"', '"'), answer
    assert len(_runs(airflow, "yarnit_scoring")) == before, "nothing is triggered from a bad payload"


def test_resolved_alerts_are_ignored(receiver_url: str) -> None:
    status, answer = _post(receiver_url, _payload({**_alert("fp-r"), "status": "resolved"}))
    assert status == 200 and answer["created"] == [] and answer["ignored"][0]["reason"] == "resolved"
