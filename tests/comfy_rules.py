"""What ComfyUI does with a node's INPUT_TYPES, rewritten small for tests.

- the widget layout a UI workflow's `widgets_values` follows (ComfyUI_frontend: inputs in
  `input_order`, required before optional; INT inputs with `control_after_generate`, or named
  seed/noise_seed, get a second widget right after them);
- the checks `POST /prompt` makes on an API-format prompt (execution.py `validate_inputs`:
  required inputs present, links to existing outputs of the right type, values converted with
  int()/float()/str()/bool(), then min/max and combo membership), reporting ComfyUI's error
  types;
- the keyword arguments the node then receives (execution.py `get_input_data`: only declared
  inputs, converted values, hidden ones as given, UNIQUE_ID filled in).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageOps

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
CONTROL_SUFFIX = ":control_after_generate"
LEGACY_SEED_NAMES = ("seed", "noise_seed")  # the frontend adds the control to these anyway
_CONVERT: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str,
                                             "BOOLEAN": bool}

# ComfyUI core nodes the pack's workflows use: their declared inputs and their outputs.
CORE_NODES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "LoadImage": ({"required": {"image": ("STRING", {})}}, ("IMAGE", "MASK")),
    "SaveImage": ({"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {})}}, ()),
    "PreviewImage": ({"required": {"images": ("IMAGE", {})}}, ()),
}


@dataclass(frozen=True)
class InputSpec:
    name: str
    section: str  # "required" or "optional"
    type: str  # a widget type from WIDGET_TYPES, or a socket type such as "IMAGE"
    options: dict[str, Any] = field(default_factory=dict)
    choices: tuple[Any, ...] = ()

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput")

    @property
    def has_control(self) -> bool:
        control = self.options.get("control_after_generate")
        if control is None and self.type == "INT":
            return self.name in LEGACY_SEED_NAMES
        return bool(control)


def input_specs(input_types: dict[str, Any]) -> list[InputSpec]:
    """Required inputs in order, then optional ones: the order the UI builds the node in."""
    specs = []
    for section in ("required", "optional"):
        for name, declaration in input_types.get(section, {}).items():
            kind, options = declaration[0], (declaration[1] if len(declaration) > 1 else {})
            if isinstance(kind, (list, tuple)):
                specs.append(InputSpec(name, section, "COMBO", dict(options), tuple(kind)))
            elif kind == "COMBO":  # the newer spelling: ("COMBO", {"options": [...]})
                specs.append(InputSpec(name, section, "COMBO", dict(options),
                                       tuple(options.get("options", ()))))
            else:
                specs.append(InputSpec(name, section, kind, dict(options)))
    return specs


def widget_slots(input_types: dict[str, Any]) -> list[str]:
    """Names of the `widgets_values` positions, with `seed:control_after_generate` after seed."""
    slots = []
    for spec in input_specs(input_types):
        if spec.is_widget:
            slots.append(spec.name)
            if spec.has_control:
                slots.append(spec.name + CONTROL_SUFFIX)
    return slots


def socket_names(input_types: dict[str, Any]) -> list[str]:
    """The node's input sockets in slot order, as a UI workflow's `inputs` lists them."""
    return [spec.name for spec in input_specs(input_types) if not spec.is_widget]


def is_link(value: Any) -> bool:
    return isinstance(value, list)


@dataclass(frozen=True)
class PromptError:
    node_id: str
    type: str  # ComfyUI's error type, e.g. "required_input_missing", "value_not_in_list"
    input_name: str
    details: str = ""


def _declared(class_type: str, node_classes: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    if class_type in node_classes:
        node_class = node_classes[class_type]
        return node_class.INPUT_TYPES(), tuple(node_class.RETURN_TYPES)
    return CORE_NODES[class_type]


def validate_prompt(prompt: dict[str, Any], node_classes: dict[str, Any]) -> list[PromptError]:
    """Every error `POST /prompt` would report for `prompt` (empty: ComfyUI queues it)."""
    errors: list[PromptError] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        if class_type not in node_classes and class_type not in CORE_NODES:
            errors.append(PromptError(node_id, "invalid_prompt", "", f"unknown node {class_type!r}"))
            continue
        input_types, _ = _declared(class_type, node_classes)
        for spec in input_specs(input_types):
            if spec.name not in node["inputs"]:
                if spec.section == "required":
                    errors.append(PromptError(node_id, "required_input_missing", spec.name))
                continue
            value = node["inputs"][spec.name]
            error = (_check_link(prompt, node_classes, spec, value) if is_link(value)
                     else _check_value(spec, value))
            if error:
                errors.append(PromptError(node_id, error[0], spec.name, error[1]))
    return errors


def _check_link(prompt: dict[str, Any], node_classes: dict[str, Any], spec: InputSpec,
                value: list) -> tuple[str, str] | None:
    if len(value) != 2 or value[0] not in prompt:
        return "bad_linked_input", repr(value)
    _, outputs = _declared(prompt[value[0]]["class_type"], node_classes)
    if not isinstance(value[1], int) or not 0 <= value[1] < len(outputs):
        return "bad_linked_input", f"{value!r}: no such output"
    received = outputs[value[1]]
    if "*" not in (received, spec.type) and received != spec.type:
        return "return_type_mismatch", f"received {received}, expected {spec.type}"
    return None


def _check_value(spec: InputSpec, value: Any) -> tuple[str, str] | None:
    try:
        value = _convert(spec, value)
    except (TypeError, ValueError) as error:
        return "invalid_input_type", f"{value!r}: {error}"
    if "min" in spec.options and value < spec.options["min"]:
        return "value_smaller_than_min", f"{value!r} < {spec.options['min']!r}"
    if "max" in spec.options and value > spec.options["max"]:
        return "value_bigger_than_max", f"{value!r} > {spec.options['max']!r}"
    if spec.type == "COMBO" and value not in spec.choices:
        return "value_not_in_list", f"{value!r} not in {list(spec.choices)}"
    return None


def _convert(spec: InputSpec, value: Any) -> Any:
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    return _CONVERT[spec.type](value) if spec.type in _CONVERT else value


def node_arguments(node_class, node_id: str, inputs: dict[str, Any],
                   resolve_link: Callable[[list], Any]) -> dict[str, Any]:
    """The keyword arguments ComfyUI calls the node's FUNCTION with, for a validated prompt."""
    input_types = node_class.INPUT_TYPES()
    specs = {spec.name: spec for spec in input_specs(input_types)}
    hidden = input_types.get("hidden", {})
    arguments: dict[str, Any] = {}
    for name, value in inputs.items():
        if name in specs:
            arguments[name] = (resolve_link(value) if is_link(value)
                               else _convert(specs[name], value))
        elif name in hidden:
            arguments[name] = value  # handed through as it is, unchecked
        # anything else in the prompt is dropped without a word
    for name, kind in hidden.items():
        if kind == "UNIQUE_ID":
            arguments[name] = node_id
    return arguments


