"""Call the nodes the way ComfyUI does: defaults from INPUT_TYPES, keyword arguments, awaited."""
from __future__ import annotations

from typing import Any

import torch


def widget_defaults(node_class) -> dict[str, Any]:
    """What ComfyUI would send for an untouched node: each widget's default (first combo item),
    optional widgets included (the UI sends every widget's value)."""
    values = {}
    spec = node_class.INPUT_TYPES()
    for name, (kind, options) in {**spec["required"], **spec.get("optional", {})}.items():
        if isinstance(kind, list):
            values[name] = options.get("default", kind[0])
        elif kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
            values[name] = options.get("default")
    return values


async def call_node(node_class, **inputs: Any):
    arguments = {**widget_defaults(node_class), "unique_id": "7", **inputs}
    return await node_class().edit(**arguments)


def solid(color: tuple[float, float, float], height: int = 32, width: int = 32, batch: int = 1,
          channels: int = 3) -> torch.Tensor:
    """A batch of one-colour frames (float32 0..1, [B,H,W,C])."""
    base = torch.tensor(color[:channels] if channels >= 3 else color[:1], dtype=torch.float32)
    if channels == 4:
        base = torch.cat([torch.tensor(color[:3], dtype=torch.float32), torch.tensor([1.0])])
    return base.expand(batch, height, width, channels).clone()
