"""The client speaks fal's protocol as fal serves it: status stream, start deadline, lifecycle
headers, patient retries, storage-token trouble, queue positions people can read."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from fal_kontext.client import FalClient, RetryPolicy
from fal_kontext.client.queue_types import JobState, QueueUpdate
from fal_kontext.kontext.progress import ProgressReporter
from support import TEST_KEY, png_bytes

pytestmark = pytest.mark.anyio
MULTI = "fal-ai/flux-pro/kontext/multi"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


async def _arguments(client):
    return {"prompt": "p", "image_urls": [await client.upload(png_bytes(), "image/png")]}


def _status_requests(server) -> list:
    return [r for r in server.requests if r.route in ("status", "status_stream")]


async def test_a_job_is_followed_on_one_status_stream_connection(fal_env):
    fal_env.processing_delay = 2.0
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"]
    assert [r.route for r in _status_requests(fal_env)] == ["status_stream"]
    assert all(r.query.get("logs") == "1" for r in _status_requests(fal_env))


@pytest.mark.parametrize("refusal", [{"status": 404}, {"status": 405},
                                     {"status": 200, "body": {"not": "a stream"}}])
async def test_a_refused_stream_falls_back_to_gentle_polling(fal_env, refusal):
    fal_env.processing_delay = 1.0
    fal_env.faults.add("status_stream", times=100, **refusal)
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"]
    routes = [r.route for r in _status_requests(fal_env)]
    assert routes.count("status_stream") == 1, "a refused stream is not asked for again"
    assert 1 <= routes.count("status") <= 6, "polling is gentle: a few requests for a 1 s job"


async def test_a_stream_that_breaks_is_reconnected(fal_env):
    fal_env.processing_delay = 1.0
    fal_env.faults.add("status_stream", times=1, reset_mid_response=True)
    async with FalClient(retry=FAST_RETRY) as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"]
    assert [r.route for r in _status_requests(fal_env)].count("status_stream") >= 2


async def test_a_stream_that_breaks_twice_without_a_status_falls_back_to_polling(fal_env):
    fal_env.processing_delay = 1.0
    fal_env.faults.add("status_stream", times=None, reset_mid_response=True, stream_events=0)
    async with FalClient(retry=FAST_RETRY) as client:
        output = await asyncio.wait_for(client.run(MULTI, await _arguments(client)), 10)
    assert output["images"]
    routes = [r.route for r in _status_requests(fal_env)]
    assert routes.count("status_stream") == 2, routes
    assert 1 <= routes.count("status") <= 6, "then polling, gently"


async def test_a_stream_cut_after_each_status_keeps_streaming_with_few_requests(fal_env):
    # A proxy that drops the stream after every event still delivers: no reason to poll.
    fal_env.processing_delay = 3.0
    fal_env.faults.add("status_stream", times=2, reset_mid_response=True, stream_events=1)
    async with FalClient(retry=FAST_RETRY) as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"]
    routes = [r.route for r in _status_requests(fal_env)]
    assert set(routes) == {"status_stream"} and len(routes) <= 4, routes


@pytest.mark.parametrize("stream_answer", [429, 503])
async def test_retry_after_on_a_status_stream_answer_is_honoured(fal_env, stream_answer):
    fal_env.processing_delay = 0.5
    fal_env.faults.add("status_stream", times=1, status=stream_answer, retry_after=1)
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"]
    requests = _status_requests(fal_env)
    assert len(requests) >= 2
    assert requests[1].time - requests[0].time >= 0.95, "Retry-After: 1 waited out"


async def test_run_without_a_timeout_waits_out_a_submit_429(fal_env):
    fal_env.faults.add("submit", times=1, status=429, retry_after=0.3)
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client))
    assert output["images"] and len(fal_env.jobs) == 1 and len(fal_env.submits()) == 2
    deadline = fal_env.submits()[-1].headers.get("x-fal-request-timeout")
    assert deadline == "600", "the job carries the default start deadline"


async def test_a_twelve_second_status_outage_is_ridden_out_without_a_cancel(fal_env):
    fal_env.processing_delay = 2.0
    for route in ("status", "status_stream"):
        fal_env.faults.add(route, times=100_000, status=503)
    threading.Timer(12.0, fal_env.faults.clear).start()
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client), timeout=60)
    assert output["images"] and fal_env.cancels() == [] and len(fal_env.submits()) == 1


async def test_submit_carries_a_start_deadline_and_an_output_lifetime(fal_env):
    async with FalClient() as client:
        await client.run(MULTI, await _arguments(client), timeout=42.5)
    (submit,) = fal_env.submits()
    assert submit.headers["x-fal-request-timeout"] == "43"
    lifecycle = json.loads(submit.headers["x-fal-object-lifecycle-preference"])
    assert lifecycle == {"expiration_duration_seconds": 86400}


async def test_uploads_send_both_lifecycle_header_names(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KONTEXT_FAL_STORAGE_SECONDS", "7200")
    fal_env.faults.add("upload", times=1, status=500)  # the CDN fails: the initiate route is used
    async with FalClient(retry=RetryPolicy(attempts=1)) as client:
        await client.upload(png_bytes(), "image/png")
        await client.upload(png_bytes((1, 2, 3)), "image/png")
    sent = [r for r in fal_env.requests if r.route in ("upload", "initiate")]
    assert {r.route for r in sent} == {"upload", "initiate"}
    for request in sent:
        for name in ("x-fal-object-lifecycle", "x-fal-object-lifecycle-preference"):
            assert json.loads(request.headers[name]) == {"expiration_duration_seconds": 7200}


async def test_storage_lifetime_off_sends_no_lifecycle_headers(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KONTEXT_FAL_STORAGE_SECONDS", "off")
    async with FalClient() as client:
        await client.run(MULTI, await _arguments(client))
    assert not any("lifecycle" in name for r in fal_env.requests for name in r.headers)


async def test_submit_429_with_retry_after_is_waited_out_and_makes_exactly_one_job(fal_env):
    fal_env.faults.add("submit", times=2, status=429, retry_after=0.3)
    async with FalClient() as client:
        output = await client.run(MULTI, await _arguments(client), timeout=30)
    assert output["images"] and len(fal_env.jobs) == 1 and len(fal_env.submits()) == 3
    gaps = [b.time - a.time for a, b in zip(fal_env.submits(), fal_env.submits()[1:])]
    assert all(gap >= 0.25 for gap in gaps), gaps


async def test_fal_saying_not_retryable_is_believed(fal_env):
    fal_env.faults.add("status", times=1, status=503, headers={"X-Fal-Retryable": "false"})
    async with FalClient(retry=FAST_RETRY) as client:
        handle = await client.submit(MULTI, await _arguments(client))
        with pytest.raises(Exception):
            await client.status(handle)
    assert fal_env.count("status") == 1


async def test_a_rejected_storage_token_gets_a_fresh_one_and_the_key_never_reaches_the_cdn(fal_env):
    fal_env.faults.add("upload", times=1, status=401)
    async with FalClient(key=TEST_KEY) as client:
        url = await client.upload(png_bytes(), "image/png")
    assert url
    assert fal_env.count("token") == 2, "the rejected token was dropped and a new one fetched"
    for request in fal_env.requests:
        if request.route in ("upload", "put_upload", "file"):
            assert TEST_KEY not in request.headers.get("authorization", "")


async def test_a_cdn_that_keeps_rejecting_tokens_falls_back_to_the_initiate_route(fal_env):
    fal_env.faults.add("upload", times=2, status=403)
    async with FalClient(key=TEST_KEY) as client:
        url = await client.upload(png_bytes(), "image/png")
    assert url and fal_env.count("initiate") == 1


def _queue_text(position: int | None) -> str:
    texts = []
    progress = ProgressReporter(lambda event: texts.append(event.text))
    progress.queue_update(QueueUpdate("r-1", JobState.IN_QUEUE, position))
    return texts[-1]


def test_queue_positions_read_the_way_people_count():
    assert "next in line" in _queue_text(0)
    assert "3 ahead" in _queue_text(3)
    assert "position" not in _queue_text(0)


@pytest.mark.parametrize("answer", ["result", "status"])
async def test_a_passed_start_deadline_is_a_clear_error_with_nothing_billed_and_no_retry(answer):
    from fal_kontext.client import StartDeadlineError
    from fal_kontext.standin import StandInServer
    with StandInServer(processing_delay=0.2, queue_delay=4.0, start_timeout_answer=answer) as server:
        async with FalClient(key=TEST_KEY, base_url=server.base_url) as client:
            handle = await client.submit(MULTI, await _arguments(client), start_deadline=2)
            with pytest.raises(StartDeadlineError) as caught:
                await client.wait_for_result(handle, timeout=30)
        assert "could not start the job within 2 s" in str(caught.value)
        assert "nothing was billed" in str(caught.value)
        assert len(server.submits()) == 1 and server.billed_jobs() == []
        assert server.count("result") <= 1, "the 504 is fal's final word: not fetched again"


async def test_uploads_go_to_the_host_the_storage_token_names(fal_env):
    async with FalClient(key=TEST_KEY) as client:
        url = await client.upload(png_bytes(), "image/png")
    uploads = [r for r in fal_env.requests if r.route == "upload"]
    assert url and uploads and all(r.origin == "cdn" for r in uploads)
    assert not fal_env.requests_carrying(TEST_KEY.split(":")[1]) or all(
        r.origin == "api" for r in fal_env.requests_carrying(TEST_KEY.split(":")[1]))
