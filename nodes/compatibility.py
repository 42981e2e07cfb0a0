"""What saved workflows rely on: which inputs may be required, and retired input names.

ComfyUI fills in nothing for an API-format prompt (`POST /prompt`): a required input the prompt
lacks is refused ("Required input is missing"). So a node keeps the required inputs it was first
released with, and every widget added after that is optional. UI workflows store widget values
by position, so widgets are only ever appended (README, "Keeping saved workflows working";
tests/compat checks both against a snapshot of every release).

An input that is renamed or removed stays accepted for at least one release. ComfyUI passes a
node only the inputs it declares and validates only the required and optional ones, so a retired
name is declared *hidden*: `/prompt` lets it through unchecked, the UI shows nothing for it (no
widget moves), and the node gets its value, which `accept_retired_inputs` maps onto the current
input with one warning line.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..kontext.errors import InvalidInputError

logger = logging.getLogger(__name__)

# The widgets of the Kontext nodes in their first release, 0.1.0 (git 282f78c), in table order.
_KONTEXT_0_1_0 = ("prompt", "model", "seed", "guidance_scale", "num_images", "aspect_ratio",
                  "output_format", "safety_tolerance", "enhance_prompt", "sync_mode",
                  "reference_transport", "max_reference_megapixels", "timeout_seconds",
                  "nsfw_policy", "use_result_cache")

# Node id -> the widgets it was first released with: only these may be required. A node that
# is not listed has not been released yet and may require all of its inputs; add it here in
# the release that ships it.
RELEASED_WIDGETS: dict[str, tuple[str, ...]] = {
    "FalKontextMulti": _KONTEXT_0_1_0,
    "FalKontextEdit": _KONTEXT_0_1_0,
    # First released in 0.2.0.
    "FalFlux2Edit": ("prompt", "model", "seed", "image_size", "width", "height",
                     "safety_tolerance", "enable_safety_checker", "output_format", "sync_mode",
                     "guidance_scale", "num_inference_steps", "reference_transport",
                     "max_reference_megapixels", "timeout_seconds", "nsfw_policy",
                     "use_result_cache", "reference_encoding"),
}

# Inputs added after a node's first release -> the value that does what that release did, used
# when a saved prompt lacks the input (an API prompt from then). New nodes get the table default.
# 0.1.0 sent every reference as lossless PNG.
VALUES_WHEN_ABSENT: dict[str, dict[str, Any]] = {
    "FalKontextMulti": {"reference_encoding": "lossless"},
    "FalKontextEdit": {"reference_encoding": "lossless"},
}


def with_old_behaviour(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every later-added input a saved prompt lacks set to its old behaviour."""
    return {**VALUES_WHEN_ABSENT.get(node_id, {}), **inputs}


# The type retired names are declared with under "hidden": ComfyUI hands a hidden input's value
# through as it is and fills it only for the types it knows (UNIQUE_ID, PROMPT, ...).
RETIRED_INPUT_TYPE = "FAL_KONTEXT_RETIRED_INPUT"


def _unchanged(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class RetiredInput:
    """An input name saved prompts may still use, and where its value goes now."""

    node_id: str
    name: str  # the name saved prompts use
    retired_in: str  # the release that renamed or removed it
    accepted_until: str  # the first release that may refuse it (at least one release later)
    replaced_by: str | None  # the input that takes its value; None: removed, the value is ignored
    convert: Callable[[Any], Any] = _unchanged  # old value -> the new input's value

    def describe(self) -> str:
        if self.replaced_by is None:
            return f"'{self.name}' was removed in {self.retired_in} and is ignored"
        return f"'{self.name}' was renamed to '{self.replaced_by}' in {self.retired_in}"


# Nothing has been renamed or removed yet. An entry looks like
#   RetiredInput("FalKontextMulti", "encoding", retired_in="0.3.0", accepted_until="0.4.0",
#                replaced_by="reference_encoding"),
# where the successor is an optional input: a prompt saved with the old name lacks the new one.
RETIRED_INPUTS: tuple[RetiredInput, ...] = ()


def retired_inputs(node_id: str) -> tuple[RetiredInput, ...]:
    """The retired names `node_id` still accepts."""
    return tuple(entry for entry in RETIRED_INPUTS if entry.node_id == node_id)


def retired_hidden_inputs(node_id: str) -> dict[str, str]:
    """INPUT_TYPES "hidden" entries that let saved prompts' retired names reach the node."""
    return {entry.name: RETIRED_INPUT_TYPE for entry in retired_inputs(node_id)}


def accept_retired_inputs(node_id: str, inputs: dict[str, Any], log_prefix: str = "") -> dict[str, Any]:
    """`inputs` with retired names mapped onto their successors; one warning line if any."""
    found = [entry for entry in retired_inputs(node_id) if entry.name in inputs]
    if not found:
        return inputs
    mapped = dict(inputs)
    notes = []
    for entry in found:
        value = mapped.pop(entry.name)
        note = f"{entry.describe()} (accepted until {entry.accepted_until})"
        if entry.replaced_by is not None and entry.replaced_by in inputs:
            note += f"; '{entry.replaced_by}' is also set and wins"
        elif entry.replaced_by is not None:
            try:
                mapped[entry.replaced_by] = entry.convert(value)
            except (TypeError, ValueError) as error:
                raise InvalidInputError(entry.name, f"could not be carried over to "
                                                    f"'{entry.replaced_by}': {error}") from None
        notes.append(note)
    logger.warning("%sthis workflow uses retired input names: %s. To keep it working after that, "
                   "save it again from ComfyUI, or update those names in the API prompt.",
                   log_prefix, "; ".join(notes))
    return mapped
