"""Fixtures: a fresh stand-in per test, an authenticated httpx client, stored references."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import httpx
import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import BLUE, MULTI, RED, close_anon, png_bytes


@pytest.fixture(scope="session", autouse=True)
def _close_shared_client() -> Iterator[None]:
    yield
    close_anon()


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer(processing_delay=0.15) as running:
        yield running


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": "Key test-key"}, timeout=10.0) as http:
        yield http


@pytest.fixture
def refs(server: StandInServer) -> list[str]:
    """Two stored solid-colour references: red then blue."""
    return [server.put_file(png_bytes(RED), "image/png", "red.png"),
            server.put_file(png_bytes(BLUE), "image/png", "blue.png")]


@pytest.fixture
def submit(server: StandInServer, client: httpx.Client,
           refs: list[str]) -> Callable[..., httpx.Response]:
    """POST a queue submit to the multi endpoint; keyword arguments override the body."""

    def _submit(endpoint: str = MULTI, **fields: Any) -> httpx.Response:
        body: dict[str, Any] = {"prompt": "put the red thing next to the blue thing",
                                "image_urls": refs}
        body.update(fields)
        body = {key: value for key, value in body.items() if value is not _DROP}
        return client.post(f"{server.base_url}/{endpoint}", json=body)

    return _submit


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP = _Drop()


@pytest.fixture
def drop() -> Any:
    """Pass as a field value to `submit` to leave that field out of the body."""
    return _DROP
