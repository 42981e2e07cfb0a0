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
import math

from . import flux2_models as f
from . import parameters as p
from .parameters import BOOL, CHOICE, FLOAT, INT, Parameter, ParameterTable

_SHARED = p.BY_NAME  # rows that mean the same on both families
_NOT_SENT_FOR_PRO_MAX = "pro and max have no such field, so it is not sent for them."


def _model_tooltip() -> str:
    tiers = "; ".join(f"{tier}: {model.label}, ${model.usd_first_megapixel:g} first MP + "
                      f"${model.usd_further_megapixel:g} per further MP"
                      for tier, model in f.FLUX2_MODELS.items())
    side = math.isqrt(f.BILLING_MEGAPIXEL_PIXELS)
    return (f"{tiers}. fal bills the output's and the references' pixels together, in MP of "
            f"{side}x{side} pixels, rounded up.")


def _image_size_tooltip() -> str:
    presets = ", ".join(f"{name} {w}x{h}" for name, (w, h) in f.IMAGE_SIZE_PRESETS.items())
    return (f"Output size, billed per megapixel. auto: the model picks (the price estimate assumes "
            f"the first reference's shape at about 1 MP). fal's presets: {presets}. custom: width "
            "x height below.")


def _side(name: str) -> Parameter:
    return Parameter(name, INT, f.CUSTOM_SIDE_DEFAULT,
                     f"Output {name} in pixels when image_size is custom (otherwise unused). "
                     f"{f.CUSTOM_SIDE_MIN} to {f.CUSTOM_SIDE_MAX}, width x height at most "
                     f"{f.CUSTOM_MAX_PIXELS / f.BILLING_MEGAPIXEL_PIXELS:g} MP; BFL works in "
                     f"multiples of {f.CUSTOM_SIDE_STEP}.",
                     low=f.CUSTOM_SIDE_MIN, high=f.CUSTOM_SIDE_MAX, step=f.CUSTOM_SIDE_STEP,
                     cli_default=None)  # the CLI tells "given" from "default" (see cli/main.py)


PARAMETERS: tuple[Parameter, ...] = (
    _SHARED["prompt"],
    Parameter(p.MODEL, CHOICE, f.FLUX2_TIERS[0], _model_tooltip(), choices=f.FLUX2_TIERS,
              sent_to_fal=False),
    _SHARED["seed"],
    Parameter("image_size", CHOICE, f.IMAGE_SIZE_AUTO, _image_size_tooltip(),
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
    Parameter("guidance_scale", FLOAT, f.GUIDANCE_DEFAULT, "[flex] only: how closely the result "
              "follows the prompt; higher is more literal. " + _NOT_SENT_FOR_PRO_MAX,
              low=f.GUIDANCE_MIN, high=f.GUIDANCE_MAX, step=f.GUIDANCE_STEP,
              cli_flag="--guidance", widget={"round": 0.01}, tiers=f.SAMPLING_TIERS),
    Parameter("num_inference_steps", INT, f.STEPS_DEFAULT, "[flex] only: sampling steps; more "
              "is slower and can add detail. " + _NOT_SENT_FOR_PRO_MAX,
              low=f.STEPS_MIN, high=f.STEPS_MAX, cli_flag="--steps", tiers=f.SAMPLING_TIERS),
    _SHARED["reference_transport"],
    dataclasses.replace(
        _SHARED["max_reference_megapixels"], default=f.DEFAULT_MAX_REFERENCE_MEGAPIXELS,
        tooltip="Downscale references larger than this before sending (0 = never). FLUX.2 bills "
                "every megapixel of the references like output megapixels (see model), so "
                f"{f.DEFAULT_MAX_REFERENCE_MEGAPIXELS:g} keeps each reference under one billed MP; "
                "raise it for fine detail such as small text, at that price."),
    _SHARED["timeout_seconds"],
    dataclasses.replace(
        _SHARED["nsfw_policy"],
        tooltip="What to do with result images fal flags as NSFW: drop them (error if none "
                "remain), error, or keep them. FLUX.2's answer carries no such flags today (a "
                "result its safety checker refuses comes back as fal's error); this applies if "
                "fal adds them."),
    _SHARED["use_result_cache"],
    _SHARED["reference_encoding"],
)
TABLE = ParameterTable(PARAMETERS)
# width and height reach fal inside image_size (as {width, height}), never as fields of their own.
CUSTOM_SIZE_FIELDS: tuple[str, str] = ("width", "height")
