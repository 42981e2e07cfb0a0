"""Uploads go to fal storage once per content; downloads are capped and never carry the key."""
from __future__ import annotations

import asyncio
import time

import pytest

from fal_kontext.client import DownloadError, FalClient, RetryPolicy
from fal_kontext.client.data_uri import encode_data_uri
from support import TEST_KEY, png_bytes

pytestmark = pytest.mark.anyio


async def test_upload_returns_a_url_serving_the_same_bytes_without_auth(fal_env):
    data = png_bytes((10, 200, 30))
    async with FalClient() as client:
        url = await client.upload(data, "image/png")
        assert url.startswith(fal_env.cdn_url)
        assert await client.download(url) == data
    upload = [r for r in fal_env.requests if r.path == "/files/upload"][0]
    assert upload.headers["authorization"].startswith("Bearer "), "the CDN gets the storage token"
    assert upload.headers["content-type"] == "image/png"
    token_call = [r for r in fal_env.requests if r.path == "/storage/auth/token"][0]
    assert token_call.query.get("storage_type") == "fal-cdn-v3"


async def test_same_bytes_are_uploaded_once(fal_env):
    data = png_bytes((1, 2, 3))
    async with FalClient() as client:
        first = await client.upload(data, "image/png")
    async with FalClient() as client:  # a later prompt, a new client
        second = await client.upload(data, "image/png")
    assert first == second
    assert fal_env.count("upload") == 1


async def test_upload_falls_back_to_the_initiate_route_when_the_cdn_fails(fal_env):
    fal_env.faults.add("upload", times=10, status=500)
    data = png_bytes((4, 5, 6))
    async with FalClient(retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        url = await client.upload(data, "image/png")
        assert await client.download(url) == data
    assert fal_env.count("initiate") == 1 and fal_env.count("put_upload") == 1
    put = [r for r in fal_env.requests if r.method == "PUT" and "/storage/" in r.path][0]
    assert "authorization" not in put.headers, "a presigned upload URL needs no key"


async def test_uploads_run_in_parallel_up_to_the_concurrency_limit(fal_env):
    fal_env.faults.add("upload", times=4, delay=0.4)
    images = [png_bytes((i, i, i)) for i in range(4)]
    async with FalClient(upload_concurrency=2) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.upload(d, "image/png") for d in images))
        elapsed = time.monotonic() - started
    assert 0.75 < elapsed < 1.5, "two at a time: two rounds of 0.4 s"


async def test_data_uri_results_are_decoded_without_any_request(fal_env):
    data = png_bytes()
    async with FalClient() as client:
        before = len(fal_env.requests)
        assert await client.download(encode_data_uri(data, "image/png")) == data
        assert len(fal_env.requests) == before


async def test_download_over_the_cap_is_refused(fal_env):
    data = png_bytes(size=(400, 400)) + b"\0" * 200_000
    url = fal_env.put_file(data, "image/png")
    async with FalClient() as client:
        with pytest.raises(DownloadError, match="cap"):
            await client.download(url, max_bytes=100_000)
        with pytest.raises(DownloadError, match="cap"):
            await client.download(encode_data_uri(data, "image/png"), max_bytes=100_000)


async def test_no_authorization_header_reaches_the_cdn_or_a_redirect_target(fal_env):
    data = png_bytes()
    target = fal_env.put_file(data, "image/png")
    fal_env.faults.add("file", times=1, redirect_to=target)
    async with FalClient() as client:
        url = await client.upload(png_bytes((9, 9, 9)), "image/png")
        assert await client.download(url, expect_image=True) == data
    # The CDN sees the storage token on the upload (as at fal) and nothing at all on downloads.
    downloads = [r for r in fal_env.requests if r.route == "file"]
    uploads = [r for r in fal_env.requests if r.route == "upload"]
    assert len(downloads) == 2 and all("authorization" not in r.headers for r in downloads)
    assert uploads and all(r.origin == "cdn" for r in uploads)
    assert not any(TEST_KEY.split(":")[1] in r.headers.get("authorization", "") for r in uploads)


async def test_a_non_image_answer_for_an_image_is_a_download_error(fal_env):
    url = fal_env.put_file(b"<html>oops</html>", "text/html")
    async with FalClient() as client:
        with pytest.raises(DownloadError, match="text/html"):
            await client.download(url, expect_image=True)


async def test_plain_http_downloads_from_other_hosts_are_refused(fal_env):
    async with FalClient() as client:
        with pytest.raises(DownloadError, match="https"):
            await client.download("http://example.com/a.png")


async def test_after_the_cdn_route_fails_later_uploads_go_straight_to_initiate(fal_env):
    fal_env.faults.add("token", times=1, status=404, body=b'{"detail": "Not Found"}')
    async with FalClient(retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        await client.upload(png_bytes((1, 1, 1)), "image/png")
        await client.upload(png_bytes((2, 2, 2)), "image/png")
    assert fal_env.count("token") == 1 and fal_env.count("upload") == 0
    assert fal_env.count("initiate") == 2
    initiate = [r for r in fal_env.requests if r.path == "/storage/upload/initiate"][0]
    assert initiate.query.get("storage_type") == "fal-cdn-v3"


async def test_concurrent_uploads_of_the_same_content_encode_and_upload_once(fal_env):
    produced = []

    def produce():
        produced.append(1)
        return png_bytes((7, 7, 7)), "image/png"

    async with FalClient() as client:
        urls = await asyncio.gather(*(client.upload_once("same-key", produce) for _ in range(4)))
    assert len(set(urls)) == 1
    assert len(produced) == 1 and fal_env.count("upload") == 1
