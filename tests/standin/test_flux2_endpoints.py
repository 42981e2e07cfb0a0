"""The stand-in's FLUX.2 edit endpoints: fal's input checks (and the spec's working guesses),
output sizes, the output's shape, per-megapixel billing, and queue URLs under each model's alias."""
from __future__ import annotations

import math
from typing import Any, Iterator

import httpx
import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import BLUE, RED, image_from_url, png_bytes, wait_completed

PRO, MAX, FLEX = "fal-ai/flux-2-pro/edit", "fal-ai/flux-2-max/edit", "fal-ai/flux-2-flex/edit"


@pytest.fixture(scope="module")
def flux2_server() -> Iterator[StandInServer]:
    with StandInServer(processing_delay=0.02) as running:
        yield running


@pytest.fixture(scope="module")
def square_refs(flux2_server) -> list[str]:
    """Two 1024x1024 references (1 billed MP each): red, then blue."""
    return [flux2_server.put_file(png_bytes(colour, (1024, 1024)), "image/png", f"{i}.png")
            for i, colour in enumerate((RED, BLUE))]


@pytest.fixture(scope="module")
def small_refs(flux2_server) -> list[str]:
    return [flux2_server.put_file(png_bytes(RED, (64, 48)), "image/png", "small.png")]


def post(server: StandInServer, client: httpx.Client, endpoint: str, **body: Any) -> httpx.Response:
    return client.post(f"{server.base_url}/{endpoint}", json={"prompt": "p", **body})


def finished(server, client, endpoint, **body) -> tuple[dict[str, Any], dict[str, Any]]:
    """(submit answer, result) of a job that must be accepted."""
    submitted = post(server, client, endpoint, **body)
    assert submitted.status_code == 200, submitted.text
    answer = submitted.json()
    wait_completed(client, answer["status_url"])
    return answer, client.get(answer["response_url"]).json()


INVALID = [  # (endpoint, fields, loc, type)
    (PRO, {"image_urls": None}, ["body", "image_urls"], "missing"),
    (PRO, {"prompt": None}, ["body", "prompt"], "missing"),
    (PRO, {"image_size": "portrait_2_1"}, ["body", "image_size"], "enum"),
    (PRO, {"image_size": 1024}, ["body", "image_size"], "model_type"),
    (PRO, {"image_size": {"width": 1024}}, ["body", "image_size", "height"], "missing"),
    (PRO, {"image_size": {"width": "1024", "height": 1024}}, ["body", "image_size", "width"], "int_type"),
    (PRO, {"image_size": {"width": 0, "height": 1024}}, ["body", "image_size", "width"], "greater_than"),
    (PRO, {"image_size": {"width": 14143, "height": 64}}, ["body", "image_size", "width"], "less_than_equal"),
    (MAX, {"image_size": {"width": 63, "height": 1024}}, ["body", "image_size"], "value_error"),
    (MAX, {"image_size": {"width": 2048, "height": 2049}}, ["body", "image_size"], "value_error"),
    (PRO, {"safety_tolerance": "6"}, ["body", "safety_tolerance"], "enum"),
    (PRO, {"safety_tolerance": 2}, ["body", "safety_tolerance"], "enum"),
    (PRO, {"enable_safety_checker": "no"}, ["body", "enable_safety_checker"], "bool_type"),
    (PRO, {"output_format": "webp"}, ["body", "output_format"], "enum"),
    (PRO, {"seed": "1"}, ["body", "seed"], "int_type"),
    (PRO, {"sync_mode": 0}, ["body", "sync_mode"], "bool_type"),
    (FLEX, {"guidance_scale": 1.4}, ["body", "guidance_scale"], "greater_than_equal"),
    (FLEX, {"guidance_scale": 10.5}, ["body", "guidance_scale"], "less_than_equal"),
    (FLEX, {"num_inference_steps": 0}, ["body", "num_inference_steps"], "greater_than_equal"),
    (FLEX, {"num_inference_steps": 51}, ["body", "num_inference_steps"], "less_than_equal"),
    (FLEX, {"num_inference_steps": 28.0}, ["body", "num_inference_steps"], "int_type"),
    (FLEX, {"enable_prompt_expansion": "yes"}, ["body", "enable_prompt_expansion"], "bool_type"),
]


