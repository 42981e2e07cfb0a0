"""Every failure is a typed error with one actionable line, naming the request id."""
from __future__ import annotations

import pytest

from fal_kontext.client import (AuthError, ContentPolicyError, FalClient, FalError,
                                MissingKeyError, RateLimitError, ServerError, ValidationError)
from support import TEST_KEY, png_bytes

pytestmark = pytest.mark.anyio
MULTI = "fal-ai/flux-pro/kontext/multi"


async def test_wrong_key_is_an_auth_error_saying_how_to_set_the_key(monkeypatch):
    from fal_kontext.standin import StandInServer
    with StandInServer(api_key="the-right-key-123") as server:
        monkeypatch.setenv("FAL_KEY", "a-wrong-key-456789")
        async with FalClient(base_url=server.base_url) as client:
            with pytest.raises(AuthError) as caught:
                await client.submit(MULTI, {"prompt": "p", "image_urls": ["data:image/png;base64,AA=="]})
    message = str(caught.value)
    assert "401" in message and "FAL_KEY" in message
    assert "a-wrong-key-456789" not in message


async def test_403_says_to_check_key_and_balance(fal_env):
    fal_env.faults.add("submit", status=403, body=b'{"detail": "User is locked"}')
    async with FalClient() as client:
        with pytest.raises(AuthError, match="403.*User is locked.*balance"):
            await client.submit(MULTI, {"prompt": "p", "image_urls": ["data:image/png;base64,AA=="]})


async def test_422_lists_every_offending_field_with_fals_message(fal_env):
    async with FalClient() as client:
        url = await client.upload(png_bytes(), "image/png")
        with pytest.raises(ValidationError) as caught:
            await client.submit(MULTI, {"prompt": "p", "image_urls": [url], "guidance_scale": 99,
                                        "num_images": 9, "safety_tolerance": 2})
    fields = {f.field for f in caught.value.fields}
    assert {"guidance_scale", "num_images", "safety_tolerance"} <= fields
    message = str(caught.value)
    assert "guidance_scale:" in message and "num_images:" in message


async def test_content_policy_violation_has_its_own_error(fal_env):
    async with FalClient() as client:
        url = await client.upload(png_bytes(), "image/png")
        with pytest.raises(ContentPolicyError) as caught:
            await client.run(MULTI, {"prompt": "something [policy]", "image_urls": [url]})
    assert "prompt" in str(caught.value) and caught.value.request_id


async def test_rate_limit_error_carries_retry_after(fal_env):
    fal_env.faults.add("submit", status=429, retry_after=3)
    async with FalClient() as client:
        with pytest.raises(RateLimitError) as caught:
            await client.submit(MULTI, {"prompt": "p", "image_urls": ["data:image/png;base64,AA=="]})
    assert caught.value.retry_after == 3


async def test_server_error_on_a_safe_call_names_the_request_id(fal_env):
    async with FalClient(retry=__import__("fal_kontext.client", fromlist=["RetryPolicy"]).RetryPolicy(
            attempts=2, base_delay=0.01)) as client:
        url = await client.upload(png_bytes(), "image/png")
        handle = await client.submit(MULTI, {"prompt": "p", "image_urls": [url]})
        fal_env.faults.add("status", times=5, status=503)
        with pytest.raises(ServerError) as caught:
            await client.status(handle)
    assert handle.request_id in str(caught.value)


def test_missing_key_fails_before_any_request_and_says_where_to_put_it(monkeypatch, tmp_path):
    with pytest.raises(MissingKeyError) as caught:
        FalClient(base_url="http://127.0.0.1:9")
    message = str(caught.value)
    assert "FAL_KEY" in message and str(tmp_path / "no-config.json") in message


def test_errors_never_contain_the_key_even_when_a_server_echoes_it():
    from fal_kontext.client.redaction import register_secret
    register_secret(TEST_KEY)
    error = FalError(f"server said: Authorization: Key {TEST_KEY}")
    assert TEST_KEY not in str(error) and TEST_KEY not in repr(error)
    assert TEST_KEY.split(":")[1] not in str(error)


async def test_key_is_absent_from_every_log_line_and_repr(fal_env, all_logs):
    async with FalClient() as client:
        assert TEST_KEY not in repr(client)
        url = await client.upload(png_bytes(), "image/png")
        await client.run(MULTI, {"prompt": "p", "image_urls": [url]})
    text = "\n".join(r.getMessage() for r in all_logs.records)
    assert text, "the client logs what it does"
    assert TEST_KEY not in text and TEST_KEY.split(":")[1] not in text
