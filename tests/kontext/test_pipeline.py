"""run_edit: one edit end to end on bytes, against the stand-in."""
from __future__ import annotations

import hashlib

import pytest

from fal_kontext.client import FalClient
from fal_kontext.kontext.errors import DecodeError
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.models import MULTI_MODELS
from fal_kontext.kontext.pipeline import Reference, run_edit
from fal_kontext.jobs.result_cache import ResultCache
from fal_kontext.jobs.store import JobStore
from support import png_bytes

pytestmark = pytest.mark.anyio


def reference(color) -> Reference:
    data = png_bytes(color)
    return Reference(label=str(color), key=hashlib.sha256(data).hexdigest(),
                     encode=lambda: (data, "image/png"))


async def test_results_are_decoded_as_they_arrive(fal_env):
    request = EditRequest(model=MULTI_MODELS["pro"], prompt="p", seed=1, num_images=2)
    async with FalClient() as client:
        result = await run_edit(client, request, [reference((200, 0, 0))])
    assert [image.decoded.shape[2] for image in result.images] == [3, 3]
    assert result.info["num_images"] == 2 and result.seed == 1


async def test_an_undecodable_result_names_the_job_and_is_never_cached(fal_env, tmp_path):
    cache = ResultCache(tmp_path / "results")
    request = EditRequest(model=MULTI_MODELS["pro"], prompt="p", seed=9)
    fal_env.faults.add("file", times=1, status=200, body=b"\x89PNG\r\n\x1a\n garbage",
                        content_type="image/png")
    async with FalClient() as client:
        with pytest.raises(DecodeError) as caught:
            await run_edit(client, request, [reference((1, 2, 3))], store=JobStore.beside(cache))
        assert next(iter(fal_env.jobs)) in str(caught.value)
        result = await run_edit(client, request, [reference((1, 2, 3))], store=JobStore.beside(cache))
    assert len(fal_env.submits()) == 2, "the broken result was not served from the cache"
    assert result.images and not result.info["cached"]


async def test_without_any_storage_route_references_travel_inline(fal_env):
    not_found = {"status": 404, "body": b'{"detail": "Not Found"}'}
    fal_env.faults.add("token", times=10, **not_found)
    fal_env.faults.add("initiate", times=10, **not_found)
    request = EditRequest(model=MULTI_MODELS["pro"], prompt="p", seed=2)
    async with FalClient() as client:
        result = await run_edit(client, request, [reference((1, 2, 3)), reference((4, 5, 6))])
    assert result.images
    image_urls = next(iter(fal_env.jobs.values())).arguments["image_urls"]
    assert len(image_urls) == 2 and all(url.startswith("data:image/png;base64,") for url in image_urls)


async def test_a_storage_refusal_other_than_missing_routes_still_fails(fal_env):
    from fal_kontext.client import AuthError
    fal_env.faults.add("token", times=10, status=403, body=b'{"detail": "no storage for you"}')
    request = EditRequest(model=MULTI_MODELS["pro"], prompt="p", seed=2)
    async with FalClient() as client:
        with pytest.raises(AuthError):
            await run_edit(client, request, [reference((1, 2, 3))])
    assert not fal_env.submits()
