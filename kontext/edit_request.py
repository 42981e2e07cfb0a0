"""One Kontext edit as the user asked for it: checked locally, then turned into fal's JSON body.

Which fields exist, their ranges and how they go on the wire all come from the parameter table
(`parameters.py`); this class only holds the values and applies the table.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import models as m
from . import parameters as p
from .errors import InvalidInputError

_PROMPT = p.FAL_FIELDS[0]  # the table's first entry: the instruction itself


class EditRequest:
    """The model plus every fal field of the table (its default when not given). A field left
    as None (where the table allows it, e.g. the seed) is not sent: fal picks."""

    def __init__(self, model: m.KontextModel, prompt: str, **values: Any):
        unknown = sorted(set(values) - set(p.FAL_FIELDS))
        if unknown:
            raise TypeError(f"not a Kontext parameter: {', '.join(unknown)}")
        self.model = model
        self.values: dict[str, Any] = {
            name: values.get(name, p.BY_NAME[name].default) for name in p.FAL_FIELDS}
        self.values[_PROMPT] = prompt
        self._checked: dict[str, Any] | None = None

    @classmethod
    def from_inputs(cls, model: m.KontextModel, inputs: Mapping[str, Any]) -> "EditRequest":
        """From a node's (or the CLI's) inputs by name; inputs that are not fal fields are ignored."""
        fields = {name: inputs[name] for name in p.FAL_FIELDS if name in inputs}
        return cls(model, fields.pop(_PROMPT, ""), **fields)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EditRequest) and (self.model, self.values) == (other.model, other.values)

    def __repr__(self) -> str:
        return f"EditRequest({self.model.endpoint_id!r}, {self.values!r})"

    def replace(self, **changes: Any) -> "EditRequest":
        """A copy with some fields (or `model`) changed."""
        model = changes.pop(p.MODEL, self.model)
        values = {**self.values, **changes}
        return EditRequest(model, values.pop(_PROMPT), **values)

    def validate(self, reference_count: int, reference_input: str = "images") -> None:
        """Raise InvalidInputError naming the input, before anything is uploaded or paid for;
        `reference_input` is what the caller calls its (first) reference input."""
        self.checked_values()
        _check_reference_count(self.model, reference_count, reference_input)

    def checked_values(self) -> dict[str, Any]:
        """Every field checked and converted to the type fal expects (once per request)."""
        if self._checked is None:
            self._checked = {name: p.check(name, value) for name, value in self.values.items()}
        return self._checked

    @property
    def instruction(self) -> str:
        """The edit instruction (the prompt as the user wrote it)."""
        return self.values[_PROMPT]

    @property
    def reproducible(self) -> bool:
        """False when fal is left to pick something at random (no seed), so no two runs match."""
        return all(value is not None for value in self.values.values())

    @property
    def estimated_cost_usd(self) -> float:
        return m.estimate_cost_usd(self.model, self.values["num_images"])

    def arguments(self, image_urls: list[str]) -> dict[str, Any]:
        """fal's JSON body: the checked fields the table sends, then the references."""
        body = {name: value for name, value in self.checked_values().items()
                if not p.BY_NAME[name].omitted(value)}
        references = list(image_urls) if self.model.takes_many_references else image_urls[0]
        body[self.model.reference_field] = references
        return body


def _check_reference_count(model: m.KontextModel, count: int, input_name: str) -> None:
    if count < 1:
        raise InvalidInputError(input_name, "is empty: connect at least one reference image")
    limit = m.MAX_REFERENCES if model.takes_many_references else 1
    if count > limit:
        raise InvalidInputError(input_name, f"holds {count} reference images in all; "
                                            f"{model.endpoint_id} takes at most {limit} (each frame "
                                            "of a batch counts)")
