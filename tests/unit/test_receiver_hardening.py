"""The alert receiver's HTTP edge, its logs and run ids, and its Airflow client's token refresh (issue 12: H1, H5, L3).

Requests go to a real receiver on a loopback port in front of a stand-in Airflow (tests/support/receiver.py);
the drills in tests/faults/test_faults_receiver.py cover the hostile requests the issue names, these the rest.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from mlcycle.airflow_api import AirflowAPIError, AirflowClient
from mlcycle.alert_receiver import AlertReceiver
from mlcycle.config import Retraining
from support.receiver import (
    TOKEN,
    FakeAirflow,
    alert,
    client_of,
    json_of,
    payload,
    post_head,
    raw_request,
    running_receiver,
    serving_fake_airflow,
    status_of,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fake() -> FakeAirflow:
    return FakeAirflow()


@pytest.fixture
def airflow_url(fake: FakeAirflow) -> Iterator[str]:
    with serving_fake_airflow(fake) as url:
        yield url


@pytest.fixture
def receiver(airflow_url: str) -> Iterator[tuple[str, int]]:
    with running_receiver(client_of(airflow_url)) as address:
        yield address


# H1: every malformed or hostile request gets a bounded, specific answer.


@pytest.mark.parametrize(
    ("extra", "status", "error"),
    [
        ("", 411, "Content-Length required"),
        ("Transfer-Encoding: chunked\r\n", 411, "Transfer-Encoding"),
        ("Content-Length: 2\r\nContent-Length: 7\r\n", 400, "conflicting Content-Length"),
        ("Content-Length: +2\r\n", 400, "'+2' is not a non-negative integer"),
        ("Content-Length: 1_0\r\n", 400, "'1_0' is not a non-negative integer"),
        (f"Content-Length: {(1 << 20) + 1}\r\n", 413, "over 1048576 bytes"),
    ],
)
def test_a_body_without_a_plain_bounded_length_is_refused(
    receiver: tuple[str, int], fake: FakeAirflow, extra: str, status: int, error: str
) -> None:
    answer = raw_request(receiver, post_head(None, extra=extra), b"{}")
    assert status_of(answer) == status and error in json_of(answer)["error"], answer
    assert fake.runs == {}


def test_an_unauthenticated_request_is_answered_before_its_body_arrives(receiver: tuple[str, int]) -> None:
    answer = raw_request(receiver, post_head("1000", token="wrong"), b'{"version": ')  # 988 bytes never come
    assert status_of(answer) == 401


def test_a_client_trickling_its_headers_is_cut_off_by_the_request_deadline(receiver: tuple[str, int]) -> None:
    # One byte every half second never lets a per-read timeout fire: only a deadline for the whole request does.
    stop = threading.Event()
    with socket.create_connection(receiver, timeout=30) as sock:

        def trickle() -> None:
            sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: receiver\r\nX-Pad: ")
            while not stop.wait(0.5):
                try:
                    sock.sendall(b"a")
                except OSError:
                    return  # the receiver closed the connection: what this test waits for

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            answer = sock.recv(65536)  # bounded by the socket's 30 s timeout
        finally:
            stop.set()
            sender.join()
    assert status_of(answer) == 408


def test_a_body_that_stops_short_is_timed_out(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    answer = raw_request(receiver, post_head("1000"), b'{"version": "4", ')  # then nothing more
    assert status_of(answer) == 408 and "request not received" in json_of(answer)["error"]
    assert fake.runs == {}


def test_a_body_cut_off_by_the_client_is_a_bad_request(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    answer = raw_request(receiver, post_head("1000"), b'{"version": "4"}', half_close=True)
    assert status_of(answer) == 400 and "16 of 1000 bytes" in json_of(answer)["error"]
    assert fake.runs == {}


# L3: what clients send cannot forge log lines, and distinct alerts never share a run id.


def test_control_characters_in_labels_cannot_forge_log_lines(
    airflow_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "data-rejected\n2026-09-17 06:10:00 INFO mlcycle.alert_receiver: all good\x1b[2K"
    receiver = AlertReceiver(client_of(airflow_url), TOKEN, {"yarnit": Retraining()})
    with caplog.at_level(logging.INFO, logger="mlcycle.alert_receiver"):
        status, answer = receiver.handle(AUTH, json.dumps(payload(alert("fp-log", alertname=forged))).encode())
    assert status == 200 and len(answer["created"]) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "mlcycle.alert_receiver"]
    assert lines and all("\n" not in line and "\x1b" not in line for line in lines), lines
    assert any("data-rejected\\x0a2026-09-17" in line for line in lines), lines


def test_a_request_line_cannot_forge_log_lines(receiver: tuple[str, int], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlcycle.alert_receiver"):
        raw_request(receiver, b"GET /healthz\x1b[1A\x1b[2K HTTP/1.1\r\nHost: receiver\r\n\r\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "mlcycle.alert_receiver"]
    assert lines and not any("\x1b" in line for line in lines), lines


def test_alerts_that_differ_only_past_250_characters_get_their_own_runs(airflow_url: str, fake: FakeAirflow) -> None:
    receiver = AlertReceiver(client_of(airflow_url), TOKEN, {"yarnit": Retraining()})
    common = "f" * 300
    first, second = alert(common + "-a", partition="2026-09-16"), alert(common + "-b", partition="2026-09-16")
    status, answer = receiver.handle(AUTH, json.dumps(payload(first, second)).encode())
    assert status == 200 and len(answer["created"]) == 2 and answer["duplicates"] == [], answer
    run_ids = [c["run_id"] for c in answer["created"]]
    assert len(set(run_ids)) == 2 and all(len(r) <= 250 for r in run_ids)
    assert all(r.startswith("alert__data-rejected__2026-09-17T06:10:00Z__") for r in run_ids), run_ids


def test_a_repeated_alert_keeps_its_run_id_across_receivers(airflow_url: str, fake: FakeAirflow) -> None:
    document = json.dumps(payload(alert("fp-repeat", partition="2026-09-16"))).encode()
    first = AlertReceiver(client_of(airflow_url), TOKEN, {"yarnit": Retraining()}).handle(AUTH, document)
    restarted = AlertReceiver(client_of(airflow_url), TOKEN, {"yarnit": Retraining()}).handle(AUTH, document)
    assert first[0] == restarted[0] == 200 and len(first[1]["created"]) == 1
    assert restarted[1]["duplicates"] == [{"dag_id": "yarnit_scoring", "run_id": first[1]["created"][0]["run_id"]}]


# H2: an alert that says it must not be rerun (mlcycle's own failure alerts) never becomes a run, even if a
# misrouted Alertmanager sends it here: a failing step cannot rerun itself into a loop.


@pytest.mark.parametrize("value", ["false", "False", "no", ""])
def test_an_alert_not_labelled_for_reruns_is_ignored_not_run(airflow_url: str, fake: FakeAirflow, value: str) -> None:
    receiver = AlertReceiver(client_of(airflow_url), TOKEN, {"yarnit": Retraining()})
    refused = alert("fp-step-failed", alertname="step-failed", partition="2026-09-16", mlcycle_auto_rerun=value)
    status, answer = receiver.handle(AUTH, json.dumps(payload(refused)).encode())
    assert status == 200 and answer["created"] == [] and fake.runs == {}, answer
    assert answer["ignored"] == [
        {"alertname": "step-failed", "reason": f"labelled mlcycle_auto_rerun={value!r}, not 'true'"}
    ]
    wanted = alert("fp-wanted", partition="2026-09-16", mlcycle_auto_rerun="true")
    status, answer = receiver.handle(AUTH, json.dumps(payload(wanted)).encode())
    assert status == 200 and len(answer["created"]) == 1, answer


# H5: the Airflow client renews an expired token once; readiness authenticates.


def test_the_client_gets_a_new_token_when_airflow_refuses_the_old_one(airflow_url: str, fake: FakeAirflow) -> None:
    client = client_of(airflow_url)
    client.request("GET", "/api/v2/dags")
    fake.expire_tokens()
    run = client.trigger("yarnit_scoring", conf={"partition": "2026-09-16"}, run_id="after-expiry")
    assert run["dag_run_id"] == "after-expiry" and fake.token_requests == 2


def test_a_second_401_after_a_new_token_is_an_error_not_a_loop(airflow_url: str, fake: FakeAirflow) -> None:
    client = client_of(airflow_url)
    client.request("GET", "/api/v2/dags")
    fake.expire_tokens()
    fake.password = "rotated"  # the new token cannot be had either
    with pytest.raises(AirflowAPIError, match=r"POST /auth/token -> HTTP 401") as error:
        client.request("GET", "/api/v2/dags")
    assert error.value.status == 401 and fake.token_requests == 1


def test_a_fixed_token_that_expired_says_how_to_renew_it(airflow_url: str, fake: FakeAirflow) -> None:
    token = fake.issue_token()
    client = AirflowClient(airflow_url, token=token)
    client.request("GET", "/api/v2/dags")
    fake.expire_tokens()
    with pytest.raises(AirflowAPIError, match="no credentials to get a new one: set AIRFLOW_USERNAME"):
        client.request("GET", "/api/v2/dags")


def test_readiness_authenticates_against_airflow(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    ready = raw_request(receiver, b"GET /readyz HTTP/1.1\r\nHost: receiver\r\n\r\n")
    assert status_of(ready) == 200 and json_of(ready)["status"] == "ready"
    assert fake.token_requests == 1
    live = raw_request(receiver, b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n")
    assert status_of(live) == 200


def test_the_chart_probes_readiness_through_airflow_and_liveness_locally() -> None:
    from support.helm_release import render

    deployment = render("default").get("Deployment", "mlcycle-alert-receiver")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", "an Airflow outage must not restart it"
