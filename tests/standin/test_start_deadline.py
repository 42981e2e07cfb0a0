"""X-Fal-Request-Timeout: a job no runner started by its deadline is dropped, never billed, and
reported as fal's 504 with X-Fal-Request-Timeout-Type: user."""
from __future__ import annotations

import json
import time

import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, wait_completed

BODY = {"prompt": "p"}


def _submit(client, server, refs, timeout: str | None):
    headers = {} if timeout is None else {"X-Fal-Request-Timeout": timeout}
    return client.post(f"{server.base_url}/{MULTI}", json={**BODY, "image_urls": refs},
                       headers=headers)


def test_job_not_started_by_its_deadline_completes_with_a_user_timeout_504(client, refs):
    with StandInServer(queue_delay=5.0, processing_delay=0.1) as server:
        body = _submit(client, server, refs, "0.4").json()
        queued = client.get(body["status_url"]).json()
        status = wait_completed(client, body["status_url"], timeout=3.0)
        result = client.get(body["response_url"])
        billed = server.billed_request_ids()
        job = server.jobs[body["request_id"]]
    assert queued["status"] == "IN_QUEUE"
    assert status["error_type"] == "request_timeout" and status["logs"] == []
    assert result.status_code == 504
    assert result.headers["x-fal-request-timeout-type"] == "user"
    assert result.headers["x-fal-error-type"] == "request_timeout"
    assert result.headers["x-fal-request-id"] == body["request_id"]
    assert result.json()["error_type"] == "request_timeout"
    assert job.dropped and billed == []


def test_job_dropped_at_the_deadline_not_before(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = _submit(client, server, refs, "0.6").json()
        time.sleep(0.3)
        early = client.get(body["status_url"]).json()["status"]
        time.sleep(0.45)
        late = client.get(body["status_url"]).json()["status"]
    assert (early, late) == ("IN_QUEUE", "COMPLETED")


def test_job_started_before_its_deadline_runs_to_completion_and_bills(client, refs):
    with StandInServer(queue_delay=0.1, processing_delay=0.5) as server:
        body = _submit(client, server, refs, "0.3").json()
        wait_completed(client, body["status_url"], timeout=5.0)  # runs past the deadline
        result = client.get(body["response_url"])
        billed = server.billed_request_ids()
    assert result.status_code == 200
    assert billed == [body["request_id"]]


def test_status_mode_answers_the_status_call_itself_with_the_504(client, refs):
    with StandInServer(queue_delay=5.0, start_timeout_answer="status") as server:
        body = _submit(client, server, refs, "0.3").json()
        assert client.get(body["status_url"]).status_code == 200
        time.sleep(0.4)
        status = client.get(body["status_url"])
        stream = client.get(body["status_url"] + "/stream")
        result = client.get(body["response_url"])
    for response in (status, stream, result):
        assert response.status_code == 504
        assert response.headers["x-fal-request-timeout-type"] == "user"


def test_stream_reports_the_dropped_job_as_completed_and_closes(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = _submit(client, server, refs, "0.3").json()
        with client.stream("GET", body["status_url"] + "/stream") as response:
            events = [json.loads(line[6:]) for line in response.iter_lines()
                      if line.startswith("data: ")]
    assert [e["status"] for e in events] == ["IN_QUEUE", "COMPLETED"]
    assert events[-1]["error_type"] == "request_timeout"


@pytest.mark.parametrize("value", ["soon", "0", "-3", "0.05", "nan", "inf"])
def test_malformed_deadline_is_a_400_bad_request_and_creates_no_job(server, client, refs, value):
    response = _submit(client, server, refs, value)
    assert response.status_code == 400
    assert response.json()["error_type"] == "bad_request"
    assert server.jobs == {}


def test_cancel_before_the_deadline_removes_the_job_unbilled(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = _submit(client, server, refs, "0.5").json()
        assert client.put(body["cancel_url"]).status_code == 202
        time.sleep(0.6)
        result = client.get(body["response_url"])
        billed = server.billed_jobs()
    assert result.status_code == 499  # the cancel came first
    assert billed == []