@pytest.mark.parametrize("endpoint, fields, loc, type_", INVALID,
                         ids=[f"{c[0].split('/')[1]}-{'/'.join(map(str, c[2][1:]))}-{c[3]}"
                              for c in INVALID])
def test_an_invalid_field_is_one_422_item_and_no_job(flux2_server, client, small_refs, endpoint,
                                                    fields, loc, type_):
    body = {"image_urls": small_refs, **fields}
    body = {name: value for name, value in body.items() if value is not None}
    jobs_before = len(flux2_server.jobs)
    if "prompt" in fields:
        response = client.post(f"{flux2_server.base_url}/{endpoint}", json=body)
    else:
        response = post(flux2_server, client, endpoint, **body)
    assert response.status_code == 422, response.text
    assert [(item["loc"], item["type"]) for item in response.json()["detail"]] == [(loc, type_)]
    assert len(flux2_server.jobs) == jobs_before


def test_more_than_eight_references_is_too_long(flux2_server, client, small_refs):
    before = len(flux2_server.jobs)
    response = post(flux2_server, client, PRO, image_urls=small_refs * 9)
    item, = response.json()["detail"]
    assert response.status_code == 422 and item["type"] == "too_long"
    assert item["loc"] == ["body", "image_urls"] and item["ctx"]["max_length"] == 8
    assert len(flux2_server.jobs) == before
    assert post(flux2_server, client, PRO, image_urls=small_refs * 8).status_code == 200


@pytest.mark.parametrize("endpoint", [PRO, MAX])
def test_pro_and_max_ignore_fields_their_schema_lacks(flux2_server, client, small_refs, endpoint):
    response = post(flux2_server, client, endpoint, image_urls=small_refs, guidance_scale=99,
                    num_inference_steps=0, num_images=3, aspect_ratio="1:7", enhance_prompt="?")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("image_size, size", [
    ({"width": 1000, "height": 600}, (1000, 600)),  # exactly as asked, no rounding to 16
    ({"width": 64, "height": 64}, (64, 64)),
    ("square_hd", (1024, 1024)), ("square", (512, 512)), ("portrait_4_3", (768, 1024)),
    ("portrait_16_9", (576, 1024)), ("landscape_4_3", (1024, 768)),
    ("landscape_16_9", (1024, 576)),
], ids=str)
def test_the_output_has_the_asked_size(flux2_server, client, small_refs, image_size, size):
    _, output = finished(flux2_server, client, FLEX, image_urls=small_refs, image_size=image_size,
                         seed=1)
    image, = output["images"]
    assert (image["width"], image["height"]) == size
    assert image_from_url(image["url"]).size == size


@pytest.mark.parametrize("image_size", ["auto", None])
def test_auto_makes_the_first_references_shape_at_about_one_megapixel(flux2_server, client,
                                                                      small_refs, image_size):
    fields = {} if image_size is None else {"image_size": image_size}
    _, output = finished(flux2_server, client, PRO, image_urls=small_refs, **fields)
    width, height = output["images"][0]["width"], output["images"][0]["height"]
    assert (width, height) == (1184, 880), "64x48 is 4:3"
    assert width % 16 == 0 and height % 16 == 0


def test_the_output_holds_only_images_and_seed(flux2_server, client, square_refs):
    answer, output = finished(flux2_server, client, MAX, image_urls=square_refs, seed=5,
                              image_size="square", output_format="png")
    assert set(output) == {"images", "seed"} and output["seed"] == 5
    image, = output["images"]
    assert image["content_type"] == "image/png"
    picture = image_from_url(image["url"])
    assert picture.getpixel((64, 256))[0] > 150 and picture.getpixel((448, 256))[2] > 150, \
        "the references arrive in order (red band, then blue)"


