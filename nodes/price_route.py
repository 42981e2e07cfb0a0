"""Serve the price table to the pack's frontend extension (its price badge).

The browser gets the prices from here, so the JavaScript holds no second copy of any price:
- `nodes`: the Kontext nodes, priced per image: the estimate for every model and num_images,
  computed by `estimate_cost_usd` from the table in `kontext/models.py`;
- `per_megapixel`: the FLUX.2 node, priced per megapixel of output and references, which depend
  on widgets and on reference sizes the browser cannot know before the run: the rule's numbers
  from `kontext/flux2_models.py` (prices, the billed megapixel, fal's size presets, the `auto`
  estimate), the node's reference sockets and its default reference size limit.
"""
from __future__ import annotations

import logging
from typing import Any

from ..kontext import flux2_models as f
from ..kontext import models as m
from .flux2_nodes import NODE_CLASS_MAPPINGS as PER_MEGAPIXEL_NODES
from .kontext_nodes import NODE_CLASS_MAPPINGS as PER_IMAGE_NODES

logger = logging.getLogger(__name__)

PRICES_ROUTE = "/fal_kontext/prices"  # ComfyUI also serves it under /api/


def price_table() -> dict[str, Any]:
    """Estimated USD per run for each Kontext node, model tier and num_images value; the
    per-megapixel rule for the FLUX.2 node."""
    image_counts = range(m.NUM_IMAGES_MIN, m.NUM_IMAGES_MAX + 1)
    return {
        "currency": "USD",
        "nodes": {
            node_id: {tier: {str(count): m.estimate_cost_usd(model, count)
                             for count in image_counts}
                      for tier, model in node_class.MODELS.items()}
            for node_id, node_class in PER_IMAGE_NODES.items()
        },
        "per_megapixel": {
            node_id: {**f.price_facts(),
                      "reference_inputs": list(node_class.REFERENCE_INPUTS),
                      # max_reference_megapixels counts millions of pixels
                      "limit_pixels_per_megapixel": m.PIXELS_PER_MEGAPIXEL,
                      "default_max_reference_megapixels":
                          node_class.TABLE.by_name["max_reference_megapixels"].default}
            for node_id, node_class in PER_MEGAPIXEL_NODES.items()
        },
    }


async def handle_prices(request: Any) -> Any:
    """GET /fal_kontext/prices: the price table as JSON."""
    from aiohttp import web

    return web.json_response(price_table())


def register_price_route() -> None:
    """Add the route to ComfyUI's server; a no-op outside ComfyUI."""
    try:
        from server import PromptServer  # ComfyUI's; absent outside ComfyUI
    except ImportError:
        return
    instance = getattr(PromptServer, "instance", None)
    routes = getattr(instance, "routes", None)
    if routes is None:
        return
    try:
        routes.get(PRICES_ROUTE)(handle_prices)
    except Exception as error:  # noqa: BLE001 - the badge must never fail the pack load
        logger.warning("fal-kontext: price badge route not added (%s)", error)