def ui_to_prompt(workflow: dict[str, Any], node_classes: dict[str, Any],
                 core_widgets: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The API prompt the frontend queues for a UI workflow it loaded: saved widget values by
    position, defaults for widgets the file has no value for, links by slot; Notes left out."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in node_classes:
            input_types = node_classes[kind].INPUT_TYPES()
            slots = widget_slots(input_types)
            specs = {spec.name: spec for spec in input_specs(input_types)}
            values = dict(zip(slots, node.get("widgets_values", [])))
            for name in slots[len(values):]:
                if not name.endswith(CONTROL_SUFFIX):
                    spec = specs[name]
                    values[name] = spec.options.get("default",
                                                    spec.choices[0] if spec.choices else None)
        elif kind in CORE_NODES:
            values = dict(zip(core_widgets[kind], node.get("widgets_values", [])))
        else:
            continue  # Note, MarkdownNote: UI only
        inputs = {name: value for name, value in values.items()
                  if not name.endswith(CONTROL_SUFFIX) and name != "upload"}
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                _, source, slot, *_ = links[socket["link"]]
                inputs[socket["name"]] = [str(source), slot]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return prompt


def load_image_like_comfyui(path: Path) -> torch.Tensor:
    """What ComfyUI's LoadImage outputs for a single-frame file: float32 [1,H,W,3] in 0..1."""
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
        return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)[None]
