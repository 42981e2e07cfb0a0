"""fal storage: v3 token + /files/upload, the initiate + signed PUT fallback, CDN serving."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import anon, png_bytes


def _token(server, client) -> dict:
    response = client.post(f"{server.base_url}/storage/auth/token",
                           params={"storage_type": "fal-cdn-v3"}, json={})
    assert response.status_code == 200
    return response.json()


def test_token_has_fal_shape_and_expires_in_an_hour(server, client):
    token = _token(server, client)
    assert token["token_type"] == "Bearer" and token["token"]
    assert token["base_url"] == server.cdn_url  # like fal: the CDN origin takes the uploads
    expires = datetime.fromisoformat(token["expires_at"])
    remaining = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 3500 < remaining <= 3600


def test_token_requires_the_key(server):
    assert anon().post(f"{server.base_url}/storage/auth/token").status_code == 401


def test_upload_with_token_is_served_from_the_cdn_origin(server, client):
    token = _token(server, client)
    data = png_bytes()
    response = client.post(f"{server.base_url}/files/upload", content=data,
                           headers={"Authorization": f"{token['token_type']} {token['token']}",
                                    "Content-Type": "image/png", "X-Fal-File-Name": "ref one.png"})
    assert response.status_code == 200
    access_url = response.json()["access_url"]
    assert access_url.startswith(server.cdn_url + "/files/") and access_url.endswith("ref%20one.png")
    served = anon().get(access_url)
    assert served.content == data and served.headers["content-type"] == "image/png"
    assert "x-fal-request-id" not in served.headers


def test_upload_records_headers(server, client):
    token = _token(server, client)["token"]
    client.post(f"{server.base_url}/files/upload", content=b"x",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg",
                         "X-Fal-File-Name": "a.jpg"})
    record = server.requests[-1]
    assert record.route == "upload" and record.body == b"x"
    assert record.headers["x-fal-file-name"] == "a.jpg"


def test_upload_without_a_valid_token_is_401(server, client):
    bad = anon().post(f"{server.base_url}/files/upload", content=b"x",
                     headers={"Authorization": "Bearer made-up"})
    key = client.post(f"{server.base_url}/files/upload", content=b"x")  # Key is not a token
    assert bad.status_code == 401 and key.status_code == 401


def test_initiate_then_put_stores_the_file(server, client):
    response = client.post(f"{server.base_url}/storage/upload/initiate", params={"storage_type": "gcs"},
                           json={"file_name": "ref.png", "content_type": "image/png"})
    assert response.status_code == 200
    slot = response.json()
    assert slot["upload_url"].startswith(server.base_url + "/storage/put/")
    assert slot["file_url"].startswith(server.cdn_url + "/files/") and slot["file_url"].endswith("ref.png")
    assert anon().get(slot["file_url"]).status_code == 404
    data = png_bytes()
    put = anon().put(slot["upload_url"], content=data, headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    served = anon().get(slot["file_url"])
    assert served.content == data and served.headers["content-type"] == "image/png"
    assert server.count("initiate") == 1 and server.count("put_upload") == 1


def test_put_with_a_wrong_signature_is_403(server, client):
    slot = client.post(f"{server.base_url}/storage/upload/initiate",
                       params={"storage_type": "fal-cdn-v3"},
                       json={"file_name": "a.png", "content_type": "image/png"}).json()
    wrong = slot["upload_url"].split("?")[0] + "?sig=forged"
    assert anon().put(wrong, content=b"x").status_code == 403
    assert anon().get(slot["file_url"]).status_code == 404


def test_initiate_requires_the_key(server):
    response = anon().post(f"{server.base_url}/storage/upload/initiate", json={"file_name": "a"})
    assert response.status_code == 401


def test_put_file_helper_returns_a_cdn_url(server):
    url = server.put_file(b"bytes", "application/octet-stream", "blob.bin")
    assert url.startswith(server.cdn_url) and anon().get(url).content == b"bytes"


def test_cdn_head_returns_length_without_body(server):
    url = server.put_file(b"12345", "image/png")
    response = anon().head(url)
    assert response.status_code == 200 and response.headers["content-length"] == "5"


def test_unknown_cdn_file_is_404(server):
    assert anon().get(f"{server.cdn_url}/files/nothing/x.png").status_code == 404


def _upload(url, token, data=b"bytes", **headers):
    return anon().post(f"{url}/files/upload", content=data, headers={
        "Authorization": f"{token['token_type']} {token['token']}", "Content-Type": "image/png",
        "X-Fal-File-Name": "a.png", **headers})


def test_token_base_url_origin_takes_uploads_without_the_key(server, client):
    token = _token(server, client)
    response = _upload(token["base_url"], token)
    assert response.status_code == 200
    assert anon().get(response.json()["access_url"]).content == b"bytes"
    upload = server.requests[-2]
    assert (upload.route, upload.origin) == ("upload", "cdn")
    cdn_side = [r for r in server.requests_carrying("test-key") if r.origin == "cdn"]
    assert cdn_side == [] and len(server.requests_carrying("test-key")) == 1  # the token call


def test_requests_carrying_finds_a_key_sent_to_the_cdn(server, client):
    client.post(f"{server.cdn_url}/files/upload", content=b"x")  # the bug it exists to catch
    leaked = [r for r in server.requests_carrying("test-key") if r.origin == "cdn"]
    assert [r.route for r in leaked] == ["upload"]


@pytest.mark.parametrize("setting, expected", [("api", "base"), (None, None),
                                               ("https://v3b.fal.media", "https://v3b.fal.media")])
def test_token_base_url_can_be_the_api_origin_absent_or_literal(client, setting, expected):
    with StandInServer(token_base_url=setting) as server:
        token = _token(server, client)
    if expected == "base":
        assert token["base_url"] == server.base_url
    elif expected is None:
        assert "base_url" not in token
    else:
        assert token["base_url"] == expected


def test_rejected_token_is_401_once_then_uploads_work_again(server, client):
    token = _token(server, client)
    server.reject_storage_tokens(times=1)
    rejected = _upload(server.cdn_url, token)
    accepted = _upload(server.cdn_url, _token(server, client))
    assert rejected.status_code == 401 and rejected.json() == {"detail": "Invalid token"}
    assert accepted.status_code == 200


def test_storage_tokens_can_be_rejected_for_good_while_initiate_still_works(server, client):
    server.reject_storage_tokens(times=None)
    codes = [_upload(server.cdn_url, _token(server, client)).status_code for _ in range(3)]
    slot = client.post(f"{server.base_url}/storage/upload/initiate",
                       params={"storage_type": "fal-cdn-v3"},
                       json={"file_name": "a.png", "content_type": "image/png"}).json()
    put = anon().put(slot["upload_url"], content=b"png", headers={"Content-Type": "image/png"})
    assert codes == [401, 401, 401] and put.status_code == 200
    assert anon().get(slot["file_url"]).content == b"png"


def test_lifecycle_headers_are_recorded_and_uploads_expire_after_their_lifetime(server, client):
    token = _token(server, client)
    lifecycle = json.dumps({"expiration_duration_seconds": 1})
    response = _upload(server.cdn_url, token, **{"X-Fal-Object-Lifecycle": lifecycle,
                                                 "X-Fal-Object-Lifecycle-Preference": lifecycle})
    url = response.json()["access_url"]
    assert anon().get(url).status_code == 200
    assert server.lifecycle_headers("upload") == [{
        "x-fal-object-lifecycle": {"expiration_duration_seconds": 1},
        "x-fal-object-lifecycle-preference": {"expiration_duration_seconds": 1}}]
    time.sleep(1.05)
    assert anon().get(url).status_code == 404


def test_initiate_honours_the_lifecycle_preference(server, client):
    slot = client.post(f"{server.base_url}/storage/upload/initiate",
                       json={"file_name": "a.png", "content_type": "image/png"},
                       headers={"X-Fal-Object-Lifecycle-Preference":
                                json.dumps({"expiration_duration_seconds": 1})}).json()
    anon().put(slot["upload_url"], content=b"png")
    assert anon().get(slot["file_url"]).status_code == 200
    time.sleep(1.05)
    assert anon().get(slot["file_url"]).status_code == 404


@pytest.mark.parametrize("value", ["forever", "[60]", '{"expiration_duration_seconds": "60"}',
                                   '{"expiration_duration_seconds": 0}'])
def test_malformed_lifecycle_header_is_a_400(server, client, value):
    token = _token(server, client)
    response = _upload(server.cdn_url, token, **{"X-Fal-Object-Lifecycle": value})
    assert response.status_code == 400 and response.json()["error_type"] == "bad_request"
