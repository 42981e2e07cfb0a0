"""Reference loading at submit time: own CDN, data URIs, foreign HTTP, and fal's 422 on failure."""
from __future__ import annotations

import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import BLUE, GREEN, data_uri, png_bytes


def _single_error(response):
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    return item["loc"], item["type"]


def test_unreachable_reference_is_422_file_download_error(server, submit, refs):
    response = submit(image_urls=[refs[0], "http://127.0.0.1:9/gone.png"])
    assert _single_error(response) == (["body", "image_urls", 1], "file_download_error")
    assert server.jobs == {}


def test_reference_answering_http_404_is_file_download_error(submit, refs):
    with StandInServer() as other:
        missing = f"{other.cdn_url}/files/nope/x.png"
        assert _single_error(submit(image_urls=[missing])) == (["body", "image_urls", 0],
                                                              "file_download_error")


def test_missing_file_on_own_cdn_is_file_download_error(server, submit):
    response = submit(image_urls=[f"{server.cdn_url}/files/unknown/x.png"])
    assert _single_error(response) == (["body", "image_urls", 0], "file_download_error")


def test_undecodable_reference_is_422_image_load_error(server, submit, refs):
    junk = server.put_file(b"definitely not an image", "image/png", "junk.png")
    response = submit(image_urls=[refs[0], refs[1], junk])
    assert _single_error(response) == (["body", "image_urls", 2], "image_load_error")


def test_non_http_reference_is_file_download_error(submit):
    assert _single_error(submit(image_urls=["ftp://host/a.png"]))[1] == "file_download_error"


def test_data_uri_references_are_decoded(server, submit):
    response = submit(image_urls=[data_uri(png_bytes(GREEN, (20, 10)))])
    assert response.status_code == 200
    assert server.jobs[response.json()["request_id"]].reference_sizes == [(20, 10)]


@pytest.mark.parametrize("uri,type_", [
    ("data:image/png;base64,@@@not-base64@@@", "file_download_error"),
    ("data:image/png;base64," + "aGVsbG8=", "image_load_error"),
])
def test_broken_data_uri_is_a_422(submit, uri, type_):
    assert _single_error(submit(image_urls=[uri]))[1] == type_


def test_own_cdn_references_are_read_without_http(server, submit, refs):
    assert submit().status_code == 200
    assert server.count("file") == 0


def test_foreign_http_references_are_fetched(server, submit):
    with StandInServer() as other:
        foreign = other.put_file(png_bytes(BLUE, (33, 22)), "image/png", "b.png")
        response = submit(image_urls=[foreign])
        assert other.count("file") == 1
    assert server.jobs[response.json()["request_id"]].reference_sizes == [(33, 22)]


def test_uploaded_file_can_be_used_as_reference(server, client, submit):
    token = client.post(f"{server.base_url}/storage/auth/token",
                        params={"storage_type": "fal-cdn-v3"}, json={}).json()["token"]
    access_url = client.post(f"{server.base_url}/files/upload", content=png_bytes(size=(12, 34)),
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "image/png"}).json()["access_url"]
    response = submit(image_urls=[access_url])
    assert server.jobs[response.json()["request_id"]].reference_sizes == [(12, 34)]
