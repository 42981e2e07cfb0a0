"""INPUT_TYPES of the nodes, derived from their parameter tables (`kontext/parameters.py`,
`kontext/flux2_parameters.py`).

The order of widgets is part of every saved workflow (widgets_values is positional): the table
keeps it; new entries go at its end.
"""
from __future__ import annotations

from typing import Any

from ..kontext import parameters as p

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
                     table: p.ParameterTable = p.TABLE) -> dict[str, Any]:
    """The prompt, then the reference sockets, then every other widget in table order."""
    first, *rest = table.parameters
    return {
        "required": {first.name: widget(first), **reference_sockets,
                     **{parameter.name: widget(parameter) for parameter in rest}},
        "optional": optional_sockets,
        "hidden": {"unique_id": "UNIQUE_ID"},
    }
