"""Serve the Kontext price table to the pack's frontend extension (its price badge).

The browser gets the estimates from here, computed by `estimate_cost_usd` from the one table in
`kontext/models.py`, so the JavaScript holds no second copy of any price.
"""
from __future__ import annotations

import logging
from typing import Any

from ..kontext import models as m
from .kontext_nodes import NODE_CLASS_MAPPINGS

logger = logging.getLogger(__name__)

PRICES_ROUTE = "/fal_kontext/prices"  # ComfyUI also serves it under /api/


def price_table() -> dict[str, Any]:
    """Estimated USD per run for each Kontext node, model tier and num_images value."""
    image_counts = range(m.NUM_IMAGES_MIN, m.NUM_IMAGES_MAX + 1)
    return {
        "currency": "USD",
        "nodes": {
            node_id: {tier: {str(count): m.estimate_cost_usd(model, count)
                             for count in image_counts}
                      for tier, model in node_class.MODELS.items()}
            for node_id, node_class in NODE_CLASS_MAPPINGS.items()
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
