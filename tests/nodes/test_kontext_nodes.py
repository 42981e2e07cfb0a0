"""The nodes from tensors to tensors against the stand-in, called as ComfyUI calls them."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import torch

from fake_comfy import FakeComfy
from node_calls import call_node, solid, widget_defaults
from fal_kontext import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from fal_kontext.client import MissingKeyError, ValidationError
from fal_kontext.kontext import models as m
from fal_kontext.kontext.errors import InvalidInputError, SafetyFilterError
from fal_kontext.nodes.flux2_nodes import FalFlux2Edit
from fal_kontext.nodes.kontext_nodes import FalKontextEdit, FalKontextMulti
from fal_kontext.standin import StandInServer
from support import allow_short_timeouts, TEST_KEY

pytestmark = pytest.mark.anyio
RED, GREEN, BLUE, WHITE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)


def band_colours(image: torch.Tensor, bands: int) -> list[tuple[float, ...]]:
    """Mean colour of the middle of each vertical band of one output frame."""
    height, width, _ = image.shape
    colours = []
    for band in range(bands):
        left, right = band * width // bands, (band + 1) * width // bands
        middle = image[height // 4: 3 * height // 4, left + (right - left) // 4: right - (right - left) // 4]
        colours.append(tuple(round(v, 1) for v in middle.mean(dim=(0, 1)).tolist()))
    return colours


def dominant(colour: tuple[float, ...]) -> int:
    return max(range(3), key=lambda i: colour[i])


def test_the_pack_exports_its_nodes_with_display_names():
    assert list(NODE_CLASS_MAPPINGS) == ["FalKontextMulti", "FalKontextEdit", "FalFlux2Edit",
                                         "FalResultByRequestId"]
    assert NODE_DISPLAY_NAME_MAPPINGS["FalKontextMulti"] == "FLUX.1 Kontext Multi (fal)"
    assert NODE_DISPLAY_NAME_MAPPINGS["FalFlux2Edit"] == "FLUX.2 Edit (fal)"
    assert NODE_DISPLAY_NAME_MAPPINGS["FalResultByRequestId"] == "fal Result by Request ID"


@pytest.mark.parametrize("node_class", [FalKontextMulti, FalKontextEdit])
def test_every_input_has_a_tooltip_and_defaults_within_range(node_class):
    spec = node_class.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec[section].items():
            assert options.get("tooltip"), f"{name} has no tooltip"
            if kind in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"], name
    assert spec["required"]["seed"][1]["control_after_generate"] is True
    assert not hasattr(node_class, "IS_CHANGED"), "an unchanged graph must come from ComfyUI's cache"
    assert "key" not in " ".join(spec["required"]).lower(), "the key is never a widget"


@pytest.mark.parametrize("node_class", [FalKontextMulti, FalKontextEdit])
def test_nodes_live_in_the_packs_own_menu_not_among_comfys_billed_api_nodes(node_class):
    # Frontend 1.58 files categories starting with "api node" under PARTNER NODES, which Comfy
    # bills for; fal bills these runs.
    assert node_class.CATEGORY == "fal/Kontext"
    assert not node_class.CATEGORY.lower().startswith("api node")
    assert not getattr(node_class, "API_NODE", False)


@pytest.mark.parametrize("node_class", list(NODE_CLASS_MAPPINGS.values()))
def test_descriptions_and_tooltips_are_one_short_line(node_class):
    # The node's hover text and each input's: details live in the README.
    assert "\n" not in node_class.DESCRIPTION and len(node_class.DESCRIPTION) <= 120
    if node_class.FUNCTION == "edit":  # a node that submits says who bills it
        assert "fal bills" in node_class.DESCRIPTION
    else:
        assert "free" in node_class.DESCRIPTION
    spec = node_class.INPUT_TYPES()
    tooltips = [options["tooltip"] for section in ("required", "optional")
                for _, options in spec[section].values()] + list(node_class.OUTPUT_TOOLTIPS)
    for tooltip in tooltips:
        assert "\n" not in tooltip and len(tooltip) <= 110, tooltip


def test_the_multi_node_description_does_not_promise_more_inputs_than_it_has():
    # "up to 8 reference images" beside four sockets read as a promise of eight sockets.
    assert str(m.MAX_REFERENCES) not in FalKontextMulti.DESCRIPTION


async def test_a_failed_run_tells_the_frontend_the_node_stopped_running(monkeypatch, fal_env):
    # Frontend 1.27 draws a node as running until a progress state says otherwise; ComfyUI sends
    # one only when a node succeeds.
    comfy = FakeComfy().install(monkeypatch)
    fal_env.fail_next_jobs(1, status=422, detail=[{"loc": ["body", "prompt"], "msg": "bad",
                                                   "type": "value_error"}])
    with pytest.raises(ValidationError):
        await call_node(FalKontextMulti, prompt="p", images=solid(RED))
    assert comfy.finished == ["7"]
    await call_node(FalKontextMulti, prompt="p", images=solid(RED), seed=99)
    assert comfy.finished == ["7"], "a successful node is finished by ComfyUI itself"


async def test_an_input_refused_at_run_time_also_ends_the_running_state(monkeypatch, fal_env):
    comfy = FakeComfy().install(monkeypatch)
    with pytest.raises(InvalidInputError):
        await call_node(FalKontextEdit, prompt="p", image=solid(RED, batch=2))
    assert comfy.finished == ["7"]
    assert not fal_env.requests


async def test_a_batch_on_the_single_image_node_names_its_own_input(fal_env):
    with pytest.raises(InvalidInputError) as caught:
        await call_node(FalKontextEdit, prompt="p", image=solid(RED, batch=2))
    assert str(caught.value).startswith("image holds 2 reference images in all")


async def test_references_arrive_in_socket_then_batch_order(fal_env):
    images, seed, info = await call_node(
        FalKontextMulti, prompt="combine", images=torch.cat([solid(RED), solid(GREEN)]),
        image_2=solid(BLUE, 48, 40), image_3=solid(WHITE, 20, 30), seed=11)
    job = next(iter(fal_env.jobs.values()))
    assert len(job.arguments["image_urls"]) == 4
    colours = band_colours(images[0], 4)
    assert [dominant(c) for c in colours[:3]] == [0, 1, 2]
    assert min(colours[3]) > 0.7, "the white reference is last"
    assert seed == 11 and json.loads(info)["seed"] == 11


async def test_mixed_sizes_and_channel_counts_are_accepted(fal_env):
    gray = torch.full((1, 40, 24, 1), 0.5)
    rgba = solid(RED, 16, 64, channels=4)
    images, _, _ = await call_node(FalKontextMulti, prompt="p", images=gray, image_2=rgba)
    assert images.dtype == torch.float32 and images.shape[-1] == 3
    assert [tuple(s) for s in next(iter(fal_env.jobs.values())).reference_sizes] == [(24, 40), (64, 16)]


@pytest.mark.parametrize("count", [1, 2, 3, 4])
async def test_num_images_gives_a_batch_of_that_many(fal_env, count):
    images, _, info = await call_node(FalKontextMulti, prompt="p", images=solid(RED), num_images=count,
                                      aspect_ratio="16:9")
    assert images.shape[0] == count and images.shape[2] > images.shape[1]
    assert json.loads(info)["estimated_cost_usd"] == pytest.approx(0.04 * count)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
async def test_output_format_reaches_fal(fal_env, fmt):
    await call_node(FalKontextMulti, prompt="p", images=solid(RED), output_format=fmt)
    assert next(iter(fal_env.jobs.values())).arguments["output_format"] == fmt


async def test_sync_mode_results_come_inline_and_decode(fal_env):
    images, _, _ = await call_node(FalKontextMulti, prompt="p", images=solid(GREEN), sync_mode=True)
    assert images.shape[0] == 1
    assert fal_env.count("file") == 0, "no result was fetched from the CDN"


async def test_every_parameter_reaches_fal_with_the_right_json_type(fal_env):
    await call_node(FalKontextMulti, prompt="p", images=solid(RED), model="max", seed=5,
                    guidance_scale=7.5, num_images=2, aspect_ratio="3:4", output_format="png",
                    safety_tolerance="5", enhance_prompt=True, sync_mode=True)
    job = next(iter(fal_env.jobs.values()))
    assert job.endpoint_id == "fal-ai/flux-pro/kontext/max/multi"
    assert {k: v for k, v in job.arguments.items() if k != "image_urls"} == {
        "prompt": "p", "seed": 5, "guidance_scale": 7.5, "num_images": 2, "aspect_ratio": "3:4",
        "output_format": "png", "safety_tolerance": "5", "enhance_prompt": True, "sync_mode": True}


async def test_auto_aspect_ratio_omits_the_field(fal_env):
    await call_node(FalKontextMulti, prompt="p", images=solid(RED))
    assert "aspect_ratio" not in next(iter(fal_env.jobs.values())).arguments


async def test_flagged_images_are_dropped_and_reported(fal_env):
    images, _, info = await call_node(FalKontextMulti, prompt="a cat [nsfw:0]", images=solid(RED),
                                      num_images=2)
    assert images.shape[0] == 1
    assert json.loads(info)["has_nsfw_concepts"] == [True, False]
    assert json.loads(info)["dropped_nsfw_images"] == [0]
    assert images.max() > 0.2, "no black frame passes downstream"


async def test_all_images_flagged_is_an_error_not_a_black_frame(fal_env):
    with pytest.raises(SafetyFilterError, match="safety_tolerance"):
        await call_node(FalKontextMulti, prompt="[nsfw]", images=solid(RED))


async def test_nsfw_policy_keep_passes_flagged_images_and_error_refuses(fal_env):
    images, _, _ = await call_node(FalKontextMulti, prompt="[nsfw:1]", images=solid(RED),
                                   num_images=2, nsfw_policy="keep", use_result_cache=False)
    assert images.shape[0] == 2
    with pytest.raises(SafetyFilterError):
        await call_node(FalKontextMulti, prompt="[nsfw:1]", images=solid(RED), num_images=2,
                        nsfw_policy="error", use_result_cache=False)


async def test_interrupt_cancels_remote_job_and_raises_comfys_interrupt(monkeypatch):
    comfy = FakeComfy().install(monkeypatch)
    with StandInServer(processing_delay=30) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        node = asyncio.ensure_future(call_node(FalKontextMulti, prompt="p", images=solid(RED)))
        while not server.submits():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        comfy.press_cancel()
        pressed = time.monotonic()
        with pytest.raises(comfy.InterruptProcessingException):
            await node
        assert time.monotonic() - pressed < 0.5
        assert len(server.cancels()) == 1
    assert comfy.progress, "the progress bar moved"
    assert any("Queued" in text or "Generating" in text for _, text in comfy.texts)
    assert all(node_id == "7" for node_id, _ in comfy.texts)


@pytest.mark.parametrize("node_class", [FalKontextMulti, FalFlux2Edit])
async def test_timeout_cancels_the_job(monkeypatch, node_class):
    allow_short_timeouts(monkeypatch, 0.1)
    from fal_kontext.client import FalTimeoutError
    with StandInServer(processing_delay=30) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        with pytest.raises(FalTimeoutError, match="cancel"):
            await call_node(node_class, prompt="p", images=solid(RED), timeout_seconds=1)
        assert len(server.cancels()) == 1 and not server.billed_jobs()


async def test_missing_key_is_one_line_saying_how_to_set_it(standin, monkeypatch):
    monkeypatch.setenv("FAL_KONTEXT_BASE_URL", standin.base_url)
    with pytest.raises(MissingKeyError) as caught:
        await call_node(FalKontextMulti, prompt="p", images=solid(RED))
    assert "FAL_KEY" in str(caught.value) and "\n" not in str(caught.value)
    assert not standin.requests


async def test_a_rejected_field_is_named_in_the_error(fal_env):
    fal_env.fail_next_jobs(1, status=422, detail=[{"loc": ["body", "aspect_ratio"],
                                                   "msg": "Input should be '1:1'", "type": "enum"}])
    with pytest.raises(ValidationError, match="aspect_ratio: Input should be"):
        await call_node(FalKontextMulti, prompt="p", images=solid(RED))


async def test_a_second_run_with_the_same_references_uploads_nothing(fal_env):
    await call_node(FalKontextMulti, prompt="first", images=solid(RED), image_2=solid(BLUE))
    uploads = fal_env.count("upload")
    await call_node(FalKontextMulti, prompt="second", images=solid(RED), image_2=solid(BLUE))
    assert uploads == 2 and fal_env.count("upload") == 2
    assert len(fal_env.submits()) == 2


async def test_an_identical_run_is_served_from_the_result_cache_without_fal(fal_env):
    first, _, _ = await call_node(FalKontextMulti, prompt="same", images=solid(RED), seed=3)
    second, _, info = await call_node(FalKontextMulti, prompt="same", images=solid(RED), seed=3)
    assert torch.equal(first, second)
    assert len(fal_env.submits()) == 1
    assert json.loads(info)["cached"] is True and json.loads(info)["cost_saved_usd"] == 0.04


async def test_an_upgrade_that_retunes_the_encoder_still_serves_the_paid_result(fal_env, monkeypatch):
    from fal_kontext.kontext import models
    first, _, _ = await call_node(FalKontextMulti, prompt="same", images=solid(RED), seed=3)
    for constant in ("REFERENCE_JPEG_STEP", "REFERENCE_GRAPHIC_MAX_COLOURS"):
        monkeypatch.setattr(models, constant, getattr(models, constant) + 1)
    second, _, info = await call_node(FalKontextMulti, prompt="same", images=solid(RED), seed=3)
    assert torch.equal(first, second) and len(fal_env.submits()) == 1
    assert json.loads(info)["cached"] is True
    # What the user chose still counts: exact pixels asked for is a new run.
    await call_node(FalKontextMulti, prompt="same", images=solid(RED), seed=3,
                    reference_encoding="lossless")
    assert len(fal_env.submits()) == 2


async def test_two_nodes_awaited_together_overlap(monkeypatch):
    with StandInServer(processing_delay=1.0) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        started = time.monotonic()
        await asyncio.gather(call_node(FalKontextMulti, prompt="a", images=solid(RED)),
                             call_node(FalKontextMulti, prompt="b", images=solid(BLUE)))
        assert time.monotonic() - started < 1.8


def test_each_prompt_in_its_own_event_loop_works(fal_env):
    """ComfyUI runs every prompt with asyncio.run; a client must not leak across loops."""
    for prompt in ("one", "two"):
        images, _, _ = asyncio.run(call_node(FalKontextMulti, prompt=prompt, images=solid(RED)))
        assert images.shape[0] == 1


async def test_single_image_node_sends_image_url(fal_env):
    images, _, _ = await call_node(FalKontextEdit, prompt="p", image=solid(RED))
    job = next(iter(fal_env.jobs.values()))
    assert job.endpoint_id == "fal-ai/flux-pro/kontext" and isinstance(job.arguments["image_url"], str)
    assert images.shape[0] == 1


def test_defaults_are_what_fal_documents():
    defaults = widget_defaults(FalKontextMulti)
    assert defaults["guidance_scale"] == 3.5 and defaults["num_images"] == 1
    assert defaults["safety_tolerance"] == "2" and defaults["output_format"] == "jpeg"
    assert defaults["aspect_ratio"] == "auto" and defaults["model"] == "pro"


async def test_two_nodes_sharing_a_reference_upload_it_once(fal_env):
    shared = solid(RED, 64, 64)
    await asyncio.gather(call_node(FalKontextMulti, prompt="a", images=shared),
                         call_node(FalKontextMulti, prompt="b", images=shared))
    assert fal_env.count("upload") == 1 and len(fal_env.submits()) == 2
