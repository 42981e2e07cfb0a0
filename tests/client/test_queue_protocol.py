"""The client speaks fal's queue protocol: submit, status, result, cancel."""
from __future__ import annotations

import pytest

from fal_kontext.client import (CancelOutcome, FalClient, JobFailedError, JobState,
                                ValidationError)
from support import png_bytes

pytestmark = pytest.mark.anyio
MULTI = "fal-ai/flux-pro/kontext/multi"


async def _uploaded(client: FalClient, *colors) -> list[str]:
    return [await client.upload(png_bytes(color), "image/png") for color in colors]


async def test_submit_keeps_subpath_and_request_urls_drop_it(fal_env):
    async with FalClient() as client:
        urls = await _uploaded(client, (255, 0, 0))
        handle = await client.submit(MULTI, {"prompt": "p", "image_urls": urls})
        await client.wait_for_result(handle)
    paths = [(r.method, r.path) for r in fal_env.requests if r.origin == "api"]
    assert ("POST", "/fal-ai/flux-pro/kontext/multi") in paths
    assert handle.status_url == f"{fal_env.base_url}/fal-ai/flux-pro/requests/{handle.request_id}/status"
    assert ("GET", f"/fal-ai/flux-pro/requests/{handle.request_id}/status/stream") in paths
    assert ("GET", f"/fal-ai/flux-pro/requests/{handle.request_id}") in paths


async def test_run_returns_output_with_references_in_order(fal_env):
    async with FalClient() as client:
        urls = await _uploaded(client, (255, 0, 0), (0, 255, 0), (0, 0, 255))
        output = await client.run(MULTI, {"prompt": "combine", "image_urls": urls, "seed": 7})
    assert output["seed"] == 7
    assert len(output["images"]) == 1
    job = next(iter(fal_env.jobs.values()))
    assert job.arguments["image_urls"] == urls


async def test_updates_report_queue_position_then_progress_with_logs(monkeypatch, standin):
    from fal_kontext.standin import StandInServer
    from support import TEST_KEY
    with StandInServer(processing_delay=0.4, queue_delay=0.4) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        updates = []
        async with FalClient(base_url=server.base_url) as client:
            urls = await _uploaded(client, (9, 9, 9))
            await client.run(MULTI, {"prompt": "p", "image_urls": urls}, on_update=updates.append)
    states = [u.state for u in updates]
    assert states[0] is JobState.IN_QUEUE and updates[0].queue_position is not None
    assert JobState.IN_PROGRESS in states and states[-1] is JobState.COMPLETED
    assert any(line for u in updates for line in u.new_logs)
    all_lines = [line for u in updates for line in u.new_logs]
    assert len(all_lines) == len(set(all_lines)), "each log line is reported once"


async def test_status_asks_for_logs_with_fals_query_parameter(fal_env):
    async with FalClient() as client:
        urls = await _uploaded(client, (1, 2, 3))
        await client.run(MULTI, {"prompt": "p", "image_urls": urls})
    status_calls = [r for r in fal_env.requests if r.path.endswith(("/status", "/status/stream"))]
    assert status_calls and all(r.query.get("logs") == "1" for r in status_calls)


async def test_cancel_is_a_put_answered_202_then_400_already_completed_then_404(fal_env):
    async with FalClient() as client:
        urls = await _uploaded(client, (1, 2, 3))
        handle = await client.submit(MULTI, {"prompt": "p", "image_urls": urls})
        assert await client.cancel(handle) is CancelOutcome.REQUESTED
        finished = await client.submit(MULTI, {"prompt": "p", "image_urls": urls})
        await client.wait_for_result(finished)
        assert await client.cancel(finished) is CancelOutcome.ALREADY_COMPLETED
        unknown = client.handle_for(MULTI, "00000000-0000-0000-0000-000000000000")
        assert await client.cancel(unknown) is CancelOutcome.NOT_FOUND
    assert {r.method for r in fal_env.requests if r.path.endswith("/cancel")} == {"PUT"}


async def test_failed_job_reports_completed_and_raises_on_result_fetch(fal_env):
    fal_env.fail_next_jobs(count=1, status=500, detail="GPU fell over", error_type="runner_server_error")
    async with FalClient() as client:
        urls = await _uploaded(client, (1, 2, 3))
        with pytest.raises(JobFailedError) as caught:
            await client.run(MULTI, {"prompt": "p", "image_urls": urls})
    error = caught.value
    assert error.request_id and error.request_id in str(error)
    assert "runner_server_error" in str(error)
    assert error.logs_tail, "the last log lines explain what the job was doing"
    assert len(fal_env.submits()) == 1


async def test_job_failing_validation_raises_validation_error_naming_the_field(fal_env):
    detail = [{"loc": ["body", "image_urls", 0], "msg": "Could not download the file",
               "type": "file_download_error"}]
    fal_env.fail_next_jobs(count=1, status=422, detail=detail)
    async with FalClient() as client:
        urls = await _uploaded(client, (1, 2, 3))
        with pytest.raises(ValidationError) as caught:
            await client.run(MULTI, {"prompt": "p", "image_urls": urls})
    assert "image_urls[0]" in str(caught.value)
    assert caught.value.request_id in str(caught.value)
