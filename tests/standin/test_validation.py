"""Submit-time input checks: one 422 with pydantic-style items, and no job created."""
from __future__ import annotations

import pytest

from standin_helpers import SINGLE

CASES = [  # (field, value (None = leave it out), expected loc, expected type)
    ("prompt", None, ["body", "prompt"], "missing"),
    ("prompt", 5, ["body", "prompt"], "string_type"),
    ("image_urls", None, ["body", "image_urls"], "missing"),
    ("image_urls", "http://x/a.png", ["body", "image_urls"], "list_type"),
    ("image_urls", [], ["body", "image_urls"], "too_short"),
    ("guidance_scale", 0.5, ["body", "guidance_scale"], "greater_than_equal"),
    ("guidance_scale", 20.5, ["body", "guidance_scale"], "less_than_equal"),
    ("guidance_scale", "3.5", ["body", "guidance_scale"], "float_type"),
    ("guidance_scale", True, ["body", "guidance_scale"], "float_type"),
    ("num_images", 0, ["body", "num_images"], "greater_than_equal"),
    ("num_images", 5, ["body", "num_images"], "less_than_equal"),
    ("num_images", 2.0, ["body", "num_images"], "int_type"),
    ("num_images", True, ["body", "num_images"], "int_type"),
    ("seed", "42", ["body", "seed"], "int_type"),
    ("seed", False, ["body", "seed"], "int_type"),
    ("output_format", "webp", ["body", "output_format"], "enum"),
    ("safety_tolerance", 2, ["body", "safety_tolerance"], "enum"),
    ("safety_tolerance", "7", ["body", "safety_tolerance"], "enum"),
    ("aspect_ratio", "5:4", ["body", "aspect_ratio"], "enum"),
    ("enhance_prompt", "yes", ["body", "enhance_prompt"], "bool_type"),
    ("sync_mode", 1, ["body", "sync_mode"], "bool_type"),
]


@pytest.mark.parametrize("field,value,loc,type_", CASES,
                         ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_invalid_field_is_a_422_naming_loc_and_type(server, submit, drop, field, value, loc, type_):
    response = submit(**{field: drop if value is None else value})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(loc, type_)]
    assert detail[0]["msg"]
    assert server.jobs == {}


def test_missing_field_msg_is_field_required(submit, drop):
    item = submit(prompt=drop).json()["detail"][0]
    assert item["msg"] == "Field required"


def test_range_errors_carry_ctx_limits(submit):
    low, = submit(guidance_scale=0).json()["detail"]
    high, = submit(num_images=9).json()["detail"]
    assert low["ctx"] == {"ge": 1.0} and low["input"] == 0
    assert high["ctx"] == {"le": 4}


def test_non_string_reference_is_reported_at_its_index(submit, refs):
    detail = submit(image_urls=[refs[0], 3]).json()["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(["body", "image_urls", 1], "string_type")]


def test_all_errors_are_collected_in_one_422(submit, drop):
    response = submit(prompt=drop, guidance_scale=99, num_images=0, output_format="gif",
                      safety_tolerance=3, sync_mode="no")
    locs = [item["loc"][1] for item in response.json()["detail"]]
    assert response.status_code == 422
    assert locs == ["prompt", "guidance_scale", "num_images", "output_format",
                    "safety_tolerance", "sync_mode"]


def test_single_endpoint_requires_image_url(server, client):
    response = client.post(f"{server.base_url}/{SINGLE}", json={"prompt": "p", "image_urls": ["x"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_url"]
    assert response.json()["detail"][0]["type"] == "missing"


def test_valid_optional_fields_are_accepted(submit):
    response = submit(seed=None, guidance_scale=20, num_images=4, output_format="png",
                      safety_tolerance="6", aspect_ratio="9:21", enhance_prompt=True,
                      sync_mode=False, unknown_extra="ignored")
    assert response.status_code == 200, response.text


def test_body_that_is_not_json_is_422_json_invalid(server, client):
    response = client.post(f"{server.base_url}/fal-ai/flux-pro/kontext/multi", content=b"{nope",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_body_that_is_not_an_object_is_422(server, client):
    response = client.post(f"{server.base_url}/fal-ai/flux-pro/kontext/multi", json=["a"])
    assert response.json()["detail"][0]["type"] == "model_attributes_type"
