"""Safe calls retry transient failures; a submit is never sent twice."""
from __future__ import annotations

import time

import httpx
import pytest

from fal_kontext.client import (ConnectionFailedError, FalClient, JobNotFoundError,
                                RateLimitError, RetryPolicy,
                                SubmitUncertainError)
from support import png_bytes

pytestmark = pytest.mark.anyio
MULTI = "fal-ai/flux-pro/kontext/multi"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


async def _arguments(client):
    return {"prompt": "p", "image_urls": [await client.upload(png_bytes(), "image/png")]}


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 502, "ingress_502": True}, {"status": 503}, {"status": 504},
    {"status": 429}, {"drop_connection": True}, {"reset_mid_response": True},
    {"malformed_json": True}, {"truncate": True},
])
@pytest.mark.parametrize("route", ["status", "result"])
async def test_status_and_result_recover_from_transient_faults_with_one_submit(fal_env, route, fault):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        fal_env.faults.add(route, times=2, **fault)
        output = await client.run(MULTI, arguments)
    assert output["images"]
    assert len(fal_env.submits()) == 1


async def test_retry_after_is_honoured(fal_env):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        handle = await client.submit(MULTI, arguments)
        fal_env.faults.add("status", times=1, status=429, retry_after=0.6)
        started = time.monotonic()
        await client.status(handle)
    assert time.monotonic() - started >= 0.55


@pytest.mark.parametrize("fault", [{"status": 502, "ingress_502": True}, {"drop_connection": True}])
async def test_submit_is_not_retried_once_it_may_have_reached_fal(fal_env, fault):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("submit", times=1, **fault)
        with pytest.raises(SubmitUncertainError) as caught:
            await client.submit(MULTI, arguments)
    assert "not re-sent" in str(caught.value) or "was not re-sent" in str(caught.value)
    assert len(fal_env.submits()) == 1


@pytest.mark.parametrize("damage", ["malformed_json", "truncate", "reset_mid_response"])
async def test_a_garbled_submit_answer_naming_the_job_is_followed_by_its_id(fal_env, damage):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("submit", times=1, **{damage: True})
        handle = await client.submit(MULTI, arguments)
        output = await client.wait_for_result(handle)
    assert output["images"]
    assert len(fal_env.submits()) == 1
    assert list(fal_env.jobs) == [handle.request_id]


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_a_failed_submit_naming_an_id_is_checked_not_resent(fal_env, status):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("submit", times=1, status=status)
        handle = await client.submit(MULTI, arguments)
        # The stand-in created no job behind that answer: fal says so, and nothing was re-sent.
        with pytest.raises(JobNotFoundError):
            await client.wait_for_result(handle)
    assert len(fal_env.submits()) == 1


async def test_submit_after_a_read_timeout_is_not_retried(fal_env):
    timeout = httpx.Timeout(connect=2.0, read=0.3, write=2.0, pool=2.0)
    async with FalClient(retry=FAST_RETRY, timeout=timeout) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("submit", times=1, delay=1.0)
        with pytest.raises(SubmitUncertainError):
            await client.submit(MULTI, arguments)
    assert len(fal_env.submits()) == 1


async def test_submit_rate_limited_is_reported_with_its_retry_after(fal_env):
    async with FalClient(retry=FAST_RETRY) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("submit", times=1, status=429, retry_after=12)
        with pytest.raises(RateLimitError) as caught:
            await client.submit(MULTI, arguments)
    assert caught.value.retry_after == 12
    assert "12 s" in str(caught.value)
    assert len(fal_env.submits()) == 1


async def test_unreachable_fal_is_a_connection_error_saying_nothing_was_sent(monkeypatch):
    from support import TEST_KEY
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    async with FalClient(base_url="http://127.0.0.1:9", retry=FAST_RETRY) as client:
        with pytest.raises(ConnectionFailedError) as caught:
            await client.submit(MULTI, {"prompt": "p", "image_urls": ["https://example.com/a.png"]})
    assert "nothing was sent" in str(caught.value)


async def test_status_read_timeouts_are_retried(fal_env):
    timeout = httpx.Timeout(connect=2.0, read=0.3, write=2.0, pool=2.0)
    async with FalClient(retry=FAST_RETRY, timeout=timeout) as client:
        arguments = await _arguments(client)
        fal_env.faults.add("status", times=1, delay=1.0)
        assert (await client.run(MULTI, arguments))["images"]
