"""A FLUX.2 edit request: fal's body for each model exactly, the local checks (one line naming the
input), the cache key's fields, the price, and the job layer's contract."""
from __future__ import annotations

import pytest

from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext import flux2_parameters as fp
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.errors import InvalidInputError
from fal_kontext.kontext.flux2_request import Flux2EditRequest
from fal_kontext.kontext.models import MULTI_MODELS
from fal_kontext.kontext.request_contract import FalEditRequest
from fal_kontext.kontext.pipeline import request_key

URLS = ["https://cdn.example/a.png", "https://cdn.example/b.png"]
TWO_REFS = [(1024, 1024), (1024, 1024)]
KONTEXT_ONLY = {"num_images", "aspect_ratio", "enhance_prompt"}


def request(tier: str = "pro", refs=TWO_REFS, prompt: str = "combine them", **values) -> Flux2EditRequest:
    return Flux2EditRequest(f.FLUX2_MODELS[tier], prompt, refs, **{"seed": 7, **values})


@pytest.mark.parametrize("tier", ["pro", "max"])
def test_pro_and_max_bodies_hold_exactly_their_schemas_fields(tier):
    body = request(tier, guidance_scale=9.0, num_inference_steps=40).arguments(URLS)
    assert body == {"prompt": "combine them", "seed": 7, "image_size": "auto",
                    "safety_tolerance": "2", "enable_safety_checker": True,
                    "output_format": "jpeg", "sync_mode": False, "image_urls": URLS}


def test_flex_body_adds_its_sampling_fields():
    body = request("flex", guidance_scale=5.5, num_inference_steps=40).arguments(URLS)
    assert body == {"prompt": "combine them", "seed": 7, "image_size": "auto",
                    "safety_tolerance": "2", "enable_safety_checker": True,
                    "output_format": "jpeg", "sync_mode": False, "guidance_scale": 5.5,
                    "num_inference_steps": 40, "image_urls": URLS}


@pytest.mark.parametrize("tier", f.FLUX2_TIERS)
def test_no_kontext_only_field_is_ever_sent(tier):
    assert not KONTEXT_ONLY & set(request(tier).arguments(URLS))
    with pytest.raises(TypeError, match="num_images"):
        request(tier, num_images=2)


def test_custom_size_goes_as_fals_width_height_object_and_presets_by_name():
    custom = request(image_size="custom", width=1536, height=1024).arguments(URLS)
    assert custom["image_size"] == {"width": 1536, "height": 1024}
    assert "width" not in custom and "height" not in custom
    preset = request(image_size="landscape_16_9", width=1536, height=1024).arguments(URLS)
    assert preset["image_size"] == "landscape_16_9"


def test_every_field_keeps_the_json_type_fal_expects():
    body = request("flex", seed=3, guidance_scale=4, num_inference_steps=10, safety_tolerance=5,
                   image_size="custom", width=640, height=480).arguments(URLS)
    assert body["guidance_scale"] == 4.0 and isinstance(body["guidance_scale"], float)
    assert body["safety_tolerance"] == "5", "fal's enum is of strings"
    assert isinstance(body["num_inference_steps"], int) and isinstance(body["seed"], int)


def test_no_seed_is_left_out_and_makes_the_run_unreproducible():
    unseeded = request(seed=None)
    assert "seed" not in unseeded.arguments(URLS) and not unseeded.reproducible
    assert request().reproducible


