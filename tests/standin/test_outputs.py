"""Outputs: a strip of the references in order, ~1 MP, variants, formats and the test triggers."""
from __future__ import annotations

import pytest

from fal_kontext.kontext.models import ASPECT_RATIOS
from fal_kontext.standin.rendering import canvas_size, nsfw_indices
from standin_helpers import (BLUE, GREEN, RED, anon, close_to, data_uri, image_from_url, png_bytes,
                             wait_completed)


def _output(client, submit, **fields) -> dict:
    body = submit(**fields).json()
    wait_completed(client, body["status_url"])
    return client.get(body["response_url"]).json()


def test_strip_shows_references_in_order_as_bands(server, client, submit):
    refs = [server.put_file(png_bytes(colour), "image/png") for colour in (RED, GREEN, BLUE)]
    output = _output(client, submit, image_urls=refs, aspect_ratio="16:9")
    image = image_from_url(output["images"][0]["url"])
    band = image.width // 3
    centres = [image.getpixel((band * index + band // 2, image.height // 2)) for index in range(3)]
    assert [close_to(pixel, colour) for pixel, colour in zip(centres, (RED, GREEN, BLUE))] == [True] * 3


def test_image_entries_report_the_real_size(client, submit):
    output = _output(client, submit, aspect_ratio="3:4")
    entry = output["images"][0]
    image = image_from_url(entry["url"])
    assert (entry["width"], entry["height"]) == image.size == (880, 1184)


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_canvas_is_about_one_megapixel_in_multiples_of_16(ratio):
    width, height = canvas_size(ratio, (1, 1))
    w_part, h_part = (int(part) for part in ratio.split(":"))
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height - 1_048_576) / 1_048_576 < 0.03
    assert abs(width / height - w_part / h_part) < 0.03


def test_without_aspect_ratio_the_first_reference_shape_is_used(server, client, submit):
    wide = server.put_file(png_bytes(RED, (200, 100)), "image/png")
    tall = server.put_file(png_bytes(BLUE, (100, 300)), "image/png")
    entry = _output(client, submit, image_urls=[wide, tall])["images"][0]
    assert entry["width"] / entry["height"] == pytest.approx(2.0, rel=0.03)


def test_num_images_variants_differ_but_keep_band_colours(client, submit):
    output = _output(client, submit, num_images=3, seed=5, aspect_ratio="1:1")
    images = [image_from_url(entry["url"]) for entry in output["images"]]
    assert len(images) == 3 and output["has_nsfw_concepts"] == [False] * 3
    corners = [image.getpixel((10, 10)) for image in images]
    assert len(set(corners)) == 3
    assert all(close_to(pixel, RED) for pixel in corners)


def test_output_is_deterministic_for_the_same_seed(client, submit):
    first = _output(client, submit, seed=99, output_format="png")
    second = _output(client, submit, seed=99, output_format="png")
    assert image_from_url(first["images"][0]["url"]).tobytes() == \
        image_from_url(second["images"][0]["url"]).tobytes()


def test_seed_is_echoed_or_chosen_when_absent(client, submit):
    assert _output(client, submit, seed=1234)["seed"] == 1234
    assert isinstance(_output(client, submit)["seed"], int)


def test_png_output_format(client, submit):
    entry = _output(client, submit, output_format="png")["images"][0]
    assert entry["content_type"] == "image/png" and entry["url"].endswith(".png")
    assert anon().get(entry["url"]).content.startswith(b"\x89PNG")


def test_sync_mode_returns_data_uris_and_stores_nothing(server, client, submit):
    output = _output(client, submit, sync_mode=True, num_images=2)
    urls = [entry["url"] for entry in output["images"]]
    assert all(url.startswith("data:image/jpeg;base64,") for url in urls)
    assert close_to(image_from_url(urls[0]).getpixel((5, 5)), RED)


def test_data_uri_references_render_too(server, client, submit):
    output = _output(client, submit, image_urls=[data_uri(png_bytes(GREEN))])
    assert close_to(image_from_url(output["images"][0]["url"]).getpixel((5, 5)), GREEN)


def test_nsfw_tag_flags_every_image_and_blacks_it_out(client, submit):
    output = _output(client, submit, prompt="a cat [nsfw]", num_images=2)
    assert output["has_nsfw_concepts"] == [True, True]
    for entry in output["images"]:
        assert image_from_url(entry["url"]).getextrema() == ((0, 0), (0, 0), (0, 0))


def test_nsfw_tag_with_indices_flags_only_those(client, submit):
    output = _output(client, submit, prompt="a cat [nsfw:0,2]", num_images=3)
    assert output["has_nsfw_concepts"] == [True, False, True]
    assert close_to(image_from_url(output["images"][1]["url"]).getpixel((5, 5)), RED)


def test_nsfw_indices_ignore_out_of_range():
    assert nsfw_indices("[nsfw:1,9]", 2) == {1} and nsfw_indices("plain", 2) == set()


def test_policy_tag_completes_with_error_and_result_is_422(client, submit):
    body = submit(prompt="something [policy]").json()
    status = wait_completed(client, body["status_url"])
    assert status["error_type"] == "content_policy_violation"
    result = client.get(body["response_url"])
    assert result.status_code == 422
    assert result.json() == {"detail": [{
        "loc": ["body", "prompt"], "msg": "The content was flagged by a content checker.",
        "type": "content_policy_violation"}]}


def test_enhance_prompt_appends_enhanced(client, submit):
    assert _output(client, submit, prompt="p", enhance_prompt=True)["prompt"] == "p (enhanced)"
