"""Chained edits: a result fed into the next Kontext node goes as the URL fal served it from,
nothing encoded or uploaded, as long as the next node would send exactly those pixels; when fal
no longer serves it, it is sent once more (not billed twice), and after a restart the result
cache knows the URL again.

Over real HTTP against the stand-in, the nodes called as ComfyUI calls them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from node_calls import call_node, solid
from fal_kontext.client import SHARED_SERVED_FILES, SHARED_UPLOAD_CACHE
from fal_kontext.jobs import result_cache
from fal_kontext.nodes.flux2_nodes import FalFlux2Edit
from fal_kontext.nodes.kontext_nodes import FalKontextEdit, FalKontextMulti

pytestmark = pytest.mark.anyio
ORANGE = (0.9, 0.4, 0.1)


async def edit(reference: torch.Tensor, prompt: str, node=FalKontextMulti, **inputs):
    """One node run; (images, info, the URLs fal served its results from)."""
    socket = "images" if node is FalKontextMulti else "image"
    images, _, info = await call_node(node, prompt=prompt, seed=inputs.pop("seed", 5),
                                      **{socket: reference}, **inputs)
    return images, json.loads(info)


def served_urls(server, info) -> list[str]:
    job = server.jobs[info["request_id"]]
    return [entry["url"] for entry in job.result["images"]]


def sent_references(server) -> list[list[str]]:
    """Per submit since the last clear: the references it named (list or single field)."""
    bodies = [request.json() for request in server.submits()]
    return [body.get("image_urls") or [body["image_url"]] for body in bodies]


def uploads(server) -> int:
    return server.count("upload") + server.count("initiate")


def restart() -> None:
    """What a ComfyUI restart clears in this process; the disk (result cache) stays."""
    SHARED_UPLOAD_CACHE.clear()
    SHARED_SERVED_FILES.clear()
    result_cache._SHARED_CACHES.clear()


async def test_a_result_fed_into_the_next_node_goes_as_its_url_with_nothing_uploaded(fal_env):
    first, info = await edit(solid(ORANGE), "make it a poster")
    (url,) = served_urls(fal_env, info)
    fal_env.clear_requests()
    second, _ = await edit(first, "now add a title")
    assert sent_references(fal_env) == [[url]]
    assert uploads(fal_env) == 0 and fal_env.count("token") == 0
    assert second.shape == first.shape


async def test_every_frame_of_a_result_batch_goes_as_its_own_url(fal_env):
    first, info = await edit(solid(ORANGE), "two variants", num_images=2)
    fal_env.clear_requests()
    await edit(first, "combine them")
    assert sent_references(fal_env) == [served_urls(fal_env, info)]
    assert uploads(fal_env) == 0


@pytest.mark.parametrize("inputs", [{"reference_encoding": "lossless"},
                                    {"reference_transport": "data_uri"}],
                         ids=["lossless", "data_uri"])
async def test_the_url_is_used_whatever_the_encoding_or_transport(fal_env, inputs):
    # The URL is the very file fal made: exact pixels, and nothing inline or stored anew.
    first, info = await edit(solid(ORANGE), "step one")
    fal_env.clear_requests()
    await edit(first, "step two", node=FalKontextEdit, **inputs)
    assert sent_references(fal_env) == [served_urls(fal_env, info)] and uploads(fal_env) == 0


async def test_an_expired_url_is_sent_again_once_and_only_the_second_submit_bills(fal_env):
    first, info = await edit(solid(ORANGE), "step one")
    (url,) = served_urls(fal_env, info)
    fal_env.expire_file(url)  # fal's storage dropped it (lifecycle ended, or deleted)
    fal_env.clear_requests()
    _, second = await edit(first, "step two")
    (refused, accepted) = sent_references(fal_env)
    assert refused == [url] and accepted != [url] and uploads(fal_env) == 1
    assert fal_env.billed_request_ids() == [info["request_id"], second["request_id"]]
    # The refused URL is never offered again; the upload made instead is re-used.
    fal_env.clear_requests()
    await edit(first, "step two, other words")
    assert sent_references(fal_env) == [accepted] and uploads(fal_env) == 0


async def test_an_expired_url_with_inline_references_is_sent_inline(fal_env):
    first, info = await edit(solid(ORANGE), "step one")
    fal_env.expire_file(served_urls(fal_env, info)[0])
    fal_env.clear_requests()
    await edit(first, "step two", reference_transport="data_uri")
    (refused, accepted) = sent_references(fal_env)
    assert refused == served_urls(fal_env, info) and accepted[0].startswith("data:image/")
    assert uploads(fal_env) == 0


async def test_after_a_restart_the_cached_result_brings_its_url_back(fal_env):
    first, info = await edit(solid(ORANGE), "step one")
    restart()
    again, cached = await edit(solid(ORANGE), "step one")  # served from the result cache
    assert cached["cached"] and torch.equal(again, first)
    fal_env.clear_requests()
    await edit(again, "step two")
    assert sent_references(fal_env) == [served_urls(fal_env, info)] and uploads(fal_env) == 0


async def test_a_cached_url_past_its_reuse_deadline_is_not_handed_back(fal_env):
    first, info = await edit(solid(ORANGE), "step one")
    manifest_path = next(Path(os.environ["FAL_KONTEXT_RESULT_CACHE_DIR"]).rglob("entry.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["files"][0]["served_url"] == served_urls(fal_env, info)[0]
    manifest["files"][0]["served_reuse_until"] = 0.0  # as if the day had passed
    manifest_path.write_text(json.dumps(manifest))
    restart()
    again, _ = await edit(solid(ORANGE), "step one")
    fal_env.clear_requests()
    await edit(again, "step two")
    assert sent_references(fal_env) != [served_urls(fal_env, info)] and uploads(fal_env) == 1


@pytest.mark.parametrize("case", ["downscaled", "one pixel changed", "sync_mode result",
                                  "lifetime left to fal"])
async def test_anything_but_exactly_the_served_pixels_is_uploaded_as_before(fal_env, monkeypatch,
                                                                           case):
    if case == "lifetime left to fal":  # the pack cannot know when the file goes away
        monkeypatch.setenv("FAL_KONTEXT_FAL_STORAGE_SECONDS", "off")
    first, info = await edit(solid(ORANGE), "step one", sync_mode=case == "sync_mode result")
    second_inputs = {}
    if case == "downscaled":  # the stand-in's ~1 MP result is larger than this
        second_inputs["max_reference_megapixels"] = 0.5
    if case == "one pixel changed":
        first = first.clone()
        first[0, 3, 3, 0] = 1.0 - first[0, 3, 3, 0]
    fal_env.clear_requests()
    await edit(first, "step two", **second_inputs)
    (sent,) = sent_references(fal_env)
    assert uploads(fal_env) == 1 and not sent[0].startswith("data:")
    if case != "sync_mode result":
        assert sent != served_urls(fal_env, info)


@pytest.mark.parametrize("limit, as_url", [(1.1, True), (None, False)],
                         ids=["limit above the result", "FLUX.2's default 1 MP limit"])
async def test_a_kontext_result_fed_into_flux2_goes_as_its_url_unless_flux2_would_shrink_it(
        fal_env, limit, as_url):
    # The stand-in's result is 1024x1024 (1.05 MP): above FLUX.2's default limit it is shrunk
    # first (FLUX.2 bills every reference megapixel), so those are other pixels: uploaded.
    first, info = await edit(solid(ORANGE), "step one")
    fal_env.clear_requests()
    inputs = {} if limit is None else {"max_reference_megapixels": limit}
    await call_node(FalFlux2Edit, prompt="step two", images=first, seed=5, **inputs)
    assert (sent_references(fal_env) == [served_urls(fal_env, info)]) is as_url
    assert uploads(fal_env) == (0 if as_url else 1)
