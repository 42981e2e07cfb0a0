"""The 'fal Result by Request ID' node: the images of a request fal already has, by its id.

A job is submitted the way a run that died before fal's answer arrived left it (straight to the
stand-in's queue, nobody following it); the node then fetches it: waiting while it runs, free,
never submitting or cancelling, stored for the next time. Each way it cannot be fetched ends in
one line. Over real HTTP against the stand-in, the node called as ComfyUI calls it.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
import torch

from fake_comfy import FakeComfy
from node_calls import widget_defaults
from fal_kontext.client import DownloadError, FalClient, JobFailedError, JobNotFoundError
from fal_kontext.jobs.result_images import decode_image
from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext import models as m
from fal_kontext.kontext.collect import checked_request_id
from fal_kontext.kontext.errors import InvalidInputError, SafetyFilterError
from fal_kontext.nodes.result_by_request_id import FalResultByRequestId
from support import png_bytes, wait_until

pytestmark = pytest.mark.anyio
ENDPOINT = m.MULTI_MODELS["pro"].endpoint_id
FLUX2_ENDPOINT = f.FLUX2_MODELS["pro"].endpoint_id


async def submit_and_walk_away(server, prompt: str = "a job whose run died",
                               endpoint: str = ENDPOINT) -> str:
    """What a run that was killed after its submit left: a job at fal nobody follows."""
    reference = server.put_file(png_bytes((200, 120, 10)), "image/png", "ref.png")
    async with FalClient() as client:
        handle = await client.submit(endpoint, {"prompt": prompt, "image_urls": [reference],
                                                "seed": 3})
    return handle.request_id


async def fetch(request_id: str, **inputs):
    arguments = {**widget_defaults(FalResultByRequestId), "unique_id": "12",
                 "request_id": request_id, **inputs}
    images, seed, info = await FalResultByRequestId().collect(**arguments)
    return images, seed, json.loads(info)


@pytest.fixture
def comfy(monkeypatch):
    return FakeComfy().install(monkeypatch)


def texts(comfy) -> list[str]:
    return [text for _, text in comfy.texts]


def served_file(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def test_the_node_offers_every_endpoint_of_both_model_tables_and_the_nsfw_policy():
    spec = FalResultByRequestId.INPUT_TYPES()
    assert list(spec["required"]) == ["request_id", "endpoint", "nsfw_policy"]
    assert spec["required"]["endpoint"][0] == [
        *(model.endpoint_id for model in m.ALL_MODELS),
        *(model.endpoint_id for model in f.FLUX2_MODELS.values())]
    assert FalResultByRequestId.RETURN_NAMES == ("images", "seed", "info")
    assert FalResultByRequestId.CATEGORY == "fal/Kontext"


async def test_a_running_job_is_waited_for_and_fetched_for_free(fal_env, comfy):
    fal_env.processing_delay = 1.0
    request_id = await submit_and_walk_away(fal_env)
    images, seed, info = await fetch(request_id, endpoint=ENDPOINT)
    job = fal_env.jobs[request_id]
    expected = decode_image(served_file(job.result["images"][0]["url"])).copy()
    assert torch.equal(images[0], torch.from_numpy(expected).float() / 255)
    assert seed == 3 and info["request_id"] == request_id and info["fetched_by_id"]
    assert info["estimated_cost_usd"] == 0 and "pack_version" in info
    assert len(fal_env.submits()) == 1 and not fal_env.cancels()
    assert fal_env.billed_request_ids() == [request_id], "billed once: by the run that sent it"
    shown = texts(comfy)
    assert shown[0] == f"Asking fal for request {request_id[:8]}"
    assert any(text.startswith("Generating") for text in shown)
    assert shown[-1] == f"Done · 1 image · fetched from fal request {request_id[:8]} · $0"


async def test_fetched_once_it_is_served_from_the_result_cache_without_asking_fal(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env)
    first, _, _ = await fetch(request_id, endpoint=ENDPOINT)
    fal_env.result_retention = 0.0  # fal has forgotten it by now: the cache still has it
    fal_env.clear_requests()
    again, _, info = await fetch(f"  {request_id}\n", endpoint=ENDPOINT)
    assert torch.equal(first, again) and info["cached"] and fal_env.requests == []
    assert texts(comfy)[-1] == "Done · from cache · $0"


async def test_two_nodes_fetching_the_same_request_share_one_follow(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env)
    (a, _, _), (b, _, _) = await asyncio.gather(fetch(request_id, endpoint=ENDPOINT),
                                                fetch(request_id, endpoint=ENDPOINT))
    assert torch.equal(a, b)
    assert fal_env.count("result") == 1 and fal_env.count("file") == 1


async def test_cancel_only_stops_waiting_and_the_result_is_kept_for_the_next_run(fal_env, comfy):
    fal_env.processing_delay = 1.5
    request_id = await submit_and_walk_away(fal_env)
    node = asyncio.ensure_future(fetch(request_id, endpoint=ENDPOINT))
    await wait_until(lambda: any(t.startswith("Generating") for t in texts(comfy)))
    started = time.monotonic()
    comfy.press_cancel()
    with pytest.raises(comfy.InterruptProcessingException):
        await node
    assert time.monotonic() - started < 2.0
    comfy.interrupt_flag = False
    assert texts(comfy)[-1].startswith(f"Stopped waiting · fal request {request_id[:8]} goes on")
    await wait_until(lambda: fal_env.jobs[request_id].status == "COMPLETED", timeout=5)
    await asyncio.sleep(0.5)  # the job is still followed: its result goes to the cache
    assert not fal_env.cancels(), "a job this node did not start is never cancelled"
    fal_env.clear_requests()
    _, _, info = await fetch(request_id, endpoint=ENDPOINT)
    assert info["cached"] and fal_env.requests == []


async def test_an_unknown_id_is_one_line_naming_the_input(fal_env, comfy):
    unknown = "0b7e2d7c-1111-4c3e-9a55-0123456789ab"
    with pytest.raises(JobNotFoundError) as caught:
        await fetch(unknown, endpoint=ENDPOINT)
    message = str(caught.value)
    assert "\n" not in message and unknown in message and "request_id" in message
    assert "about an hour" in message and texts(comfy)[-1] == f"Failed · {message}"
    assert not fal_env.submits()


async def test_a_request_past_fals_retention_says_so(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env)
    await wait_until(lambda: fal_env.jobs[request_id].status == "COMPLETED", timeout=5)
    fal_env.result_retention = 0.0
    with pytest.raises(JobNotFoundError, match="an older request can no longer be fetched"):
        await fetch(request_id, endpoint=ENDPOINT)


@pytest.mark.parametrize("sent_to, asked, named", [
    (ENDPOINT, FLUX2_ENDPOINT, "fal-ai/flux-pro"),
    (FLUX2_ENDPOINT, m.SINGLE_MODELS["pro"].endpoint_id, "fal-ai/flux-2-pro")])
async def test_the_wrong_endpoint_names_the_app_fal_knows_the_request_under(fal_env, comfy, sent_to,
                                                                           asked, named):
    # Another fal app's path: fal answers 404 there, and the pack asks the others (free).
    request_id = await submit_and_walk_away(fal_env, endpoint=sent_to)
    with pytest.raises(InvalidInputError) as caught:
        await fetch(request_id, endpoint=asked)
    message = str(caught.value)
    assert message.startswith(f"endpoint is not where fal request {request_id} went")
    assert f"not {asked}" in message
    assert f"it was sent to {named} (e.g. " in message and "pick that endpoint" in message
    assert "\n" not in message and len(fal_env.submits()) == 1


async def test_a_flux2_request_is_fetched_like_a_kontext_one(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env, endpoint=FLUX2_ENDPOINT)
    images, _, info = await fetch(request_id, endpoint=FLUX2_ENDPOINT)
    assert images.shape[0] == 1 and info["endpoint"] == FLUX2_ENDPOINT
    assert fal_env.billed_request_ids() == [request_id] and len(fal_env.submits()) == 1


async def test_any_endpoint_of_the_same_fal_app_finds_the_request(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env)
    _, _, info = await fetch(request_id, endpoint=m.SINGLE_MODELS["max"].endpoint_id)
    assert info["request_id"] == request_id


async def test_a_job_that_failed_has_nothing_to_fetch(fal_env, comfy):
    fal_env.fail_next_jobs(1, 422, detail="image_urls[0] could not be read")
    request_id = await submit_and_walk_away(fal_env)
    with pytest.raises(JobFailedError) as caught:
        await fetch(request_id, endpoint=ENDPOINT)
    message = str(caught.value)
    assert message.startswith(f"fal request {request_id} ended without an image")
    assert "could not be read" in message and message.count(request_id) == 1


async def test_a_job_cancelled_at_fal_has_nothing_to_fetch(fal_env, comfy):
    fal_env.queue_delay = 2.0
    request_id = await submit_and_walk_away(fal_env)
    async with FalClient() as client:
        await client.cancel(client.handle_for(ENDPOINT, request_id))
    with pytest.raises(JobFailedError, match="ended without an image.*cancelled"):
        await fetch(request_id, endpoint=ENDPOINT)


async def test_images_fal_no_longer_serves_cannot_be_fetched(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env)
    await wait_until(lambda: fal_env.jobs[request_id].status == "COMPLETED", timeout=5)
    fal_env.expire_file(fal_env.jobs[request_id].result["images"][0]["url"])
    with pytest.raises(DownloadError, match="no longer serves its images .HTTP 404"):
        await fetch(request_id, endpoint=ENDPOINT)


async def test_the_nsfw_policy_applies_to_fetched_results(fal_env, comfy):
    request_id = await submit_and_walk_away(fal_env, "[nsfw] a flagged job")
    with pytest.raises(SafetyFilterError):
        await fetch(request_id, endpoint=ENDPOINT)
    images, _, info = await fetch(request_id, endpoint=ENDPOINT, nsfw_policy="keep")
    assert images.shape[0] == 1 and info["has_nsfw_concepts"] == [True]


@pytest.mark.parametrize("pasted", [
    "764cabcf-b745-4b3e-ae38-1200304cf45b", " '764CABCF-B745-4B3E-AE38-1200304CF45B' ",
    "https://fal.ai/dashboard/requests/764cabcf-b745-4b3e-ae38-1200304cf45b",
    "https://queue.fal.run/fal-ai/flux-pro/requests/764cabcf-b745-4b3e-ae38-1200304cf45b/status"])
def test_an_id_is_found_in_whatever_the_user_pasted(pasted):
    assert checked_request_id(pasted) == "764cabcf-b745-4b3e-ae38-1200304cf45b"


@pytest.mark.parametrize("pasted, problem", [("", "is empty"), ("   ", "is empty"),
                                             ("../../admin", "is not a fal request id"),
                                             ("id with spaces", "is not a fal request id")])
async def test_an_unusable_id_is_refused_before_anything_is_asked(fal_env, comfy, pasted, problem):
    with pytest.raises(InvalidInputError, match=f"^request_id .*{problem}"):
        await fetch(pasted, endpoint=ENDPOINT)
    assert fal_env.requests == []
