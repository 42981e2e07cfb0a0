"""Fault injection: scripted faults for the next N requests of a route, and random transient ones.

A fault either *replaces* the answer (status, ingress_502, redirect_to, drop_connection; the route
does not run, as if the request never reached the app) or *damages* it (delay, malformed_json,
truncate, reset_mid_response, headers, content_type, retry_after, retryable; the route runs, so
e.g. a job is created, but the client may never see a usable answer — the "did my submit land?"
case). On the status stream, truncate / reset_mid_response / stall act after `stream_events`
events. A fault lasts `times` requests (None: until cleared) or, for an outage, until `until`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .rng import SharedRandom

ROUTES: frozenset[str] = frozenset({
    "submit", "status", "status_stream", "result", "cancel",
    "token", "upload", "initiate", "put_upload", "file", "run",
})
# Routes a client may safely repeat; random transient faults never touch submit/run (re-sending
# those could create a second paid job) nor the uploads that create new objects via initiate.
RETRY_SAFE_ROUTES: frozenset[str] = frozenset({"status", "result", "cancel", "token", "upload", "file"})


@dataclass
class Fault:
    route: str
    times: int | None = 1  # None: every request until the fault is cleared (or `until` passes)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # bytes/str sent raw, anything else JSON-encoded; None = fal's default body
    retry_after: float | None = None
    drop_connection: bool = False
    reset_mid_response: bool = False
    delay: float = 0.0
    malformed_json: bool = False
    truncate: bool = False
    ingress_502: bool = False
    content_type: str | None = None
    redirect_to: str | None = None  # "{path}" in it is replaced by the request's path and query
    retryable: bool | None = None  # adds X-Fal-Retryable: true/false
    stream_events: int = 1  # status stream: events sent before truncate/reset/stall acts (0: none)
    stall: bool = False  # status stream: then go silent (no keep-alive) with the connection open
    until: float | None = None  # time.monotonic() after which the fault no longer applies

    @property
    def replaces_response(self) -> bool:
        return (self.drop_connection or self.ingress_502 or self.redirect_to is not None
                or self.status is not None)


class FaultBook:
    """Queued faults per route, consumed first-in first-out."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, route: str, times: int | None = 1, status: int | None = None,
            headers: dict[str, str] | None = None, body: Any = None,
            retry_after: float | None = None, drop_connection: bool = False,
            reset_mid_response: bool = False, delay: float = 0.0, malformed_json: bool = False,
            truncate: bool = False, ingress_502: bool = False, content_type: str | None = None,
            redirect_to: str | None = None, retryable: bool | None = None,
            stream_events: int = 1, stall: bool = False, until: float | None = None) -> Fault:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTES)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if stream_events < 0:
            raise ValueError("stream_events must be at least 0")
        fault = Fault(route, times, status, dict(headers or {}), body, retry_after, drop_connection,
                      reset_mid_response, delay, malformed_json, truncate, ingress_502,
                      content_type, redirect_to, retryable, stream_events, stall, until)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, route: str | None) -> Fault | None:
        """The fault for this request, if one is pending; uses up one of its `times`."""
        if route is None:
            return None
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if f.until is None or now < f.until]
            for fault in self._faults:
                if fault.route == route:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        now = time.monotonic()
        with self._lock:
            return [f for f in self._faults if f.until is None or now < f.until]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class TransientFaults:
    """Random 503/429 answers on retry-safe routes, drawn from the server's seeded generator."""

    def __init__(self, rate: float, rng: SharedRandom) -> None:
        self.rate = rate
        self._rng = rng

    def draw(self, route: str | None) -> int | None:
        if self.rate <= 0 or route not in RETRY_SAFE_ROUTES:
            return None
        if self._rng.random() >= self.rate:
            return None
        return 503 if self._rng.random() < 0.5 else 429
