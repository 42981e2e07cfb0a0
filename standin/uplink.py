"""A token bucket on what clients send: every request body, on every origin, shares one rate.

A real uplink slows everything the client sends: file uploads, presigned PUTs and data URIs
inline in a submit alike. The handler reads request bodies in chunks and takes each chunk's
bytes from the bucket first, so TCP back-pressure slows the client's writes as a link would.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

CHUNK_BYTES = 16 * 1024
BURST_SECONDS = 0.01  # what the bucket may hold: ~10 ms of traffic, like a small link buffer


class UplinkThrottle:
    """Shared token bucket (bytes per second). `take(n)` returns how long to wait first."""

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self.bytes_per_second = float(bytes_per_second)
        self._lock = threading.Lock()
        self._next_free = 0.0  # when the link has sent everything granted so far

    def take(self, size: int) -> float:
        with self._lock:
            now = time.monotonic()
            # An idle link may start with a full bucket, never more.
            self._next_free = max(self._next_free, now - BURST_SECONDS)
            self._next_free += size / self.bytes_per_second
            return max(0.0, self._next_free - now)


def read_throttled(read: Callable[[int], bytes], length: int, throttle: UplinkThrottle,
                   pause: Callable[[float], bool]) -> bytes:
    """Read `length` bytes in chunks, waiting for the bucket before each; stops early (returning
    what was read) when `pause` reports the server is stopping."""
    parts, remaining = [], length
    while remaining > 0:
        size = min(CHUNK_BYTES, remaining)
        if pause(throttle.take(size)):
            break
        chunk = read(size)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
