"""The status stream as fal serves it: data events per change, keep-alive comments, closed after
COMPLETED; and the ways it can be refused or break."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI


def _job(client, server, refs):
    return client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()


def _read(client, url, **params):
    """(seconds since start, line) for every non-empty line until the server closes."""
    started, lines = time.monotonic(), []
    with client.stream("GET", url, params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
    return lines


def test_keep_alive_comments_fill_silences_longer_than_the_interval(client, refs):
    with StandInServer(processing_delay=0.9, stream_keepalive=0.2) as server:
        body = _job(client, server, refs)
        lines = _read(client, body["status_url"] + "/stream", logs="0")
    comments = [at for at, line in lines if line.startswith(":")]
    data = [json.loads(line[6:]) for _, line in lines if line.startswith("data: ")]
    assert [event["status"] for event in data] == ["IN_PROGRESS", "COMPLETED"]
    assert 3 <= len(comments) <= 5  # ~0.9 s of silence at one comment per 0.2 s
    gaps = [b - a for a, b in zip([0.0, *comments], comments)]
    assert max(gaps) < 0.2 + 0.15


def test_default_keep_alive_is_fals_fifteen_seconds(client, refs):
    with StandInServer(processing_delay=0.6) as server:
        body = _job(client, server, refs)
        lines = _read(client, body["status_url"] + "/stream")
    assert server.stream_keepalive == 15.0
    assert not [line for _, line in lines if line.startswith(":")]


def test_every_data_event_is_one_line_of_json_then_a_blank_line(client, refs):
    with StandInServer(processing_delay=0.3) as server:
        body = _job(client, server, refs)
        with client.stream("GET", body["status_url"] + "/stream", params={"logs": "1"}) as response:
            raw = response.read().decode()
    frames = [frame for frame in raw.split("\n\n") if frame]
    assert frames and all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    assert json.loads(frames[-1][6:])["status"] == "COMPLETED"
    assert raw.endswith("\n\n")


def test_stream_of_a_completed_job_sends_one_event_and_closes(server, client, refs):
    body = _job(client, server, refs)
    time.sleep(server.processing_delay + 0.3)
    lines = _read(client, body["status_url"] + "/stream")
    assert [json.loads(line[6:])["status"] for _, line in lines] == ["COMPLETED"]


@pytest.mark.parametrize("status", [404, 405, 500])
def test_stream_can_be_refused(server, client, refs, status):
    body = _job(client, server, refs)
    server.faults.add("status_stream", status=status)
    assert client.get(body["status_url"] + "/stream").status_code == status
    assert client.get(body["status_url"]).status_code == 200  # polling still works


def test_stream_can_break_after_some_events(client, refs):
    with StandInServer(processing_delay=0.5, queue_delay=0.3) as server:
        body = _job(client, server, refs)
        server.faults.add("status_stream", truncate=True, stream_events=2)
        events = []
        with client.stream("GET", body["status_url"] + "/stream") as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:])["status"])
    assert len(events) == 2 and "COMPLETED" not in events


def test_stalled_stream_goes_silent_without_keep_alives(client, refs):
    with StandInServer(processing_delay=0.5, stream_keepalive=0.1) as server:
        body = _job(client, server, refs)
        server.faults.add("status_stream", stall=True)
        lines: list[str] = []
        with pytest.raises(httpx.ReadTimeout), httpx.stream(
                "GET", body["status_url"] + "/stream", timeout=httpx.Timeout(0.8),
                headers={"Authorization": "Key k"}) as response:
            lines.extend(response.iter_lines())
    assert [line for line in lines if line] == [lines[0]] and lines[0].startswith("data: ")


def test_status_stream_requests_are_counted_with_polls(server, client, refs):
    body = _job(client, server, refs)
    client.get(body["status_url"])
    _read(client, body["status_url"] + "/stream")
    assert [r.route for r in server.status_requests()] == ["status", "status_stream"]
