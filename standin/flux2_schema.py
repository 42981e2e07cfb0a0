"""The FLUX.2 edit endpoints as fal publishes them: ids, input fields and ranges, output sizes and
the per-megapixel price.

Written out here, not imported from the pack, for the reason schema.py gives. Sources: fal's model
pages (https://fal.ai/models/fal-ai/flux-2-pro/edit/llms.txt and the max/flex ones), fal's
generated client types (Flux2ProEditInput, Flux2FlexEditInput) and its toolkit's image size
presets. Where fal states nothing, the stand-in follows the working guesses of
docs/fal-protocol-notes.md ("FLUX.2 edit"): at most 8 references (more: 422 too_long); a custom
size below 64 px a side or above 2048 x 2048 in all is a 422 value_error, any other size is made
exactly; `auto` makes the first reference's shape at about 1 MP, sides multiples of 16; with the
safety checker on, a flagged result fails the job with a 422 content_policy_violation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .rendering import canvas_size


@dataclass(frozen=True)
class Flux2Endpoint:
    """One FLUX.2 edit endpoint: its id, whether it has [flex]'s sampling fields, its prices."""

    endpoint_id: str
    usd_first_megapixel: float
    usd_further_megapixel: float
    sampling_fields: bool = False  # guidance_scale, num_inference_steps, enable_prompt_expansion
    reference_field: str = "image_urls"

    @property
    def takes_many_references(self) -> bool:
        return True


FLUX2_ENDPOINTS: dict[str, Flux2Endpoint] = {endpoint.endpoint_id: endpoint for endpoint in (
    Flux2Endpoint("fal-ai/flux-2-pro/edit", 0.03, 0.015),
    Flux2Endpoint("fal-ai/flux-2-max/edit", 0.07, 0.03),
    Flux2Endpoint("fal-ai/flux-2-flex/edit", 0.05, 0.05, sampling_fields=True),
)}

MAX_REFERENCES = 8
IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}
IMAGE_SIZE_ENUM: tuple[str, ...] = ("auto", *IMAGE_SIZE_PRESETS)
SIDE_GT, SIDE_LE = 0, 14142  # fal's ImageSize object: 0 < side <= 14142
SIDE_MIN, MAX_PIXELS = 64, 2048 * 2048  # BFL's rules, refused as a value_error
SAFETY_TOLERANCES: tuple[str, ...] = ("1", "2", "3", "4", "5")
GUIDANCE_MIN, GUIDANCE_MAX = 1.5, 10.0  # flex guidance_scale, default 3.5
STEPS_MIN, STEPS_MAX = 1, 50  # flex num_inference_steps, default 28
BILLING_MEGAPIXEL = 1024 * 1024


def output_size(image_size: Any, first_reference: tuple[int, int]) -> tuple[int, int]:
    """The size a (validated) request makes."""
    if isinstance(image_size, dict):
        return int(image_size["width"]), int(image_size["height"])
    if image_size in IMAGE_SIZE_PRESETS:
        return IMAGE_SIZE_PRESETS[image_size]
    return canvas_size(None, first_reference)  # "auto" or left out


def billed_megapixels(output: tuple[int, int], references: Sequence[tuple[int, int]]) -> int:
    pixels = output[0] * output[1] + sum(w * h for w, h in references)
    return max(1, math.ceil(pixels / BILLING_MEGAPIXEL))


def usd(endpoint: Flux2Endpoint, megapixels: int) -> float:
    return round(endpoint.usd_first_megapixel + endpoint.usd_further_megapixel * (megapixels - 1), 4)
