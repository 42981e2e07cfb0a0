"""FLUX.2's price rule: fal's worked examples, the rounding, the `auto` estimate, and what the
pack's reference downscale does to the bill."""
from __future__ import annotations

import pytest

from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext.reference_encoding import downscaled_size

PRO, MAX, FLEX = (f.FLUX2_MODELS[tier] for tier in ("pro", "max", "flex"))
SQUARE, FULL_HD, SMALL = (1024, 1024), (1920, 1080), (512, 512)


@pytest.mark.parametrize("model, output, references, usd", [
    # fal's own examples, output only (model pages of pro and flex)
    (PRO, SQUARE, [], 0.03),
    (PRO, FULL_HD, [], 0.045),
    (PRO, SMALL, [], 0.03),
    (FLEX, SQUARE, [], 0.05),
    (FLEX, FULL_HD, [], 0.10),
    # two 1024x1024 references and a 1920x1080 output: 4 MP on every reading of the rule
    (PRO, FULL_HD, [SQUARE, SQUARE], 0.075),
    (MAX, FULL_HD, [SQUARE, SQUARE], 0.16),
    (FLEX, FULL_HD, [SQUARE, SQUARE], 0.20),
    # BFL's "1 MP in + 1 MP out" list prices
    (PRO, SQUARE, [SQUARE], 0.045),
    (MAX, SQUARE, [SQUARE], 0.10),
    (FLEX, SQUARE, [SQUARE], 0.10),
], ids=lambda value: getattr(value, "tier", None))
def test_fals_worked_examples(model, output, references, usd):
    assert f.estimate_cost_usd(model, output, references) == pytest.approx(usd, abs=1e-9)


@pytest.mark.parametrize("pixels, megapixels", [
    (1, 1), (1024 * 1024, 1), (1024 * 1024 + 1, 2), (2 * 1024 * 1024, 2), (1_000_000 * 3, 3)])
def test_billed_megapixels_round_the_total_up_and_are_at_least_one(pixels, megapixels):
    assert f.billed_megapixels((pixels, 1), []) == megapixels


def test_references_are_added_up_before_rounding():
    # Three tiny references and a 1 MP output: 2 MP by the total (each rounded alone would be 4).
    assert f.billed_megapixels(SQUARE, [(256, 256)] * 3) == 2


@pytest.mark.parametrize("first, expected", [
    ((1024, 1024), (1024, 1024)), ((4000, 3000), (1184, 880)), ((3000, 4000), (880, 1184)),
    ((1920, 1080), (1360, 768)), ((64, 48), (1184, 880))])
def test_auto_is_estimated_as_the_first_references_shape_at_about_one_megapixel(first, expected):
    width, height = f.auto_output_size(first)
    assert (width, height) == expected
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height - 1024 * 1024) < 0.05 * 1024 * 1024


@pytest.mark.parametrize("image_size, size", [
    ("square_hd", (1024, 1024)), ("square", (512, 512)), ("portrait_4_3", (768, 1024)),
    ("portrait_16_9", (576, 1024)), ("landscape_4_3", (1024, 768)),
    ("landscape_16_9", (1024, 576)), ({"width": 1536, "height": 640}, (1536, 640)),
    ("auto", (1184, 880))])
def test_output_size_follows_image_size(image_size, size):
    assert f.output_size(image_size, (4000, 3000)) == size


def test_the_default_downscale_keeps_every_reference_under_one_billed_megapixel():
    for width, height in [(4000, 3000), (1024, 1024), (6000, 1000), (8192, 8192), (1001, 1000)]:
        sent = downscaled_size(width, height, f.DEFAULT_MAX_REFERENCE_MEGAPIXELS)
        assert sent[0] * sent[1] <= f.BILLING_MEGAPIXEL_PIXELS


def test_downscaling_two_twelve_megapixel_photos_saves_most_of_the_bill():
    photos = [(4000, 3000)] * 2
    sent = [downscaled_size(w, h, f.DEFAULT_MAX_REFERENCE_MEGAPIXELS) for w, h in photos]
    assert sent == [(1154, 866)] * 2
    output = f.auto_output_size(sent[0])
    assert f.estimate_cost_usd(PRO, output, photos) == pytest.approx(0.375)  # 24 MP
    assert f.estimate_cost_usd(PRO, output, sent) == pytest.approx(0.06)  # 3 MP
    assert f.estimate_cost_usd(MAX, output, photos) == pytest.approx(0.76)
    assert f.estimate_cost_usd(MAX, output, sent) == pytest.approx(0.13)


def test_downscaled_size_never_exceeds_the_limit_and_keeps_the_shape():
    for width, height in [(4000, 3000), (3001, 7), (12345, 6789), (1, 5_000_000)]:
        for limit in (0.25, 1.0, 1.1, 4.0):
            w, h = downscaled_size(width, height, limit)
            assert w * h <= limit * 1_000_000 and w >= 1 and h >= 1
            assert abs(w / h - width / height) / (width / height) < 0.02 or min(w, h) < 50
    assert downscaled_size(4000, 3000, 0) == (4000, 3000), "0 means never"
    assert downscaled_size(800, 600, 1.0) == (800, 600), "a reference that fits is sent as it is"


def test_the_model_table_holds_the_three_endpoints():
    assert {tier: model.endpoint_id for tier, model in f.FLUX2_MODELS.items()} == {
        "pro": "fal-ai/flux-2-pro/edit", "max": "fal-ai/flux-2-max/edit",
        "flex": "fal-ai/flux-2-flex/edit"}
    assert all(model.max_references == 8 for model in f.FLUX2_MODELS.values())
    assert f.model_for_endpoint("fal-ai/flux-2-max/edit") is MAX
    with pytest.raises(KeyError):
        f.model_for_endpoint("fal-ai/flux-pro/kontext/multi")
