"""Helpers for tests: the test key and real image bytes."""
from __future__ import annotations

import io
from pathlib import Path

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


async def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Await until `condition()` is true (background work finishing); fail after `timeout`."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {condition}")
        await asyncio.sleep(interval)


def allow_short_timeouts(monkeypatch, seconds: float = 0.1) -> None:
    """Let a test use a run timeout below the node's minimum (the table's bound)."""
    import dataclasses

    from fal_kontext.kontext import flux2_parameters, parameters
    for table in (parameters.TABLE, flux2_parameters.TABLE):  # every node's table has the row
        entry = table.by_name["timeout_seconds"]
        monkeypatch.setitem(table.by_name, "timeout_seconds", dataclasses.replace(entry, low=seconds))


def stored_bytes(cache) -> int:
    """Bytes of complete entries in a result cache directory (0 when there is none)."""
    root = Path(cache.directory)
    if not root.is_dir():
        return 0
    return sum(path.stat().st_size for path in root.glob("??/*/*") if path.is_file())
