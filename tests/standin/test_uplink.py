"""The stand-in can play a slow uplink: every request body the client sends (uploads, presigned
PUTs, inline data URIs in a submit) shares one token bucket of a given rate."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from fal_kontext.standin import StandInServer
from fal_kontext.standin.uplink import UplinkThrottle

RATE = 1_000_000  # bytes per second
BODY = 200_000  # 0.2 s at RATE
# Only lower bounds are tight (a throttle can't be beaten); the upper bound only catches a rate
# off by a multiple (bits for bytes would be 8x) and leaves a busy 2-core machine plenty of room.
SLACK_BELOW, SLACK_ABOVE, SLACK_SECONDS = 0.85, 4.0, 0.3


@pytest.fixture
def slow_server():
    with StandInServer(processing_delay=0.05, uplink_bytes_per_second=RATE) as running:
        yield running


def _token(client: httpx.Client, server: StandInServer) -> str:
    return client.post(f"{server.base_url}/storage/auth/token",
                       params={"storage_type": "fal-cdn-v3"}, json={}).json()["token"]


def _upload(client: httpx.Client, server: StandInServer, token: str, size: int) -> httpx.Response:
    return client.post(f"{server.base_url}/files/upload", content=b"\0" * size,
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/octet-stream"})


def test_an_upload_takes_its_size_over_the_rate(slow_server, client):
    token = _token(client, slow_server)
    started = time.monotonic()
    response = _upload(client, slow_server, token, BODY)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert slow_server.requests[-1].body == b"\0" * BODY  # every byte arrives, only later
    assert SLACK_BELOW * BODY / RATE <= elapsed <= SLACK_ABOVE * BODY / RATE + SLACK_SECONDS


def test_concurrent_uploads_share_one_link(slow_server, client):
    token = _token(client, slow_server)
    started = time.monotonic()
    threads = [threading.Thread(target=_upload, args=(client, slow_server, token, BODY // 2))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= SLACK_BELOW * BODY / RATE


def test_a_submit_with_inline_data_is_throttled_too(slow_server, client):
    started = time.monotonic()
    client.post(f"{slow_server.base_url}/fal-ai/flux-pro/kontext/multi",
                json={"prompt": "p", "image_urls": ["data:image/png;base64," + "A" * BODY]})
    assert time.monotonic() - started >= SLACK_BELOW * BODY / RATE


def test_the_rate_is_off_by_default_and_can_be_set_on_a_running_server(client):
    with StandInServer(processing_delay=0.05) as server:
        assert server.uplink_bytes_per_second is None
        token = _token(client, server)
        server.uplink_bytes_per_second = RATE
        started = time.monotonic()
        _upload(client, server, token, BODY)
        assert time.monotonic() - started >= SLACK_BELOW * BODY / RATE


def test_the_bucket_holds_at_most_a_short_burst():
    throttle = UplinkThrottle(RATE)
    assert throttle.take(1000) == 0.0  # an idle link sends a small write at once
    waits = [throttle.take(100_000) for _ in range(3)]
    assert waits == sorted(waits) and waits[-1] >= 0.29  # queued writes wait their turn
