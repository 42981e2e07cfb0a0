"""Waiting ends promptly, and every way of giving up cancels the job at fal first."""
from __future__ import annotations

import asyncio
import time

import pytest

from fal_kontext.client import JobCancelledError, FalClient, FalTimeoutError
from fal_kontext.standin import StandInServer
from support import TEST_KEY, png_bytes

pytestmark = pytest.mark.anyio
MULTI = "fal-ai/flux-pro/kontext/multi"


@pytest.fixture
def slow_fal(monkeypatch):
    with StandInServer(processing_delay=30.0) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        yield server


async def _arguments(client):
    return {"prompt": "p", "image_urls": [await client.upload(png_bytes(), "image/png")]}


async def test_timeout_cancels_the_job_and_says_the_cancel_was_confirmed(slow_fal):
    async with FalClient() as client:
        arguments = await _arguments(client)
        started = time.monotonic()
        with pytest.raises(FalTimeoutError) as caught:
            await client.run(MULTI, arguments, timeout=0.5)
    assert time.monotonic() - started < 3
    assert caught.value.cancel_confirmed
    assert "confirmed" in str(caught.value) and caught.value.request_id in str(caught.value)
    assert len(slow_fal.cancels()) == 1
    assert next(iter(slow_fal.jobs.values())).cancelled


async def test_cancelling_the_task_cancels_the_job_at_fal(slow_fal):
    async with FalClient() as client:
        arguments = await _arguments(client)
        task = asyncio.ensure_future(client.run(MULTI, arguments))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(slow_fal.cancels()) == 1
    assert len(slow_fal.submits()) == 1


async def test_should_cancel_stops_the_wait_quickly_and_cancels_the_job(slow_fal):
    flag = {"stop": False}
    async with FalClient() as client:
        arguments = await _arguments(client)
        task = asyncio.ensure_future(client.run(MULTI, arguments, should_cancel=lambda: flag["stop"]))
        await asyncio.sleep(0.4)
        flag["stop"] = True
        stopped_at = time.monotonic()
        with pytest.raises(JobCancelledError) as caught:
            await task
    assert time.monotonic() - stopped_at < 0.5
    assert caught.value.cancel_confirmed
    assert len(slow_fal.cancels()) == 1


async def test_a_finished_job_is_noticed_within_150_ms(fal_env):
    async with FalClient() as client:
        arguments = await _arguments(client)
        lags = []
        for _ in range(3):
            handle = await client.submit(MULTI, arguments)
            await client.wait_for_result(handle)
            finished_at = time.monotonic()
            lags.append(finished_at - fal_env.jobs[handle.request_id].completed_at)
    assert sorted(lags)[1] < 0.15, lags


async def test_cancelling_during_submit_still_cancels_the_job_it_created(slow_fal):
    async with FalClient() as client:
        arguments = await _arguments(client)
        slow_fal.faults.add("submit", times=1, delay=0.6)
        task = asyncio.ensure_future(client.submit(MULTI, arguments))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(slow_fal.submits()) == 1
    assert len(slow_fal.cancels()) == 1, "the job created by the interrupted submit was cancelled"