@pytest.mark.parametrize("values, name", [
    ({"prompt": "  "}, "prompt"),
    ({"safety_tolerance": "6"}, "safety_tolerance"),
    ({"image_size": "portrait_2_1"}, "image_size"),
    ({"image_size": "custom", "width": 32}, "width"),
    ({"image_size": "custom", "height": 20000}, "height"),
    ({"image_size": "custom", "width": 3000, "height": 2000}, "image_size"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"enable_safety_checker": "yes"}, "enable_safety_checker"),
    ({"output_format": "webp"}, "output_format"),
    ({"tier": "flex", "guidance_scale": 1.0}, "guidance_scale"),
    ({"tier": "flex", "guidance_scale": 11}, "guidance_scale"),
    ({"tier": "flex", "num_inference_steps": 0}, "num_inference_steps"),
    ({"tier": "flex", "num_inference_steps": 51}, "num_inference_steps"),
    ({"tier": "flex", "num_inference_steps": 2.5}, "num_inference_steps"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_value_out_of_range_is_one_line_naming_the_input(values, name):
    values = dict(values)
    tier = values.pop("tier", "pro")
    prompt = values.pop("prompt", "p")
    with pytest.raises(InvalidInputError) as caught:
        request(tier, prompt=prompt, **values).validate(2)
    assert caught.value.input_name == name and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"Input '{name}': ")


def test_a_too_large_custom_size_says_how_large_and_the_limit():
    with pytest.raises(InvalidInputError, match=r"custom 3000x2000 is 5\.72 MP; FLUX\.2 makes at "
                                                r"most 4 MP \(2048x2048\)"):
        request(image_size="custom", width=3000, height=2000).validate(2)
    request(image_size="custom", width=2048, height=2048).validate(2)  # the limit itself is fine


def test_unused_fields_are_not_checked():
    # width/height only matter for custom; flex's fields only for flex.
    request("pro", image_size="square_hd", width=1, guidance_scale=99).validate(2)


@pytest.mark.parametrize("tier", f.FLUX2_TIERS)
def test_more_references_than_the_model_takes_is_refused_naming_the_count(tier):
    nine = [(512, 512)] * 9
    with pytest.raises(InvalidInputError, match=r"Input 'images': 9 reference images were given; "
                                                rf"{f.FLUX2_MODELS[tier].endpoint_id} takes at most 8"):
        request(tier, refs=nine).validate(9)
    request(tier, refs=nine[:8]).validate(8)
    with pytest.raises(InvalidInputError, match="connect at least one image"):
        request(tier, refs=[]).validate(0)


def test_a_request_priced_for_other_references_is_a_caller_bug():
    with pytest.raises(ValueError, match="priced for 2 reference"):
        request().validate(3)


def test_the_cache_key_holds_every_field_that_changes_the_output_and_nothing_else():
    def key(req):
        return request_key(req, ["ref-a", "ref-b"])

    base = request("pro", image_size="custom", width=1024, height=768)
    assert key(base) == key(base.replace())
    for change in ({"seed": 8}, {"prompt": "other"}, {"width": 1040}, {"height": 784},
                   {"safety_tolerance": "3"}, {"enable_safety_checker": False},
                   {"output_format": "png"}, {"image_size": "square_hd"},
                   {"model": f.FLUX2_MODELS["max"]}):
        assert key(base.replace(**change)) != key(base), change
    # Fields pro does not have, and the sizes of an unused custom size, do not make a new run.
    assert key(base.replace(guidance_scale=7.0, num_inference_steps=9)) == key(base)
    preset = request("pro", image_size="square_hd")
    assert key(preset.replace(width=2000)) == key(preset)
    flex = request("flex")
    assert key(flex.replace(guidance_scale=7.0)) != key(flex)
    assert key(flex.replace(num_inference_steps=9)) != key(flex)


def test_checked_values_hold_what_the_job_layer_reads():
    values = request(sync_mode=True, output_format="png").checked_values()
    assert values["output_format"] == "png" and values.get("sync_mode", False) is True


@pytest.mark.parametrize("tier, refs, values, usd, megapixels", [
    ("pro", TWO_REFS, {"image_size": "custom", "width": 1920, "height": 1080}, 0.075, 4),
    ("max", TWO_REFS, {"image_size": "custom", "width": 1920, "height": 1080}, 0.16, 4),
    ("flex", TWO_REFS, {"image_size": "custom", "width": 1920, "height": 1080}, 0.20, 4),
    ("pro", [(512, 512)], {"image_size": "square"}, 0.03, 1),
    ("pro", [(1000, 1000)], {"image_size": "auto"}, 0.045, 2),
    ("max", [(1154, 866)] * 8, {"image_size": "square_hd"}, 0.31, 9),
])
def test_the_estimate_counts_the_output_and_every_reference_as_sent(tier, refs, values, usd,
                                                                    megapixels):
    priced = request(tier, refs=refs, **values)
    assert priced.estimated_cost_usd == pytest.approx(usd)
    assert priced.billed_megapixels == megapixels


def test_after_the_run_the_price_follows_the_size_fal_made():
    asked = request("pro", refs=[(1000, 1000)])  # auto: estimated 1024x1024, 2 MP, $0.045
    info = {"estimated_cost_usd": asked.estimated_cost_usd, "cached": False}
    same = asked.priced_info(info, (1024, 1024))
    assert same["estimated_cost_usd"] == 0.045 and "estimated_cost_before_run_usd" not in same
    assert same["billed_megapixels"] == 2 and same["output_size"] == [1024, 1024]
    assert same["reference_sizes"] == [[1000, 1000]]
    bigger = asked.priced_info(info, (2048, 1024))
    assert bigger["estimated_cost_usd"] == 0.06 and bigger["estimated_cost_before_run_usd"] == 0.045
    cached = asked.priced_info({"estimated_cost_usd": 0.0, "cached": True}, (2048, 1024))
    assert cached["estimated_cost_usd"] == 0.0, "a cached run cost nothing"


def test_both_families_satisfy_the_job_layers_contract():
    flux2 = request()
    kontext = EditRequest(MULTI_MODELS["pro"], "p", seed=1)
    for edit in (flux2, kontext):
        assert isinstance(edit, FalEditRequest)
        assert isinstance(edit.model.endpoint_id, str) and isinstance(edit.instruction, str)
        assert isinstance(edit.estimated_cost_usd, float) and edit.reproducible is True
        assert "output_format" in edit.checked_values()


def test_from_inputs_takes_a_nodes_inputs_by_name_and_ignores_the_rest():
    inputs = {**fp.TABLE.defaults(), "prompt": "p", "seed": 4, "images": object(),
              "timeout_seconds": 30, "model": "max"}
    built = Flux2EditRequest.from_inputs(f.FLUX2_MODELS["max"], inputs, [(64, 64)])
    assert built.instruction == "p" and built.checked_values()["seed"] == 4
    assert built == request("max", refs=[(64, 64)], prompt="p", seed=4)
