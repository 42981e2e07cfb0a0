"""The price table the frontend's price badge reads: exactly the estimates of kontext/models.py
(Kontext, per image) and the rule of kontext/flux2_models.py (FLUX.2, per megapixel)."""
from __future__ import annotations

import asyncio
import json

import pytest
from fal_kontext import NODE_CLASS_MAPPINGS
from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext import models as m
from fal_kontext.nodes.price_route import PRICES_ROUTE, handle_prices, price_table

PER_IMAGE = {node_id: node for node_id, node in NODE_CLASS_MAPPINGS.items()
             if node_id.startswith("FalKontext")}
FREE = {"FalResultByRequestId"}  # fetches what was paid for already: no price, no badge


def test_every_node_that_submits_is_priced_one_way_or_the_other():
    table = price_table()
    assert set(table["nodes"]) | set(table["per_megapixel"]) == set(NODE_CLASS_MAPPINGS) - FREE
    assert set(table["nodes"]) == set(PER_IMAGE) and set(table["per_megapixel"]) == {"FalFlux2Edit"}


def test_every_kontext_node_model_and_image_count_has_its_estimate():
    table = price_table()
    assert table["currency"] == "USD"
    for node_id, node_class in PER_IMAGE.items():
        assert set(table["nodes"][node_id]) == set(node_class.MODELS)
        for tier, model in node_class.MODELS.items():
            assert table["nodes"][node_id][tier] == {
                str(count): m.estimate_cost_usd(model, count)
                for count in range(m.NUM_IMAGES_MIN, m.NUM_IMAGES_MAX + 1)}


def test_max_costs_twice_pro_per_image():
    multi = price_table()["nodes"]["FalKontextMulti"]
    assert multi["pro"]["1"] == pytest.approx(0.04) and multi["max"]["3"] == pytest.approx(0.24)


def test_the_flux2_rule_is_the_models_tables():
    rule = price_table()["per_megapixel"]["FalFlux2Edit"]
    assert rule["megapixel_pixels"] == 1024 * 1024
    assert rule["models"] == {"pro": {"first": 0.03, "further": 0.015},
                              "max": {"first": 0.07, "further": 0.03},
                              "flex": {"first": 0.05, "further": 0.05}}
    assert rule["presets"] == {name: list(size) for name, size in f.IMAGE_SIZE_PRESETS.items()}
    assert (rule["auto"], rule["custom"], rule["auto_pixels"]) == ("auto", "custom", 1024 * 1024)
    assert rule["reference_inputs"] == ["images", "image_2", "image_3", "image_4"]
    assert rule["default_max_reference_megapixels"] == f.DEFAULT_MAX_REFERENCE_MEGAPIXELS
    assert rule["limit_pixels_per_megapixel"] == 1_000_000
    assert json.loads(json.dumps(rule)) == rule, "plain JSON"


def test_the_route_handler_returns_exactly_the_table():
    pytest.importorskip("aiohttp")
    response = asyncio.run(handle_prices(None))
    assert response.status == 200 and response.content_type == "application/json"
    assert json.loads(response.body) == price_table()


def test_the_route_lives_under_the_packs_name():
    assert PRICES_ROUTE == "/fal_kontext/prices"
