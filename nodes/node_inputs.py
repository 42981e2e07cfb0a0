"""INPUT_TYPES of the nodes, derived from their parameter tables (`kontext/parameters.py`,
`kontext/flux2_parameters.py`).

The order of widgets is part of every saved workflow (widgets_values is positional): the table
keeps it; new entries go at its end, and reach the Kontext nodes as optional inputs.
"""
from __future__ import annotations

from typing import Any

from ..kontext import parameters as p
from .compatibility import RELEASED_WIDGETS, retired_hidden_inputs

_COMFY_TYPES = {p.TEXT: "STRING", p.INT: "INT", p.FLOAT: "FLOAT", p.BOOL: "BOOLEAN"}


def reference_socket(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("IMAGE", {"tooltip": tooltip})


def widget(parameter: p.Parameter) -> tuple[str | list[str], dict[str, Any]]:
    """One table entry as a ComfyUI widget declaration."""
    options: dict[str, Any] = {"default": parameter.default, "tooltip": parameter.tooltip}
    if parameter.kind == p.CHOICE:
        return list(parameter.choices), {**options, **parameter.widget}
    comfy_type = parameter.comfy_type or _COMFY_TYPES[parameter.kind]
    if parameter.kind in (p.INT, p.FLOAT):
        as_number = int if comfy_type == "INT" else float
        options.update(min=as_number(parameter.low), max=as_number(parameter.high))
        if parameter.step is not None:
            options["step"] = parameter.step
    return comfy_type, {**options, **parameter.widget}


def node_input_types(reference_sockets: dict[str, tuple[str, dict[str, Any]]],
                     optional_sockets: dict[str, tuple[str, dict[str, Any]]],
                     node_id: str, table: p.ParameterTable = p.TABLE) -> dict[str, Any]:
    """Required: the prompt, the reference sockets, the widgets of the node's first release.
    Optional: the other sockets, then every widget added since. Each in table order.

    ComfyUI fills in nothing for an API prompt, so a widget added after the first release must
    be optional or every prompt saved before it is refused (`compatibility.py`). It still comes
    last among the widgets: ComfyUI lays them out required first, then optional
    (ComfyUI_frontend follows /object_info's `input_order`; `tests/comfy_rules.py` mirrors it).
    """
    released = RELEASED_WIDGETS.get(node_id)  # None: not released yet, all may be required
    widgets = {parameter.name: widget(parameter) for parameter in table.parameters}
    prompt = table.parameters[0].name
    added = [name for name in widgets if released is not None and name not in released]
    required = {name: spec for name, spec in widgets.items() if name != prompt and name not in added}
    return {
        "required": {prompt: widgets[prompt], **reference_sockets, **required},
        "optional": {**optional_sockets, **{name: widgets[name] for name in added}},
        "hidden": {"unique_id": "UNIQUE_ID", **retired_hidden_inputs(node_id)},
    }
