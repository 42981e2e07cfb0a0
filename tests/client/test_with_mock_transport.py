"""Client logic where a server adds nothing: answers scripted with httpx.MockTransport.

Everything about sockets, resets, streaming and timing runs against the stand-in instead.
"""
from __future__ import annotations

import json

import httpx
import pytest

from fal_kontext.client import (AuthError, CancelOutcome, FalClient, FalJobError, FalStatusError,
                                JobFailedError, RetryPolicy, StartDeadlineError, ValidationError)

pytestmark = pytest.mark.anyio
BASE = "https://queue.example.test"
MULTI = "fal-ai/flux-pro/kontext/multi"
FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def scripted(*answers: httpx.Response | dict, seen: list | None = None) -> httpx.MockTransport:
    """Answer each request with the next scripted response (a dict is a 200 JSON answer)."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = queue.pop(0)
        return httpx.Response(200, json=answer) if isinstance(answer, dict) else answer
    return httpx.MockTransport(handle)


def client(transport: httpx.MockTransport) -> FalClient:
    return FalClient(key="k-id:k-secret", base_url=BASE, transport=transport, retry=FAST,
                     use_status_stream=False, storage_lifetime=None)


async def test_the_submit_answer_becomes_a_handle_on_the_queue_origin():
    seen: list[httpx.Request] = []
    answer = {"request_id": "r-1", "status_url": "https://elsewhere.test/steal"}
    async with client(scripted(answer, seen=seen)) as fal:
        handle = await fal.submit(MULTI, {"prompt": "p"}, start_deadline=30)
    assert handle.status_url == f"{BASE}/fal-ai/flux-pro/requests/r-1/status"
    assert seen[0].url.path == "/fal-ai/flux-pro/kontext/multi"
    assert seen[0].headers["x-fal-request-timeout"] == "30"
    assert seen[0].headers["authorization"] == "Key k-id:k-secret"


@pytest.mark.parametrize("status, body, outcome", [
    (202, {"status": "CANCELLATION_REQUESTED"}, CancelOutcome.REQUESTED),
    (200, {"status": "ALREADY_COMPLETED"}, CancelOutcome.ALREADY_COMPLETED),
    (400, {"status": "ALREADY_COMPLETED"}, CancelOutcome.ALREADY_COMPLETED),
    (404, {"status": "NOT_FOUND"}, CancelOutcome.NOT_FOUND),
])
async def test_cancel_answers_map_to_outcomes(status, body, outcome):
    async with client(scripted(httpx.Response(status, json=body))) as fal:
        assert await fal.cancel(fal.handle_for(MULTI, "r-1")) is outcome


async def test_an_unreadable_status_answer_is_retried_in_the_same_loop():
    garbled = httpx.Response(200, content=b"{not json")
    async with client(scripted(garbled, {"status": "IN_QUEUE", "queue_position": 2})) as fal:
        status = await fal.status(fal.handle_for(MULTI, "r-1"))
    assert status.queue_position == 2


async def test_fal_saying_not_retryable_is_not_retried():
    refused = httpx.Response(503, json={"detail": "busy"}, headers={"X-Fal-Retryable": "false"})
    async with client(scripted(refused)) as fal:
        with pytest.raises(FalStatusError):
            await fal.status(fal.handle_for(MULTI, "r-1"))


async def test_a_start_deadline_answer_is_a_job_error_naming_the_deadline():
    dropped = httpx.Response(504, json={"detail": "timed out", "error_type": "request_timeout"},
                             headers={"X-Fal-Request-Timeout-Type": "user"})
    async with client(scripted({"request_id": "r-9"}, dropped)) as fal:
        handle = await fal.submit(MULTI, {"prompt": "p"}, start_deadline=45)
        with pytest.raises(StartDeadlineError) as caught:
            await fal.result(handle)
    assert isinstance(caught.value, FalJobError)
    assert "within 45 s" in str(caught.value) and "nothing was billed" in str(caught.value)


async def test_a_failed_job_reports_fals_error_and_its_logs():
    completed = {"status": "COMPLETED", "error": "CUDA out of memory", "error_type": "runner_server_error",
                 "logs": [{"message": "loading"}, {"message": "oom"}]}
    failure = httpx.Response(500, json={"detail": "CUDA out of memory"})
    async with client(scripted(completed, failure)) as fal:
        with pytest.raises(JobFailedError) as caught:
            await fal.follow(fal.handle_for(MULTI, "r-1"))
    assert "CUDA out of memory" in str(caught.value) and "oom" in str(caught.value)


async def test_a_stored_validation_failure_names_the_field():
    completed = {"status": "COMPLETED", "error": "invalid", "logs": []}
    failure = httpx.Response(422, json={"detail": [{"loc": ["body", "image_urls", 1],
                                                    "msg": "could not download", "type": "file_download_error"}]})
    async with client(scripted(completed, failure)) as fal:
        with pytest.raises(ValidationError) as caught:
            await fal.follow(fal.handle_for(MULTI, "r-1"))
    assert caught.value.fields[0].field == "image_urls[1]"


async def test_a_rejected_key_on_the_token_route_is_the_keys_fault():
    refused = httpx.Response(401, json={"detail": "bad key"})
    async with FalClient(key="k-id:k-secret", base_url=BASE, transport=scripted(refused),
                         retry=FAST) as fal:
        with pytest.raises(AuthError):
            await fal.upload(b"\x89PNG....", "image/png")


async def test_lifecycle_headers_carry_fals_json():
    seen: list[httpx.Request] = []
    token = {"token": "t", "token_type": "Bearer", "base_url": "https://cdn.example.test",
             "expires_at": "2999-01-01T00:00:00Z"}
    async with FalClient(key="k-id:k-secret", base_url=BASE, storage_lifetime=3600, retry=FAST,
                         transport=scripted(token, {"access_url": "https://cdn.example.test/f"},
                                            seen=seen)) as fal:
        assert await fal.upload(b"data", "image/png") == "https://cdn.example.test/f"
    upload = seen[1]
    assert upload.url.host == "cdn.example.test" and upload.headers["authorization"] == "Bearer t"
    for name in ("x-fal-object-lifecycle", "x-fal-object-lifecycle-preference"):
        assert json.loads(upload.headers[name]) == {"expiration_duration_seconds": 3600}
