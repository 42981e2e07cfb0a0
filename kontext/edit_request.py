"""One Kontext edit as the user asked for it: checked locally, then turned into fal's JSON body."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..client.errors import InvalidInputError
from . import models as m


@dataclass(frozen=True)
class EditRequest:
    """Every endpoint parameter; `aspect_ratio="auto"` and `seed=None` mean "leave it to fal"."""

    model: m.KontextModel
    prompt: str
    seed: int | None = None
    guidance_scale: float = m.GUIDANCE_DEFAULT
    num_images: int = m.NUM_IMAGES_DEFAULT
    aspect_ratio: str = m.ASPECT_RATIO_AUTO
    output_format: str = m.OUTPUT_FORMAT_DEFAULT
    safety_tolerance: str = m.SAFETY_TOLERANCE_DEFAULT
    enhance_prompt: bool = False
    sync_mode: bool = False

    def validate(self, reference_count: int) -> None:
        """Raise InvalidInputError naming the input, before anything is uploaded or paid for."""
        _check_prompt(self.prompt)
        _check_reference_count(self.model, reference_count)
        if self.seed is not None:
            _check_int("seed", self.seed, m.SEED_MIN, m.SEED_MAX)
        _check_float("guidance_scale", self.guidance_scale, m.GUIDANCE_MIN, m.GUIDANCE_MAX)
        _check_int("num_images", self.num_images, m.NUM_IMAGES_MIN, m.NUM_IMAGES_MAX)
        _check_choice("aspect_ratio", self.aspect_ratio, (m.ASPECT_RATIO_AUTO, *m.ASPECT_RATIOS))
        _check_choice("output_format", self.output_format, m.OUTPUT_FORMATS)
        _check_choice("safety_tolerance", str(self.safety_tolerance), m.SAFETY_TOLERANCES)
        for name in ("enhance_prompt", "sync_mode"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(name, "must be true or false")

    @property
    def estimated_cost_usd(self) -> float:
        return m.estimate_cost_usd(self.model, self.num_images)

    def arguments(self, image_urls: list[str]) -> dict[str, Any]:
        """fal's JSON body, with the JSON types fal expects (safety_tolerance is a string)."""
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "guidance_scale": float(self.guidance_scale),
            "num_images": int(self.num_images),
            "output_format": self.output_format,
            "safety_tolerance": str(self.safety_tolerance),
            "enhance_prompt": bool(self.enhance_prompt),
            "sync_mode": bool(self.sync_mode),
        }
        if self.model.takes_many_references:
            body["image_urls"] = list(image_urls)
        else:
            body["image_url"] = image_urls[0]
        if self.seed is not None:
            body["seed"] = int(self.seed)
        if self.aspect_ratio != m.ASPECT_RATIO_AUTO:
            body["aspect_ratio"] = self.aspect_ratio
        return body


def _check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("prompt", "is empty; describe the edit, e.g. 'put the hat from "
                                          "image 2 on the person in image 1'")
    if len(prompt) > m.PROMPT_MAX_CHARS:
        raise InvalidInputError("prompt", f"is {len(prompt):,} characters; the limit is "
                                          f"{m.PROMPT_MAX_CHARS:,}")


def _check_reference_count(model: m.KontextModel, count: int) -> None:
    if count < 1:
        raise InvalidInputError("images", "no reference image was given; connect at least one image")
    limit = m.MAX_REFERENCES if model.takes_many_references else 1
    if count > limit:
        raise InvalidInputError("images", f"{count} reference images were given; {model.endpoint_id} "
                                          f"takes at most {limit} (count every frame of every batch)")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(name, f"must be a whole number from {low} to {high}, got {value!r}")


def _check_float(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InvalidInputError(name, f"must be a number from {low:g} to {high:g}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(name, f"must be one of {', '.join(choices)}; got {value!r}")
