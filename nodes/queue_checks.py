"""The checks ComfyUI can make when a prompt is queued (a node's VALIDATE_INPUTS), before
anything runs or is paid for. They are the parameter table's own checks (`kontext/parameters.py`),
so a value is refused with the same words at queue time and at run time."""
from __future__ import annotations

from typing import Any, Mapping

from ..kontext import parameters as p
from ..kontext.errors import InvalidInputError


def check_when_queued(values: Mapping[str, Any]) -> bool | str:
    """True, or the one line that names the first refused input. A value of None is an input
    fed by a link, which ComfyUI does not pass at queue time: it is checked when the node runs."""
    for name, value in values.items():
        if value is None:
            continue
        try:
            p.check(name, value)
        except InvalidInputError as error:
            return str(error)
    return True
