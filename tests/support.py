"""Helpers for tests: the test key and real image bytes."""
from __future__ import annotations

import io

from PIL import Image

TEST_KEY = "fk-test-id-4242:fk-test-secret-9f8e7d6c5b4a"


def png_bytes(color=(200, 30, 30), size=(64, 48), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
