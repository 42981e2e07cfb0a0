"""fal storage: v3 token + /files/upload, the initiate + signed PUT fallback, CDN serving."""
from __future__ import annotations

from datetime import datetime, timezone


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
