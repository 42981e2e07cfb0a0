"""The FLUX.2 Edit node from tensors to tensors against the stand-in, called as ComfyUI calls it:
its inputs, fal's body for each model, the price before and after, and refusals before any
request."""
from __future__ import annotations

import asyncio
import json
from typing import Iterator

import pytest
import torch

from node_calls import call_node, solid, widget_defaults
from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext.errors import InvalidInputError, SpendCapError
from fal_kontext.nodes.flux2_nodes import FalFlux2Edit
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from fal_kontext.nodes.references import sent_reference_sizes
from fal_kontext.standin import StandInServer
from support import TEST_KEY

pytestmark = pytest.mark.anyio
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
COMMON_BODY = {"prompt": "p", "safety_tolerance": "2", "enable_safety_checker": True,
               "output_format": "jpeg", "sync_mode": False}


@pytest.fixture(scope="module")
def module_standin() -> Iterator[StandInServer]:
    with StandInServer(processing_delay=0.05) as server:
        yield server


@pytest.fixture
def fal(monkeypatch, module_standin) -> StandInServer:
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    monkeypatch.setenv("FAL_KONTEXT_BASE_URL", module_standin.base_url)
    module_standin.clear_requests()
    return module_standin


def last_job(server: StandInServer):
    return max(server.jobs.values(), key=lambda job: job.submitted_at)


# --- inputs ----------------------------------------------------------------------------------------


def test_widgets_in_the_order_saved_workflows_will_depend_on():
    spec = FalFlux2Edit.INPUT_TYPES()
    assert list(spec["required"]) == [
        "prompt", "images", "model", "seed", "image_size", "width", "height", "safety_tolerance",
        "enable_safety_checker", "output_format", "sync_mode", "guidance_scale",
        "num_inference_steps", "reference_transport", "max_reference_megapixels",
        "timeout_seconds", "nsfw_policy", "use_result_cache", "reference_encoding"]
    assert list(spec["optional"]) == ["image_2", "image_3", "image_4"]
    assert FalFlux2Edit.CATEGORY == "fal/FLUX.2"
    assert FalFlux2Edit.RETURN_NAMES == ("images", "seed", "info")


def test_fals_defaults_and_ranges():
    defaults = widget_defaults(FalFlux2Edit)
    assert {name: defaults[name] for name in (
        "model", "image_size", "width", "height", "safety_tolerance", "enable_safety_checker",
        "output_format", "sync_mode", "guidance_scale", "num_inference_steps",
        "max_reference_megapixels")} == {
        "model": "pro", "image_size": "auto", "width": 512, "height": 512,
        "safety_tolerance": "2", "enable_safety_checker": True, "output_format": "jpeg",
        "sync_mode": False, "guidance_scale": 3.5, "num_inference_steps": 28,
        "max_reference_megapixels": 1.0}
    required = FalFlux2Edit.INPUT_TYPES()["required"]
    assert required["model"][0] == ["pro", "max", "flex"]
    assert required["image_size"][0] == ["auto", "square_hd", "square", "portrait_4_3",
                                         "portrait_16_9", "landscape_4_3", "landscape_16_9",
                                         "custom"]
    assert required["safety_tolerance"][0] == ["1", "2", "3", "4", "5"]
    assert (required["width"][1]["min"], required["width"][1]["max"],
            required["width"][1]["step"]) == (64, 14142, 16)
    assert (required["guidance_scale"][1]["min"], required["guidance_scale"][1]["max"]) == (1.5, 10)
    assert (required["num_inference_steps"][1]["min"],
            required["num_inference_steps"][1]["max"]) == (1, 50)
    assert required["seed"][1]["control_after_generate"] is True


def test_every_input_has_a_tooltip_and_flex_fields_say_they_are_flex_only():
    spec = FalFlux2Edit.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec[section].items():
            assert options.get("tooltip"), name
            if kind in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"], name
    for name in ("guidance_scale", "num_inference_steps"):
        assert "[flex] only" in spec["required"][name][1]["tooltip"]
        assert "not sent" in spec["required"][name][1]["tooltip"]
    assert "per megapixel" in spec["required"]["model"][1]["tooltip"]


def test_reference_sizes_as_sent_are_read_from_the_tensors_in_socket_then_batch_order():
    # Shapes only: nothing is converted, so a broadcast view stands in for two 12 MP frames.
    inputs = {"images": torch.zeros(1, 1, 1, 3).expand(2, 3000, 4000, 3),
              "image_3": torch.zeros(48, 64, 4), "image_2": None}
    assert sent_reference_sizes(inputs, FalFlux2Edit.REFERENCE_INPUTS, 1.0) == [
        (1154, 866), (1154, 866), (64, 48)]
    assert sent_reference_sizes(inputs, FalFlux2Edit.REFERENCE_INPUTS, 0) == [
        (4000, 3000), (4000, 3000), (64, 48)]


