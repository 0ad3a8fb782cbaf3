"""Fault drills: the alert receiver under hostile requests and an Airflow whose token expires.

Each drill sends its request to a real receiver serving on a loopback port (the HTTP server `mlcycle
alert-receiver` runs) in front of a stand-in Airflow API (tests/support/receiver.py). Each asserts a bounded,
correct answer, that nothing was triggered by what it refused, and that the receiver still turns a good alert
into a run afterwards. The receiver touches no model: the champion is not at stake here.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from support.receiver import (
    FakeAirflow,
    alert,
    client_of,
    json_of,
    payload,
    post_alerts,
    post_head,
    raw_request,
    running_receiver,
    serving_fake_airflow,
    status_of,
)

GOOD = payload(alert("fp-good", partition="2026-09-16"))


@pytest.fixture
def fake() -> FakeAirflow:
    return FakeAirflow()


@pytest.fixture
def receiver(fake: FakeAirflow) -> Iterator[tuple[str, int]]:
    with serving_fake_airflow(fake) as url, running_receiver(client_of(url)) as address:
        yield address


def _runs(fake: FakeAirflow) -> int:
    return sum(len(runs) for runs in fake.runs.values())


def _still_serves(address: tuple[str, int], fake: FakeAirflow) -> None:
    status, answer = post_alerts(address, GOOD)
    assert status == 200 and len(answer["created"]) == 1, answer
    assert _runs(fake) == 1, "exactly the good alert became a run"


def test_negative_content_length_is_refused_without_reading(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    """`Content-Length: -1` gets 400 at once (it used to stream the body until the client stopped)."""
    answer = raw_request(receiver, post_head("-1"), b'{"version": "4"' + b" " * 65536)
    assert status_of(answer) == 400 and "Content-Length" in json_of(answer)["error"]
    assert _runs(fake) == 0
    _still_serves(receiver, fake)


def test_non_integer_content_length_is_refused(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    """`Content-Length: abc` gets a 400 JSON error naming the header (it used to drop the connection)."""
    answer = raw_request(receiver, post_head("abc"), b"{}")
    assert status_of(answer) == 400 and "'abc'" in json_of(answer)["error"]
    assert _runs(fake) == 0
    _still_serves(receiver, fake)


def test_half_sent_request_is_timed_out(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    """A request whose headers never end (slowloris) is answered 408 and closed by the receiver's deadline."""
    answer = raw_request(receiver, b"POST /alerts HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n")
    assert status_of(answer) == 408
    assert _runs(fake) == 0
    _still_serves(receiver, fake)


def test_connection_flood_is_bounded_and_a_good_alert_gets_through(
    receiver: tuple[str, int], fake: FakeAirflow
) -> None:
    """64 idle connections occupy a fixed pool (no thread per connection); the excess is answered 503, and once
    the flood is gone a good alert is served (Alertmanager retries on 503)."""
    threads_before = threading.active_count()
    flood = [socket.create_connection(receiver, timeout=30) for _ in range(64)]
    try:
        status, answer = post_alerts(receiver, GOOD)
        assert status == 503 and "busy" in answer["error"], (status, answer)
        assert threading.active_count() <= threads_before + 16, "the receiver starts a bounded number of threads"
        assert _runs(fake) == 0
    finally:
        for connection in flood:
            connection.close()
    for _ in range(30):  # the pool frees up as the closed connections are read to their end
        status, answer = post_alerts(receiver, GOOD)
        if status != 503:
            break
        threading.Event().wait(1.0)
    assert status == 200 and len(answer["created"]) == 1, answer


def test_expired_airflow_token_is_refreshed_and_the_rerun_created(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    """After Airflow stops accepting the receiver's JWT, the next alert gets a new token and its run is created."""
    status, _ = post_alerts(receiver, payload(alert("fp-before", partition="2026-09-15")))
    assert status == 200 and fake.token_requests == 1
    fake.expire_tokens()
    status, answer = post_alerts(receiver, GOOD)
    assert status == 200 and len(answer["created"]) == 1, answer
    assert fake.token_requests == 2 and _runs(fake) == 2


def test_oversized_unauthenticated_body_is_refused_unread(receiver: tuple[str, int], fake: FakeAirflow) -> None:
    """A 10 GiB body without a token is answered 401 before the client has sent it (auth comes first)."""
    answer = raw_request(receiver, post_head(str(10 << 30), token=None), b"x" * 65536)
    assert status_of(answer) == 401 and "bearer token" in json_of(answer)["error"]
    assert _runs(fake) == 0
    _still_serves(receiver, fake)


def test_wrong_airflow_password_makes_the_receiver_unready(fake: FakeAirflow) -> None:
    """With credentials Airflow refuses, /readyz answers 503 (the pod leaves the Service, a person is paged by
    the unready-pod alert) and an alert gets 502, so Alertmanager keeps it and retries; nothing is triggered."""
    with serving_fake_airflow(fake) as url, running_receiver(client_of(url, password="rotated")) as address:
        ready = raw_request(address, b"GET /readyz HTTP/1.1\r\nHost: receiver\r\n\r\n")
        assert status_of(ready) == 503 and "HTTP 401" in json_of(ready)["error"]
        status, answer = post_alerts(address, GOOD)
        assert status == 502 and "HTTP 401" in answer["failed"][0]["error"]
    assert _runs(fake) == 0
