"""The one table of FLUX.1 Kontext facts: endpoint ids, prices, parameter ranges and limits.

Everything else in the pack (nodes, CLI, stand-in server, README checks) reads from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReferenceField = Literal["image_urls", "image_url"]


@dataclass(frozen=True)
class KontextModel:
    """One fal endpoint: which id to call, how it takes references, what an image costs."""

    endpoint_id: str
    tier: str  # "pro" or "max", the node's `model` combo value
    reference_field: ReferenceField
    usd_per_image: float

    @property
    def takes_many_references(self) -> bool:
        return self.reference_field == "image_urls"


MULTI_MODELS: dict[str, KontextModel] = {
    "pro": KontextModel("fal-ai/flux-pro/kontext/multi", "pro", "image_urls", 0.04),
    "max": KontextModel("fal-ai/flux-pro/kontext/max/multi", "max", "image_urls", 0.08),
}
SINGLE_MODELS: dict[str, KontextModel] = {
    "pro": KontextModel("fal-ai/flux-pro/kontext", "pro", "image_url", 0.04),
    "max": KontextModel("fal-ai/flux-pro/kontext/max", "max", "image_url", 0.08),
}
ALL_MODELS: tuple[KontextModel, ...] = (*MULTI_MODELS.values(), *SINGLE_MODELS.values())
MODEL_TIERS: tuple[str, ...] = tuple(MULTI_MODELS)


# Parameter ranges, as fal documents them for the Kontext endpoints.
PROMPT_MAX_CHARS = 10_000  # fal states no limit; ours stops a pasted file from being sent and billed
GUIDANCE_MIN, GUIDANCE_MAX, GUIDANCE_DEFAULT, GUIDANCE_STEP = 1.0, 20.0, 3.5, 0.1
NUM_IMAGES_MIN, NUM_IMAGES_MAX, NUM_IMAGES_DEFAULT = 1, 4, 1
SEED_MIN, SEED_MAX = 0, 2_147_483_647
ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
ASPECT_RATIO_AUTO = "auto"  # the node's choice meaning "omit the field, let the model decide"
OUTPUT_FORMATS: tuple[str, ...] = ("jpeg", "png")
OUTPUT_FORMAT_DEFAULT = "jpeg"
SAFETY_TOLERANCES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")
SAFETY_TOLERANCE_DEFAULT = "2"

# fal documents no maximum number of references for /kontext/multi; 8 keeps requests sane.
MAX_REFERENCES = 8

# Reference transport: upload to fal storage (small JSON, cacheable) or inline data URIs.
REFERENCE_TRANSPORTS: tuple[str, ...] = ("upload", "data_uri")

# What to do with images fal flags in has_nsfw_concepts.
NSFW_POLICIES: tuple[str, ...] = ("drop", "error", "keep")

DEFAULT_TIMEOUT_SECONDS = 600.0
TIMEOUT_MIN_SECONDS, TIMEOUT_MAX_SECONDS = 10.0, 3600.0


def estimate_cost_usd(model: KontextModel, num_images: int) -> float:
    """What fal bills for one run: price per output image times the image count."""
    return round(model.usd_per_image * num_images, 4)


# --- Reference encoding and size (issue 14; figures in bench/results.md "png" and "uplink") -----------
# fal's Kontext endpoints take references as URLs or base64 data URIs in jpg, jpeg, png, webp,
# gif or avif (fal's input schema for fal-ai/flux-pro/kontext); see docs/fal-protocol-notes.md.
REFERENCE_ENCODINGS: tuple[str, ...] = ("auto", "lossless")
REFERENCE_ENCODING_DEFAULT = "auto"
# Photos: baseline JPEG, 4:4:4 (no chroma subsampling, so coloured edges and small text stay
# sharp), optimised Huffman tables, and flat quantisation tables instead of the quality scale:
# every DCT coefficient is rounded to a multiple of REFERENCE_JPEG_STEP (the lowest frequencies,
# row + column <= REFERENCE_JPEG_FINE_BAND, to REFERENCE_JPEG_FINE_STEP). The quality scale's
# tables are coarse at high frequencies, so noise or fine texture loses up to 5 dB there (q94:
# 35.5 dB on a noisy photo); a flat step bounds the error for any content: at most
# ~2.9 * step^2 / 12 squared levels (the colour transform's gain), >= 40 dB PSNR even on pure
# noise. Clean photos come out smaller than q94, noisy ones larger (bench/results.md "png").
REFERENCE_JPEG_STEP = 5
REFERENCE_JPEG_FINE_STEP = 4
REFERENCE_JPEG_FINE_BAND = 2
REFERENCE_JPEG_SUBSAMPLING = "4:4:4"
REFERENCE_MIN_PSNR_DB = 40.0  # what the steps above guarantee; tests/nodes pins it on pure noise
# A frame with at most this many distinct colours in a sample of about
# REFERENCE_COLOUR_SAMPLE_PIXELS pixels is a graphic (flat fills, line art, text, screenshots):
# sent lossless. Photos show thousands (every sampled pixel differs in a noisy one); the shipped
# anti-aliased samples a few hundred. Counting takes ~1.5 ms for 1 MP.
REFERENCE_GRAPHIC_MAX_COLOURS = 2048
REFERENCE_GRAPHIC_PIXELS_PER_COLOUR = 8  # and at most one colour per 8 sampled pixels (thumbnails)
REFERENCE_COLOUR_SAMPLE_PIXELS = 16_384
# Lossless PNG: zlib level 1 + RLE for photo-like frames (as small as level 6 there, 2x faster);
# Pillow's default level 6 for graphics, where RLE at level 1 is 1.2-1.6x bigger.
PNG_FAST_COMPRESS_LEVEL = 1
PNG_GRAPHIC_COMPRESS_LEVEL = 6
# Kontext works at about 1 MP: BFL documents a fixed ~1 MP output, and its training sizes
# (ComfyUI's FluxKontextImageScale list) run from 1024x1024 to 1568x672, at most 1.054 MP.
# 1.1 keeps every one of them untouched and sends nothing the model would throw away.
DEFAULT_MAX_REFERENCE_MEGAPIXELS = 1.1
MAX_REFERENCE_MEGAPIXELS_LIMIT = 64.0
# The unit of max_reference_megapixels: a million pixels (fal's FLUX.2 bills by 1024 x 1024).
PIXELS_PER_MEGAPIXEL = 1_000_000
