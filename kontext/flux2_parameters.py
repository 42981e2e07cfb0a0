"""The FLUX.2 Edit node's parameters: each declared once, here (the Kontext rows it shares are
taken from `parameters.py`, not repeated).

Node inputs, CLI options, local checks, fal's JSON body (`Flux2EditRequest.arguments`), the
result-cache key and the README's node reference all derive from `TABLE`. A row with `tiers` is a
field of those models' endpoints only ([flex]'s sampling controls): it is neither checked nor
sent, nor part of the cache key, for the others.

The order is the node's widget order, which saved workflows depend on: append, never reorder.
"""
from __future__ import annotations

import dataclasses

from . import flux2_models as f
from . import parameters as p
from .parameters import BOOL, CHOICE, FLOAT, INT, Parameter, ParameterTable

_SHARED = p.BY_NAME  # rows that mean the same on both families
# One line each (the node's hover texts); the prices and presets in full are in the README.
_NOT_SENT_FOR_PRO_MAX = "[flex] only, not sent for pro and max"


def _side(name: str) -> Parameter:
    return Parameter(name, INT, f.CUSTOM_SIDE_DEFAULT,
                     f"Output {name} when image_size is custom: {f.CUSTOM_SIDE_MIN}-"
                     f"{f.CUSTOM_SIDE_MAX} px, at most "
                     f"{f.CUSTOM_MAX_PIXELS / f.BILLING_MEGAPIXEL_PIXELS:g} MP in all.",
                     low=f.CUSTOM_SIDE_MIN, high=f.CUSTOM_SIDE_MAX, step=f.CUSTOM_SIDE_STEP,
                     cli_default=None)  # the CLI tells "given" from "default" (see cli/main.py)


PARAMETERS: tuple[Parameter, ...] = (
    _SHARED["prompt"],
    Parameter(p.MODEL, CHOICE, f.FLUX2_TIERS[0], "FLUX.2's tier; each is priced per megapixel "
              "of output and references (the badge shows the estimate).", choices=f.FLUX2_TIERS,
              sent_to_fal=False),
    _SHARED["seed"],
    Parameter("image_size", CHOICE, f.IMAGE_SIZE_AUTO, "Output size, billed per megapixel: auto "
              "(the model picks), a fal preset, or custom (width, height).",
              choices=f.IMAGE_SIZE_CHOICES),
    _side("width"),
    _side("height"),
    Parameter("safety_tolerance", CHOICE, f.SAFETY_TOLERANCE_DEFAULT, "fal's moderation level: "
              f"1 is strictest, {f.SAFETY_TOLERANCES[-1]} most permissive.",
              choices=f.SAFETY_TOLERANCES),
    Parameter("enable_safety_checker", BOOL, True, "Let fal's safety checker screen the result "
              "(fal's default: on)."),
    _SHARED["output_format"],
    _SHARED["sync_mode"],
    Parameter("guidance_scale", FLOAT, f.GUIDANCE_DEFAULT, f"{_NOT_SENT_FOR_PRO_MAX}: higher "
              "follows the prompt more literally.",
              low=f.GUIDANCE_MIN, high=f.GUIDANCE_MAX, step=f.GUIDANCE_STEP,
              cli_flag="--guidance", widget={"round": 0.01}, tiers=f.SAMPLING_TIERS),
    Parameter("num_inference_steps", INT, f.STEPS_DEFAULT, f"{_NOT_SENT_FOR_PRO_MAX}: more "
              "steps are slower and can add detail.",
              low=f.STEPS_MIN, high=f.STEPS_MAX, cli_flag="--steps", tiers=f.SAMPLING_TIERS),
    _SHARED["reference_transport"],
    dataclasses.replace(
        _SHARED["max_reference_megapixels"], default=f.DEFAULT_MAX_REFERENCE_MEGAPIXELS,
        tooltip="Downscale bigger references to this (0 = never). FLUX.2 bills their "
                f"megapixels; {f.DEFAULT_MAX_REFERENCE_MEGAPIXELS:g} keeps each under one."),
    _SHARED["timeout_seconds"],
    _SHARED["nsfw_policy"],
    _SHARED["use_result_cache"],
    _SHARED["reference_encoding"],
)
TABLE = ParameterTable(PARAMETERS)
# width and height reach fal inside image_size (as {width, height}), never as fields of their own.
CUSTOM_SIZE_FIELDS: tuple[str, str] = ("width", "height")
