"""The one table of FLUX.2 edit facts: endpoint ids, reference limits, sizes and the price rule.

Sources, and which facts fal confirms, are in docs/fal-protocol-notes.md ("FLUX.2 edit").
Everything else in the pack (node, CLI, price badge, README, benchmark) reads from here; the
stand-in keeps its own copy on purpose (standin/flux2_schema.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

Size = tuple[int, int]  # (width, height) in pixels
ImageSizeValue = Union[str, Mapping[str, int]]  # what fal's `image_size` takes


@dataclass(frozen=True)
class Flux2Model:
    """One FLUX.2 edit endpoint: its id, how many references it takes, what it charges."""

    endpoint_id: str
    tier: str  # "pro", "max" or "flex": the node's `model` combo value
    label: str  # how BFL names it
    max_references: int
    usd_first_megapixel: float
    usd_further_megapixel: float


# fal bills per megapixel of output *and* of the references ([P][M][F] in the spec). BFL's API
# takes up to 8 references (input_image .. input_image_8); fal states no limit of its own.
FLUX2_MAX_REFERENCES = 8
FLUX2_MODELS: dict[str, Flux2Model] = {
    "pro": Flux2Model("fal-ai/flux-2-pro/edit", "pro", "FLUX.2 [pro]", FLUX2_MAX_REFERENCES,
                      0.03, 0.015),
    "max": Flux2Model("fal-ai/flux-2-max/edit", "max", "FLUX.2 [max]", FLUX2_MAX_REFERENCES,
                      0.07, 0.03),
    "flex": Flux2Model("fal-ai/flux-2-flex/edit", "flex", "FLUX.2 [flex]", FLUX2_MAX_REFERENCES,
                       0.05, 0.05),
}
FLUX2_TIERS: tuple[str, ...] = tuple(FLUX2_MODELS)
# guidance_scale and num_inference_steps exist on [flex] only (fal's Flux2FlexEditInput).
SAMPLING_TIERS: tuple[str, ...] = ("flex",)

# --- output size ---------------------------------------------------------------------------------
# fal's image_size presets (its toolkit's IMAGE_SIZE_PRESETS), plus "auto" (the model picks) and
# the node's "custom" (width and height widgets, sent as fal's {width, height} object).
IMAGE_SIZE_PRESETS: dict[str, Size] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
IMAGE_SIZE_AUTO = "auto"
IMAGE_SIZE_CUSTOM = "custom"
IMAGE_SIZE_CHOICES: tuple[str, ...] = (IMAGE_SIZE_AUTO, *IMAGE_SIZE_PRESETS, IMAGE_SIZE_CUSTOM)
# A custom size: fal's object allows 0 < side <= 14142; BFL asks for sides of at least 64 and at
# most 4 MP in all, in multiples of 16 (the widgets step by 16; fal's rounding is unconfirmed).
CUSTOM_SIDE_MIN, CUSTOM_SIDE_MAX, CUSTOM_SIDE_STEP = 64, 14142, 16
CUSTOM_SIDE_DEFAULT = 512  # fal's default for the object's width and height
CUSTOM_MAX_PIXELS = 2048 * 2048
# What `auto` makes is unconfirmed; the estimate assumes the first reference's shape at about
# one megapixel, sides rounded to 16 (the spec's working guess, stated wherever it is used).
AUTO_TARGET_PIXELS = 1024 * 1024
AUTO_SIDE_STEP = 16

# --- other fields (fal's Flux2*EditInput) --------------------------------------------------------
SAFETY_TOLERANCES: tuple[str, ...] = ("1", "2", "3", "4", "5")  # strings; 1 strictest
SAFETY_TOLERANCE_DEFAULT = "2"
# [flex] only. fal states no range; BFL's API documents guidance 1.5-10 and steps 1-50.
GUIDANCE_MIN, GUIDANCE_MAX, GUIDANCE_DEFAULT, GUIDANCE_STEP = 1.5, 10.0, 3.5, 0.1
STEPS_MIN, STEPS_MAX, STEPS_DEFAULT = 1, 50, 28

# --- references ----------------------------------------------------------------------------------
# Every reference megapixel is billed ($0.015-0.05 each), so references are downscaled to 1 MP
# by default: the model's own default output is about that size. 1 MP here is the pack's
# 1,000,000 pixels, so a downscaled reference always stays under one billed megapixel.
DEFAULT_MAX_REFERENCE_MEGAPIXELS = 1.0

# --- price ---------------------------------------------------------------------------------------
# fal's worked examples only add up if one billed megapixel is 1024 x 1024 pixels.
BILLING_MEGAPIXEL_PIXELS = 1024 * 1024


def billed_megapixels(output: Size, references: Sequence[Size]) -> int:
    """Megapixels fal bills: output plus every reference, rounded up, at least one."""
    pixels = output[0] * output[1] + sum(width * height for width, height in references)
    return max(1, math.ceil(pixels / BILLING_MEGAPIXEL_PIXELS))


def price_usd(model: Flux2Model, megapixels: int) -> float:
    """The first megapixel at its price, every further one at the further price."""
    return round(model.usd_first_megapixel + model.usd_further_megapixel * (megapixels - 1), 4)


def estimate_cost_usd(model: Flux2Model, output: Size, references: Sequence[Size]) -> float:
    """What fal bills for one run that makes `output` from references of these (sent) sizes."""
    return price_usd(model, billed_megapixels(output, references))


def auto_output_size(first_reference: Size) -> Size:
    """The estimate for `auto`: the first reference's shape at about one megapixel."""
    width, height = first_reference
    ratio = width / max(1, height)
    return (_round_to(math.sqrt(AUTO_TARGET_PIXELS * ratio), AUTO_SIDE_STEP),
            _round_to(math.sqrt(AUTO_TARGET_PIXELS / ratio), AUTO_SIDE_STEP))


