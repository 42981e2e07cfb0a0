"""Every request the stand-in receives, recorded so tests can assert what a client actually sent."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One received request, as the handler saw it (before any fault was applied)."""

    origin: str  # "api", "cdn" or "run"
    method: str
    path: str  # without the query string
    query: dict[str, str]  # last value wins for repeated keys
    headers: dict[str, str]  # lower-case keys
    body: bytes
    time: float  # time.monotonic() when the request had been read
    route: str | None  # the route name used by faults and count(); None for unrouted paths

    def json(self) -> Any:
        return json.loads(self.body)


class RequestLog:
    """Append-only, thread-safe list of recorded requests."""

    def __init__(self) -> None:
        self._items: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def add(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def by_route(self, route: str) -> list[RecordedRequest]:
        return [item for item in self.snapshot() if item.route == route]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
