"""fal-style input checks: every problem in one 422, as pydantic-shaped items with loc ["body", ...].

Types are checked strictly (no "3" for 3, no true for 1): the stand-in exists to catch a client
that sends the wrong JSON types, even where fal's lax parsing would let some through.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

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


def validate_arguments(model: Endpoint, payload: dict[str, Any]) -> list[Item]:
    """All field errors for a Kontext request; empty when the request is acceptable."""
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


def _check_guidance(loc: list[Any], value: Any) -> list[Item]:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return [field_error(loc, "Input should be a valid number", "float_type", value)]
    if not math.isfinite(value):
        return [field_error(loc, "Input should be a finite number", "finite_number", value)]
    return _check_range(loc, value, GUIDANCE_MIN, GUIDANCE_MAX)


def _check_num_images(loc: list[Any], value: Any) -> list[Item]:
    return _check_int(loc, value) or _check_range(loc, value, NUM_IMAGES_MIN, NUM_IMAGES_MAX)


def _enum_check(allowed: tuple[str, ...]) -> Check:
    quoted = [f"'{choice}'" for choice in allowed]
    expected = ", ".join(quoted[:-1]) + f" or {quoted[-1]}"

    def check(loc: list[Any], value: Any) -> list[Item]:
        if isinstance(value, str) and value in allowed:
            return []
        return [field_error(loc, f"Input should be {expected}", "enum", value,
                            {"expected": expected})]

    return check
