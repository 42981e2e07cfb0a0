"""Small helpers shared by the stand-in tests (imported by name: tests/ has no __init__.py)."""
from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
from PIL import Image

MULTI = "fal-ai/flux-pro/kontext/multi"
MAX_MULTI = "fal-ai/flux-pro/kontext/max/multi"
SINGLE = "fal-ai/flux-pro/kontext"
RED, GREEN, BLUE = (255, 0, 0), (0, 200, 0), (0, 0, 255)


_anonymous: httpx.Client | None = None


def anon() -> httpx.Client:
    """A shared client without credentials (a new httpx client costs ~20 ms of TLS setup)."""
    global _anonymous
    if _anonymous is None:
        _anonymous = httpx.Client(timeout=10.0)
    return _anonymous


def close_anon() -> None:
    global _anonymous
    if _anonymous is not None:
        _anonymous.close()
        _anonymous = None


def png_bytes(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def image_from_url(url: str) -> Image.Image:
    if url.startswith("data:"):
        return decode_image(base64.b64decode(url.split(",", 1)[1]))
    return decode_image(anon().get(url).content)


def close_to(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 60) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def wait_completed(client: httpx.Client, status_url: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        payload = client.get(status_url, params={"logs": "1"}).json()
        if payload["status"] == "COMPLETED":
            return payload
        time.sleep(0.02)
    raise AssertionError(f"job at {status_url} did not complete within {timeout} s")
