"""INPUT_TYPES of the Kontext nodes: names, ranges, defaults and tooltips in one place.

The order of widgets is part of every saved workflow (widgets_values is positional): add new
inputs at the end, never reorder.
"""
from __future__ import annotations

from typing import Any

from ..kontext import models as m

DEFAULT_MAX_REFERENCE_MEGAPIXELS = m.DEFAULT_MAX_REFERENCE_MEGAPIXELS


def reference_socket(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("IMAGE", {"tooltip": tooltip})


def edit_parameters() -> dict[str, tuple[str | list[str], dict[str, Any]]]:
    """The widgets both nodes share, after the reference sockets."""
    return {
        "model": (list(m.MODEL_TIERS), {
            "tooltip": "pro: FLUX.1 Kontext [pro], $%.2f per image. max: Kontext [max], higher "
                       "quality and prompt adherence, $%.2f per image." % (
                           m.MULTI_MODELS["pro"].usd_per_image, m.MULTI_MODELS["max"].usd_per_image)}),
        "seed": ("INT", {
            "default": 0, "min": m.SEED_MIN, "max": m.SEED_MAX, "control_after_generate": True,
            "tooltip": "Sent to fal so a run can be reproduced. Set 'control after generate' to "
                       "fixed to re-use the last result for free; any change runs (and bills) again."}),
        "guidance_scale": ("FLOAT", {
            "default": m.GUIDANCE_DEFAULT, "min": m.GUIDANCE_MIN, "max": m.GUIDANCE_MAX,
            "step": m.GUIDANCE_STEP, "round": 0.01,
            "tooltip": "How closely the result follows the prompt (CFG). Higher is more literal."}),
        "num_images": ("INT", {
            "default": m.NUM_IMAGES_DEFAULT, "min": m.NUM_IMAGES_MIN, "max": m.NUM_IMAGES_MAX,
            "tooltip": "Variants to generate; each one is billed."}),
        "aspect_ratio": ([m.ASPECT_RATIO_AUTO, *m.ASPECT_RATIOS], {
            "tooltip": "Shape of the result. auto lets the model decide (usually the first "
                       "reference's shape)."}),
        "output_format": (list(m.OUTPUT_FORMATS), {
            "tooltip": "Format fal encodes results in: jpeg is smaller, png is lossless."}),
        "safety_tolerance": (list(m.SAFETY_TOLERANCES), {
            "default": m.SAFETY_TOLERANCE_DEFAULT,
            "tooltip": "fal's moderation level: 1 is strictest, 6 most permissive."}),
        "enhance_prompt": ("BOOLEAN", {
            "default": False, "tooltip": "Let fal rewrite the prompt for better results (the "
                                         "prompt it used is in the info output)."}),
        "sync_mode": ("BOOLEAN", {
            "default": False, "tooltip": "Return results inline as data URIs; fal then keeps "
                                         "no copy in its request history."}),
        "reference_transport": (list(m.REFERENCE_TRANSPORTS), {
            "tooltip": "upload: send references to fal storage once per process and pass URLs "
                       "(fast re-runs). data_uri: inline them in the request, nothing stored."}),
        "max_reference_megapixels": ("FLOAT", {
            "default": DEFAULT_MAX_REFERENCE_MEGAPIXELS, "min": 0.0,
            "max": m.MAX_REFERENCE_MEGAPIXELS_LIMIT, "step": 0.1, "round": 0.01,
            "tooltip": "Downscale references larger than this before sending (0 = never). "
                       "Kontext works at about 1 MP: BFL documents a fixed ~1 MP output and its "
                       "training sizes run from 1024x1024 to 1568x672 (at most 1.05 MP), so "
                       f"{m.DEFAULT_MAX_REFERENCE_MEGAPIXELS:g} loses nothing the model uses and "
                       "more only costs upload time."}),
        "timeout_seconds": ("INT", {
            "default": int(m.DEFAULT_TIMEOUT_SECONDS), "min": int(m.TIMEOUT_MIN_SECONDS),
            "max": int(m.TIMEOUT_MAX_SECONDS),
            "tooltip": "Give up after this long; the job is then cancelled at fal."}),
        "nsfw_policy": (list(m.NSFW_POLICIES), {
            "tooltip": "What to do with images fal's safety checker flags (they come back "
                       "blank): drop them (error if none remain), error, or keep them."}),
        "use_result_cache": ("BOOLEAN", {
            "default": True, "tooltip": "Re-use a stored result for exactly the same inputs and "
                                        "seed, even after a restart, instead of paying again."}),
        "reference_encoding": (list(m.REFERENCE_ENCODINGS), {
            "default": m.REFERENCE_ENCODING_DEFAULT,
            "tooltip": "auto: photos go as high-quality JPEG (quality %d, no chroma subsampling; "
                       "a fifth to a third of a PNG's bytes, so a first run uploads ~3x faster), "
                       "graphics, text and images with alpha as lossless PNG. lossless: every "
                       "reference as PNG, bit-exact, for when the exact pixels matter more than "
                       "upload time." % m.REFERENCE_JPEG_QUALITY}),
    }


def node_input_types(reference_sockets: dict[str, tuple[str, dict[str, Any]]],
                     optional_sockets: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    prompt = ("STRING", {"multiline": True, "default": "",
                         "tooltip": "The edit instruction. Refer to references by order, e.g. "
                                    "'put the duckling from image 2 on the t-shirt in image 1'."})
    return {
        "required": {"prompt": prompt, **reference_sockets, **edit_parameters()},
        "optional": optional_sockets,
        "hidden": {"unique_id": "UNIQUE_ID"},
    }