def test_sync_mode_inlines_the_result(flux2_server, client, small_refs):
    _, output = finished(flux2_server, client, PRO, image_urls=small_refs, sync_mode=True)
    assert output["images"][0]["url"].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize("endpoint, usd", [(PRO, 0.075), (MAX, 0.16), (FLEX, 0.20)])
def test_billing_is_per_megapixel_of_output_and_references(flux2_server, client, square_refs,
                                                           endpoint, usd):
    answer, _ = finished(flux2_server, client, endpoint, image_urls=square_refs,
                         image_size={"width": 1920, "height": 1080})
    bill, = [b for b in flux2_server.billed_jobs() if b.request_id == answer["request_id"]]
    assert (bill.endpoint_id, bill.megapixels, bill.images) == (endpoint, 4, 1)
    assert bill.usd == pytest.approx(usd)


@pytest.mark.parametrize("image_size, usd", [
    ("square", 0.03), ({"width": 1920, "height": 1080}, 0.045),
    ("square_hd", 0.045),  # exactly 1 MP of output: any reference pixel makes it 2
], ids=str)
def test_small_references_bill_as_fals_examples_say(flux2_server, client, small_refs, image_size,
                                                    usd):
    # A 64x48 reference adds 3,072 pixels to the output's.
    answer, output = finished(flux2_server, client, PRO, image_urls=small_refs,
                              image_size=image_size)
    bill, = [b for b in flux2_server.billed_jobs() if b.request_id == answer["request_id"]]
    image = output["images"][0]
    assert bill.megapixels == max(1, math.ceil((image["width"] * image["height"] + 64 * 48)
                                               / 1024 ** 2))
    assert bill.usd == pytest.approx(usd)


def test_blocking_runs_bill_per_megapixel_too(flux2_server, client, square_refs):
    response = client.post(f"{flux2_server.run_url}/{FLEX}",
                           json={"prompt": "p", "image_urls": square_refs, "image_size": "square_hd"})
    assert response.status_code == 200
    bill, = [b for b in flux2_server.billed_jobs()
             if b.request_id == response.headers["x-fal-request-id"]]
    assert (bill.route, bill.megapixels, bill.usd) == ("run", 3, pytest.approx(0.15))


@pytest.mark.parametrize("endpoint, alias", [(PRO, "fal-ai/flux-2-pro"), (MAX, "fal-ai/flux-2-max"),
                                             (FLEX, "fal-ai/flux-2-flex")])
def test_queue_urls_live_under_each_models_own_alias(flux2_server, client, small_refs, endpoint,
                                                     alias):
    answer = post(flux2_server, client, endpoint, image_urls=small_refs).json()
    prefix = f"{flux2_server.base_url}/{alias}/requests/{answer['request_id']}"
    assert answer["response_url"] == prefix and answer["status_url"] == prefix + "/status"
    assert answer["cancel_url"] == prefix + "/cancel"
    other = "fal-ai/flux-2-max" if alias != "fal-ai/flux-2-max" else "fal-ai/flux-2-pro"
    wrong = f"{flux2_server.base_url}/{other}/requests/{answer['request_id']}/status"
    assert client.get(wrong).status_code == 404, "a request id is unknown under another app"


def test_a_flagged_result_fails_the_job_while_the_safety_checker_is_on(flux2_server, client,
                                                                      small_refs):
    answer = post(flux2_server, client, PRO, image_urls=small_refs, prompt="a cat [nsfw]").json()
    status = wait_completed(client, answer["status_url"])
    result = client.get(answer["response_url"])
    assert status["error_type"] == "content_policy_violation"
    assert result.status_code == 422 and result.json()["detail"][0]["type"] == "content_policy_violation"
    assert answer["request_id"] not in flux2_server.billed_request_ids()
    _, output = finished(flux2_server, client, PRO, image_urls=small_refs, prompt="a cat [nsfw]",
                         enable_safety_checker=False)
    assert image_from_url(output["images"][0]["url"]).getpixel((10, 10))[0] > 150, \
        "not screened: the image comes back as made"
