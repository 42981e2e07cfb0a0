"""One FLUX.2 edit as the user asked for it: checked locally, priced, turned into fal's JSON body.

The fields, their ranges and which model has which come from the FLUX.2 parameter table
(`flux2_parameters.py`); sizes and prices from `flux2_models.py`. It satisfies the job layer's
contract (`request_contract.FalEditRequest`), so it runs through `run_edit` like a Kontext edit.

FLUX.2 bills the references' megapixels too, so a request knows the size of every reference as
it will be sent (after the pack's downscale): the price is known before anything is uploaded.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from . import flux2_models as f
from . import flux2_parameters as fp
from .errors import InvalidInputError

_TABLE = fp.TABLE
_PROMPT = _TABLE.fal_fields[0]  # the table's first entry: the instruction itself
_SIZE = "image_size"


class Flux2EditRequest:
    """The model, every FLUX.2 field of the table (its default when not given) and the sizes of
    the references as sent. A seed left as None is not sent: fal picks, and the run is not
    reproducible (never cached)."""

    def __init__(self, model: f.Flux2Model, prompt: str, reference_sizes: Sequence[f.Size],
                 **values: Any):
        unknown = sorted(set(values) - set(_TABLE.fal_fields))
        if unknown:
            raise TypeError(f"not a FLUX.2 parameter: {', '.join(unknown)}")
        self.model = model
        self.reference_sizes: tuple[f.Size, ...] = tuple((int(w), int(h))
                                                         for w, h in reference_sizes)
        self.values: dict[str, Any] = {
            name: values.get(name, _TABLE.by_name[name].default) for name in _TABLE.fal_fields}
        self.values[_PROMPT] = prompt
        self._checked: dict[str, Any] | None = None

    @classmethod
    def from_inputs(cls, model: f.Flux2Model, inputs: Mapping[str, Any],
                    reference_sizes: Sequence[f.Size]) -> "Flux2EditRequest":
        """From a node's (or the CLI's) inputs by name; names that are not fields are ignored."""
        fields = {name: inputs[name] for name in _TABLE.fal_fields if name in inputs}
        return cls(model, fields.pop(_PROMPT, ""), reference_sizes, **fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flux2EditRequest) and (
            self.model, self.values, self.reference_sizes) == (
            other.model, other.values, other.reference_sizes)

    def __repr__(self) -> str:
        return (f"Flux2EditRequest({self.model.endpoint_id!r}, {self.values!r}, "
                f"references={list(self.reference_sizes)!r})")

    def replace(self, **changes: Any) -> "Flux2EditRequest":
        """A copy with some fields (or `model`, or `reference_sizes`) changed."""
        model = changes.pop("model", self.model)
        sizes = changes.pop("reference_sizes", self.reference_sizes)
        values = {**self.values, **changes}
        return Flux2EditRequest(model, values.pop(_PROMPT), sizes, **values)

    # --- the job layer's contract ---------------------------------------------------------------
    def validate(self, reference_count: int) -> None:
        """Raise InvalidInputError naming the input, before anything is uploaded or paid for."""
        self.checked_values()
        if reference_count < 1:
            raise InvalidInputError("images", "no reference image was given; connect at least "
                                              "one image")
        limit = self.model.max_references
        if reference_count > limit:
            raise InvalidInputError("images", f"{reference_count} reference images were given; "
                                              f"{self.model.endpoint_id} takes at most {limit} "
                                              "(count every frame of every batch)")
        if reference_count != len(self.reference_sizes):
            # A caller's mistake, not the user's: the price would be computed for other images.
            raise ValueError(f"this request was priced for {len(self.reference_sizes)} "
                             f"reference(s) but is run with {reference_count}")

    def checked_values(self) -> dict[str, Any]:
        """The fields this model's endpoint has, checked and as fal takes them (once): image_size
        is the preset name or {width, height}; width and height are not fields of their own."""
        if self._checked is None:
            checked = {}
            for name, value in self.values.items():
                parameter = _TABLE.by_name[name]
                if name in fp.CUSTOM_SIZE_FIELDS or not parameter.applies_to(self.model.tier):
                    continue
                checked[name] = parameter.check(value)
            checked[_SIZE] = self._image_size(checked[_SIZE])
            self._checked = checked
        return self._checked

    def arguments(self, image_urls: list[str]) -> dict[str, Any]:
        """fal's JSON body: the checked fields, then the references in order."""
        body = {name: value for name, value in self.checked_values().items()
                if not _TABLE.by_name[name].omitted(value)}
        body["image_urls"] = list(image_urls)
        return body

    @property
    def estimated_cost_usd(self) -> float:
        return f.estimate_cost_usd(self.model, self.output_size, self.reference_sizes)

    @property
    def reproducible(self) -> bool:
        """False without a seed: fal picks one at random, so no two runs match."""
        return self.values["seed"] is not None

    @property
    def instruction(self) -> str:
        return self.values[_PROMPT]

    # --- price ----------------------------------------------------------------------------------
    @property
    def output_size(self) -> f.Size:
        """The size asked for; for `auto` the estimate (see flux2_models.auto_output_size)."""
        first = self.reference_sizes[0] if self.reference_sizes else (1, 1)
        return f.output_size(self.checked_values()[_SIZE], first)

    @property
    def billed_megapixels(self) -> int:
        return f.billed_megapixels(self.output_size, self.reference_sizes)

    def priced_info(self, info: Mapping[str, Any], output: f.Size | None) -> dict[str, Any]:
        """`info` of a finished run with its price shown: the output size fal made (`output`),
        the references as sent, the billed megapixels and the rule. For a run this request paid
        for (not served from the result cache, not another run's job), `estimated_cost_usd`
        follows the size actually made; the pre-run figure stays beside it when they differ
        (an `auto` size that was not the estimate)."""
        made = output or self.output_size
        megapixels = f.billed_megapixels(made, self.reference_sizes)
        priced = {**info, "output_size": list(made),
                  "reference_sizes": [list(size) for size in self.reference_sizes],
                  "billed_megapixels": megapixels, "price_rule": f.price_rule_text(self.model)}
        paid_here = not info.get("cached") and not info.get("shared_job")
        after = f.price_usd(self.model, megapixels)
        if paid_here and after != info.get("estimated_cost_usd"):
            priced["estimated_cost_before_run_usd"] = info.get("estimated_cost_usd")
            priced["estimated_cost_usd"] = after
        return priced

    def _image_size(self, choice: str) -> f.ImageSizeValue:
        if choice != f.IMAGE_SIZE_CUSTOM:
            return choice
        width, height = (_TABLE.check(name, self.values[name]) for name in fp.CUSTOM_SIZE_FIELDS)
        if width * height > f.CUSTOM_MAX_PIXELS:
            limit = f.CUSTOM_MAX_PIXELS / f.BILLING_MEGAPIXEL_PIXELS
            side = math.isqrt(f.CUSTOM_MAX_PIXELS)
            raise InvalidInputError(_SIZE, f"custom {width}x{height} is "
                                           f"{width * height / f.BILLING_MEGAPIXEL_PIXELS:.2f} MP; "
                                           f"FLUX.2 makes at most {limit:g} MP ({side}x{side}): "
                                           "lower width or height")
        return f.image_size_value(choice, width, height)
