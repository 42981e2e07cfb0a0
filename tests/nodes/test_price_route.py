"""The price table the frontend's price badge reads: exactly the estimates of kontext/models.py."""
from __future__ import annotations

import asyncio
import json

import pytest
from fal_kontext import NODE_CLASS_MAPPINGS
from fal_kontext.kontext import models as m
from fal_kontext.nodes.price_route import PRICES_ROUTE, handle_prices, price_table


PRICED = {node_id: node_class for node_id, node_class in NODE_CLASS_MAPPINGS.items()
          if hasattr(node_class, "MODELS")}


def test_every_kontext_node_model_and_image_count_has_its_estimate():
    table = price_table()
    assert table["currency"] == "USD"
    assert set(table["nodes"]) == set(PRICED) == {"FalKontextMulti", "FalKontextEdit"}
    for node_id, node_class in PRICED.items():
        assert set(table["nodes"][node_id]) == set(node_class.MODELS)
        for tier, model in node_class.MODELS.items():
            assert table["nodes"][node_id][tier] == {
                str(count): m.estimate_cost_usd(model, count)
                for count in range(m.NUM_IMAGES_MIN, m.NUM_IMAGES_MAX + 1)}


def test_max_costs_twice_pro_per_image():
    multi = price_table()["nodes"]["FalKontextMulti"]
    assert multi["pro"]["1"] == pytest.approx(0.04) and multi["max"]["3"] == pytest.approx(0.24)


def test_the_route_handler_returns_exactly_the_table():
    pytest.importorskip("aiohttp")
    response = asyncio.run(handle_prices(None))
    assert response.status == 200 and response.content_type == "application/json"
    assert json.loads(response.body) == price_table()


def test_the_route_lives_under_the_packs_name():
    assert PRICES_ROUTE == "/fal_kontext/prices"
