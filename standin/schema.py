"""The Kontext endpoints as fal publishes them: ids, input fields and ranges, output defaults, prices.

Written out here from fal's model pages, not imported from the pack: the stand-in imitates fal,
so it must not share the constants of the client it is meant to check (a wrong range in the pack
would otherwise be "confirmed" by the stand-in). Sources:
https://fal.ai/models/fal-ai/flux-pro/kontext/multi/api (and /llms.txt),
https://fal.ai/models/fal-ai/flux-pro/kontext/max/multi/llms.txt,
https://fal.ai/models/fal-ai/flux-pro/kontext/llms.txt.
"""
from __future__ import annotations

from dataclasses import dataclass

from .flux2_schema import FLUX2_ENDPOINTS, Flux2Endpoint


@dataclass(frozen=True)
class Endpoint:
    """One published endpoint: its id, how it takes references, what one output image costs."""

    endpoint_id: str
    reference_field: str  # "image_urls" (multi) or "image_url" (single)
    usd_per_image: float

    @property
    def takes_many_references(self) -> bool:
        return self.reference_field == "image_urls"


ENDPOINTS: dict[str, Endpoint] = {endpoint.endpoint_id: endpoint for endpoint in (
    Endpoint("fal-ai/flux-pro/kontext/multi", "image_urls", 0.04),
    Endpoint("fal-ai/flux-pro/kontext/max/multi", "image_urls", 0.08),
    Endpoint("fal-ai/flux-pro/kontext", "image_url", 0.04),
    Endpoint("fal-ai/flux-pro/kontext/max", "image_url", 0.08),
)}


def endpoint_for(endpoint_id: str) -> "Endpoint | Flux2Endpoint":
    """The published endpoint with this id (Kontext or FLUX.2); KeyError when fal has no such
    application."""
    if endpoint_id in ENDPOINTS:
        return ENDPOINTS[endpoint_id]
    return FLUX2_ENDPOINTS[endpoint_id]


# Input fields (the schema's ranges and enums).
GUIDANCE_MIN, GUIDANCE_MAX = 1.0, 20.0  # guidance_scale, default 3.5
NUM_IMAGES_MIN, NUM_IMAGES_MAX, NUM_IMAGES_DEFAULT = 1, 4, 1
OUTPUT_FORMATS: tuple[str, ...] = ("jpeg", "png")
OUTPUT_FORMAT_DEFAULT = "jpeg"
SAFETY_TOLERANCES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")  # strings, default "2"
ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
# The schema gives no seed range; a random seed is drawn from a 32-bit signed range.
SEED_MAX = 2_147_483_647