# --- runs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier, widgets, extra_body, size", [
    ("pro", {}, {"image_size": "auto"}, (1024, 1024)),
    ("max", {"image_size": "custom", "width": 1200, "height": 800},
     {"image_size": {"width": 1200, "height": 800}}, (1200, 800)),
    ("flex", {"image_size": "portrait_4_3", "guidance_scale": 6.0, "num_inference_steps": 12},
     {"image_size": "portrait_4_3", "guidance_scale": 6.0, "num_inference_steps": 12},
     (768, 1024)),
])
async def test_each_model_runs_end_to_end_with_fals_body_and_its_price(fal, tier, widgets,
                                                                       extra_body, size):
    images, seed, info = await call_node(
        FalFlux2Edit, prompt="p", images=solid(RED, 64, 64), image_2=solid(BLUE, 48, 64),
        model=tier, seed=21, guidance_scale=widgets.pop("guidance_scale", 9.0), **widgets)
    job = last_job(fal)
    body = {name: value for name, value in job.arguments.items() if name != "image_urls"}
    assert job.endpoint_id == f.FLUX2_MODELS[tier].endpoint_id
    assert body == {**COMMON_BODY, "seed": 21, **extra_body}
    assert len(job.arguments["image_urls"]) == 2
    assert tuple(images.shape) == (1, size[1], size[0], 3) and images.dtype == torch.float32
    info = json.loads(info)
    assert seed == info["seed"] == 21
    assert info["request_id"] == job.request_id and info["endpoint"] == job.endpoint_id
    assert info["output_size"] == list(size) and info["reference_sizes"] == [[64, 64], [64, 48]]
    bill, = [b for b in fal.billed_jobs() if b.request_id == job.request_id]
    assert info["estimated_cost_usd"] == pytest.approx(bill.usd), "the pack's price is fal's bill"
    assert info["billed_megapixels"] == bill.megapixels


async def test_references_are_downscaled_before_sending_and_priced_as_sent(fal):
    photo = torch.rand(1, 1500, 2000, 3)  # 3 MP: 3 billed MP more than needed at full size
    _, _, info = await call_node(FalFlux2Edit, prompt="p", images=photo, image_size="square_hd")
    info = json.loads(info)
    assert [tuple(size) for size in last_job(fal).reference_sizes] == [(1154, 866)]
    assert info["reference_sizes"] == [[1154, 866]]
    assert info["billed_megapixels"] == 2 and info["estimated_cost_usd"] == pytest.approx(0.045)


async def test_nine_references_are_refused_before_anything_is_sent(fal):
    with pytest.raises(InvalidInputError, match=r"images holds 9 reference images in all; "
                                                r"fal-ai/flux-2-pro/edit takes at most 8"):
        await call_node(FalFlux2Edit, prompt="p", images=solid(RED, batch=5),
                        image_2=solid(BLUE, batch=4))
    assert not fal.requests


@pytest.mark.parametrize("widgets, name", [
    ({"image_size": "custom", "width": 4096, "height": 2048}, "image_size"),
    ({"model": "flex", "num_inference_steps": 80}, "num_inference_steps"),
    ({"model": "ultra"}, "model"),
    ({"safety_tolerance": "6"}, "safety_tolerance"),
    ({"max_reference_megapixels": -1}, "max_reference_megapixels"),
])
async def test_a_value_out_of_range_is_refused_naming_it_before_anything_is_sent(fal, widgets, name):
    with pytest.raises(InvalidInputError) as caught:
        await call_node(FalFlux2Edit, prompt="p", images=solid(RED), **widgets)
    assert caught.value.input_name == name and "\n" not in str(caught.value)
    assert not fal.requests


async def test_the_spend_cap_counts_the_per_megapixel_price(fal, monkeypatch):
    monkeypatch.setenv("FAL_KONTEXT_MAX_SPEND_USD", "0.05")
    # square_hd + one reference: 2 MP, $0.045 on pro, under the cap; $0.10 on flex, over it.
    await call_node(FalFlux2Edit, prompt="p", images=solid(RED), image_size="square_hd")
    with pytest.raises(SpendCapError, match=r"\$0\.10"):
        await call_node(FalFlux2Edit, prompt="q", images=solid(RED), image_size="square_hd",
                        model="flex")
    assert len(fal.submits()) == 1


async def test_an_identical_run_is_served_from_the_result_cache(fal):
    first, _, _ = await call_node(FalFlux2Edit, prompt="same", images=solid(RED), seed=9)
    # guidance_scale is no field of pro: changing it changes nothing that is sent.
    second, _, info = await call_node(FalFlux2Edit, prompt="same", images=solid(RED), seed=9,
                                      guidance_scale=8.0)
    info = json.loads(info)
    assert torch.equal(first, second) and len(fal.submits()) == 1
    assert info["cached"] is True and info["estimated_cost_usd"] == 0.0
    assert info["cost_saved_usd"] == pytest.approx(0.045)
    await call_node(FalFlux2Edit, prompt="same", images=solid(RED), seed=9, model="flex")
    assert len(fal.submits()) == 2, "another model is another run"


async def test_a_flux2_and_a_kontext_node_run_side_by_side(fal):
    (flux2_images, _, flux2_info), (kontext_images, _, kontext_info) = await asyncio.gather(
        call_node(FalFlux2Edit, prompt="a", images=solid(RED), image_size="square"),
        call_node(FalKontextMulti, prompt="b", images=solid(BLUE)))
    assert json.loads(flux2_info)["endpoint"] == "fal-ai/flux-2-pro/edit"
    assert json.loads(kontext_info)["endpoint"] == "fal-ai/flux-pro/kontext/multi"
    assert flux2_images.shape[1:3] == (512, 512) and kontext_images.shape[0] == 1
    assert "num_images" in [b for b in fal.submits() if "kontext" in b.path][0].json()
