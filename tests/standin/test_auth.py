"""Authorization: `Key <key>` on fal's API and run origins, nothing needed on the CDN."""
from __future__ import annotations


from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, anon, png_bytes


def test_missing_authorization_is_401_invalid_key(server, refs):
    response = anon().post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid key"}
    assert server.jobs == {}


def test_non_key_scheme_is_401(server, refs):
    response = anon().post(f"{server.base_url}/{MULTI}", headers={"Authorization": "Bearer abc"},
                          json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 401


def test_empty_key_is_401(server, refs):
    response = anon().post(f"{server.base_url}/{MULTI}", headers={"Authorization": "Key"},
                          json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 401


def test_configured_api_key_must_match_exactly():
    with StandInServer(api_key="id:secret") as server:
        reference = server.put_file(png_bytes(), "image/png")
        body = {"prompt": "p", "image_urls": [reference]}
        wrong = anon().post(f"{server.base_url}/{MULTI}", headers={"Authorization": "Key other"}, json=body)
        right = anon().post(f"{server.base_url}/{MULTI}", headers={"Authorization": "Key id:secret"}, json=body)
        status = anon().get(right.json()["status_url"], headers={"Authorization": "Key other"})
    assert (wrong.status_code, right.status_code, status.status_code) == (401, 200, 401)


def test_queue_routes_require_the_key(server, client, submit):
    body = submit().json()
    assert anon().get(body["status_url"]).status_code == 401
    assert anon().get(body["response_url"]).status_code == 401
    assert anon().put(body["cancel_url"]).status_code == 401
    assert anon().post(f"{server.run_url}/{MULTI}", json={}).status_code == 401


def test_cdn_needs_no_authorization_and_records_headers(server):
    url = server.put_file(b"abc", "text/plain", "a.txt")
    response = anon().get(url, headers={"X-Probe": "1"})
    assert response.status_code == 200 and response.content == b"abc"
    record = server.requests[-1]
    assert record.origin == "cdn" and record.route == "file"
    assert record.headers["x-probe"] == "1" and "authorization" not in record.headers
