"""One FalClient per event loop, shared by every node of a prompt.

ComfyUI runs each queued prompt in a fresh event loop, so a client (its connection pool) must
not outlive the loop it was made in. The client closes itself a little after its last user, or
when the loop shuts down (asyncio.run cancels the lingering close task, whose finally closes it).
"""
from __future__ import annotations

import asyncio
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from ..client import FalClient

LINGER_SECONDS = 30.0


@dataclass
class _LoopClient:
    client: FalClient
    users: int = 0
    closer: asyncio.Task | None = None


_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_client() -> AsyncIterator[FalClient]:
    """The running loop's client (created from the environment on first use)."""
    loop = asyncio.get_running_loop()
    entry = _per_loop.get(loop)
    if entry is None or entry.client.is_closed:
        entry = _per_loop[loop] = _LoopClient(FalClient())
    if entry.closer is not None:
        entry.closer.cancel()
        entry.closer = None
    entry.users += 1
    try:
        yield entry.client
    finally:
        entry.users -= 1
        if entry.users == 0:
            entry.closer = loop.create_task(_close_when_idle(loop, entry))


async def _close_when_idle(loop: asyncio.AbstractEventLoop, entry: _LoopClient) -> None:
    me = asyncio.current_task()
    try:
        await asyncio.sleep(LINGER_SECONDS)
    finally:
        if entry.users == 0 and entry.closer is me:
            if _per_loop.get(loop) is entry:
                del _per_loop[loop]
            await entry.client.aclose()
