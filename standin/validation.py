"""fal-style input checks: every problem in one 422, as pydantic-shaped items with loc ["body", ...].

Types are checked strictly (no "3" for 3, no true for 1): the stand-in exists to catch a client
that sends the wrong JSON types, even where fal's lax parsing would let some through.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

from . import flux2_schema as flux2
from .responses import field_error
from .schema import (
    ASPECT_RATIOS, GUIDANCE_MAX, GUIDANCE_MIN, NUM_IMAGES_MAX, NUM_IMAGES_MIN, OUTPUT_FORMATS,
    SAFETY_TOLERANCES, Endpoint,
)

Item = dict[str, Any]


def parse_body(body: bytes) -> tuple[dict[str, Any] | None, list[Item]]:
    """The JSON object in a request body, or the 422 items saying why there is none."""
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        return None, [field_error(["body", position], "JSON decode error", "json_invalid",
                                  ctx={"error": str(exc)})]
    if not isinstance(payload, dict):
        return None, [field_error(
            ["body"], "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type", payload)]
    return payload, []


def validate_arguments(model: Endpoint | flux2.Flux2Endpoint, payload: dict[str, Any]) -> list[Item]:
    """All field errors for a request to this endpoint; empty when the request is acceptable."""
    if isinstance(model, flux2.Flux2Endpoint):
        return validate_flux2_arguments(model, payload)
    errors: list[Item] = []
    _required(payload, "prompt", _check_string, errors)
    if model.takes_many_references:
        _required(payload, "image_urls", _check_url_list, errors)
    else:
        _required(payload, "image_url", _check_string, errors)
    _optional(payload, "guidance_scale", _check_guidance, errors)
    _optional(payload, "num_images", _check_num_images, errors)
    _optional(payload, "seed", _check_int, errors, nullable=True)
    _optional(payload, "output_format", _enum_check(OUTPUT_FORMATS), errors)
    _optional(payload, "safety_tolerance", _enum_check(SAFETY_TOLERANCES), errors)
    _optional(payload, "aspect_ratio", _enum_check(ASPECT_RATIOS), errors, nullable=True)
    _optional(payload, "enhance_prompt", _check_bool, errors)
    _optional(payload, "sync_mode", _check_bool, errors)
    return errors


def validate_flux2_arguments(model: flux2.Flux2Endpoint, payload: dict[str, Any]) -> list[Item]:
    """All field errors for a FLUX.2 edit. Fields its schema lacks (num_images, aspect_ratio,
    enhance_prompt; [flex]'s sampling fields on pro and max) are ignored, as fal ignores them."""
    errors: list[Item] = []
    _required(payload, "prompt", _check_string, errors)
    _required(payload, "image_urls", _check_flux2_references, errors)
    _optional(payload, "image_size", _check_image_size, errors)
    _optional(payload, "seed", _check_int, errors, nullable=True)
    _optional(payload, "safety_tolerance", _enum_check(flux2.SAFETY_TOLERANCES), errors)
    _optional(payload, "enable_safety_checker", _check_bool, errors)
    _optional(payload, "output_format", _enum_check(OUTPUT_FORMATS), errors)
    _optional(payload, "sync_mode", _check_bool, errors)
    if model.sampling_fields:
        _optional(payload, "guidance_scale", _number_check(flux2.GUIDANCE_MIN, flux2.GUIDANCE_MAX),
                  errors)
        _optional(payload, "num_inference_steps", _int_check(flux2.STEPS_MIN, flux2.STEPS_MAX),
                  errors)
        _optional(payload, "enable_prompt_expansion", _check_bool, errors)
    return errors


Check = Callable[[list[Any], Any], list[Item]]


def _required(payload: dict[str, Any], name: str, check: Check, errors: list[Item]) -> None:
    if name not in payload:
        errors.append(field_error(["body", name], "Field required", "missing", payload))
    else:
        errors.extend(check(["body", name], payload[name]))


def _optional(payload: dict[str, Any], name: str, check: Check, errors: list[Item],
              nullable: bool = False) -> None:
    if name in payload and not (nullable and payload[name] is None):
        errors.extend(check(["body", name], payload[name]))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # bool subclasses int


def _check_string(loc: list[Any], value: Any) -> list[Item]:
    if isinstance(value, str):
        return []
    return [field_error(loc, "Input should be a valid string", "string_type", value)]


def _check_url_list(loc: list[Any], value: Any) -> list[Item]:
    if not isinstance(value, list):
        return [field_error(loc, "Input should be a valid list", "list_type", value)]
    if not value:
        return [field_error(loc, "List should have at least 1 item after validation, not 0",
                            "too_short", value,
                            {"field_type": "List", "min_length": 1, "actual_length": 0})]
    errors: list[Item] = []
    for index, item in enumerate(value):
        errors.extend(_check_string([*loc, index], item))
    return errors


def _check_int(loc: list[Any], value: Any) -> list[Item]:
    if _is_int(value):
        return []
    return [field_error(loc, "Input should be a valid integer", "int_type", value)]


def _check_bool(loc: list[Any], value: Any) -> list[Item]:
    if isinstance(value, bool):
        return []
    return [field_error(loc, "Input should be a valid boolean", "bool_type", value)]


def _check_range(loc: list[Any], value: float, low: float, high: float) -> list[Item]:
    if value < low:
        return [field_error(loc, f"Input should be greater than or equal to {low}",
                            "greater_than_equal", value, {"ge": low})]
    if value > high:
        return [field_error(loc, f"Input should be less than or equal to {high}",
                            "less_than_equal", value, {"le": high})]
    return []


def _number_check(low: float, high: float) -> Check:
    def check(loc: list[Any], value: Any) -> list[Item]:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return [field_error(loc, "Input should be a valid number", "float_type", value)]
        if not math.isfinite(value):
            return [field_error(loc, "Input should be a finite number", "finite_number", value)]
        return _check_range(loc, value, low, high)

    return check


def _int_check(low: int, high: int) -> Check:
    def check(loc: list[Any], value: Any) -> list[Item]:
        return _check_int(loc, value) or _check_range(loc, value, low, high)

    return check


_check_guidance = _number_check(GUIDANCE_MIN, GUIDANCE_MAX)
_check_num_images = _int_check(NUM_IMAGES_MIN, NUM_IMAGES_MAX)


def _check_flux2_references(loc: list[Any], value: Any) -> list[Item]:
    errors = _check_url_list(loc, value)
    if not errors and len(value) > flux2.MAX_REFERENCES:
        errors.append(field_error(
            loc, f"List should have at most {flux2.MAX_REFERENCES} items after validation, not "
                 f"{len(value)}", "too_long", value,
            {"field_type": "List", "max_length": flux2.MAX_REFERENCES, "actual_length": len(value)}))
    return errors


def _check_image_size(loc: list[Any], value: Any) -> list[Item]:
    """A preset name (or "auto"), or fal's {width, height} object within fal's and BFL's rules."""
    if isinstance(value, str):
        return _enum_check(flux2.IMAGE_SIZE_ENUM)(loc, value)
    if not isinstance(value, dict):
        return [field_error(loc, "Input should be a valid dictionary or instance of ImageSize",
                            "model_type", value)]
    errors: list[Item] = []
    for side in ("width", "height"):
        if side not in value:
            errors.append(field_error([*loc, side], "Field required", "missing", value))
            continue
        errors.extend(_check_int([*loc, side], value[side]) or _check_side([*loc, side], value[side]))
    if errors:
        return errors
    width, height = value["width"], value["height"]
    if min(width, height) < flux2.SIDE_MIN or width * height > flux2.MAX_PIXELS:
        return [field_error(loc, f"Value error, FLUX.2 makes sides of at least {flux2.SIDE_MIN} "
                                 f"pixels and at most {flux2.MAX_PIXELS:,} pixels in all",
                            "value_error", value)]
    return []


def _check_side(loc: list[Any], value: int) -> list[Item]:
    if value <= flux2.SIDE_GT:
        return [field_error(loc, f"Input should be greater than {flux2.SIDE_GT}", "greater_than",
                            value, {"gt": flux2.SIDE_GT})]
    return _check_range(loc, value, -math.inf, flux2.SIDE_LE)


def _enum_check(allowed: tuple[str, ...]) -> Check:
    quoted = [f"'{choice}'" for choice in allowed]
    expected = ", ".join(quoted[:-1]) + f" or {quoted[-1]}"

    def check(loc: list[Any], value: Any) -> list[Item]:
        if isinstance(value, str) and value in allowed:
            return []
        return [field_error(loc, f"Input should be {expected}", "enum", value,
                            {"expected": expected})]

    return check