def _round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def image_size_value(choice: str, width: int, height: int) -> ImageSizeValue:
    """fal's `image_size` for the node's choice: the preset name, or {width, height} for custom."""
    if choice == IMAGE_SIZE_CUSTOM:
        return {"width": width, "height": height}
    return choice


def output_size(image_size: ImageSizeValue, first_reference: Size) -> Size:
    """The output size a run asks for (`auto`: the estimate above)."""
    if isinstance(image_size, Mapping):
        return int(image_size["width"]), int(image_size["height"])
    if image_size == IMAGE_SIZE_AUTO:
        return auto_output_size(first_reference)
    return IMAGE_SIZE_PRESETS[image_size]


def model_for_endpoint(endpoint_id: str) -> Flux2Model:
    """Look a FLUX.2 model up by its fal endpoint id."""
    for model in FLUX2_MODELS.values():
        if model.endpoint_id == endpoint_id:
            return model
    raise KeyError(endpoint_id)


def price_rule_text(model: Flux2Model) -> str:
    """The rule in words, e.g. '$0.03 first MP + $0.015 per further MP (output and references)'."""
    return (f"${model.usd_first_megapixel:g} first MP + ${model.usd_further_megapixel:g} per "
            "further MP (output and references)")


def price_facts() -> dict[str, Any]:
    """Everything a client needs to price a run itself (the price badge), as plain JSON."""
    return {
        "megapixel_pixels": BILLING_MEGAPIXEL_PIXELS,
        "models": {tier: {"first": model.usd_first_megapixel,
                          "further": model.usd_further_megapixel}
                   for tier, model in FLUX2_MODELS.items()},
        "presets": {name: list(size) for name, size in IMAGE_SIZE_PRESETS.items()},
        "auto_pixels": AUTO_TARGET_PIXELS,
        "custom": IMAGE_SIZE_CUSTOM,
        "auto": IMAGE_SIZE_AUTO,
    }
