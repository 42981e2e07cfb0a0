"""Following one fal job: the status stream first, gentle polling when the stream is unavailable.

fal serves `GET …/requests/{id}/status/stream` (server-sent events: one `data:` status object
per change, a keep-alive comment every 15 s, closed after COMPLETED). One stream connection
replaces hundreds of polls and delivers COMPLETED the moment it happens. When a server refuses
the stream (a proxy, an older gateway) the watcher polls with growing gaps instead.

A stream that breaks twice in a row without delivering a status (a proxy that resets it, say) is
given up for that job: the watcher polls instead. Every status-type answer's Retry-After is
honoured, stream or poll.

Errors while the job is alive are transient by assumption (fal's own clients ride out tens of
seconds of them): the watcher backs off and keeps going; only the caller (its deadline, a cancel)
ends the wait. Answers that can never get better end it at once: a rejected key, an unknown
request, a start deadline that passed.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import AsyncIterator, Protocol

import httpx
from httpx_sse import SSEError, aconnect_sse

from . import responses
from .errors import AuthError, FalError, JobNotFoundError, StartDeadlineError
from .logs import logger
from .queue_types import JobState, JobStatus, RequestHandle
from .retry import STATUS_RETRY, Backoff, RetryPolicy

# A refused stream route means "no stream here": poll instead, and do not ask again for this job.
_NO_STREAM_STATUS = frozenset({404, 405, 406, 501})
# Stream connections in a row that may break before any status arrives; then poll this job.
MAX_SILENT_STREAM_BREAKS = 2


class StatusSource(Protocol):
    """What the watcher needs from the client that owns the connection pool and the key."""

    @property
    def http(self) -> httpx.AsyncClient: ...

    def auth_headers(self, url: str) -> dict[str, str]: ...

    def unknown_request_message(self, request_id: str) -> str: ...

    def start_deadline_of(self, request_id: str) -> float | None: ...


@dataclass
class PollGaps:
    """Gaps between status polls when there is no stream: quick at first (short jobs finish
    soon), then gentle (at most one request every `cap` seconds per job)."""

    first: float = 0.25
    growth: float = 1.5
    cap: float = 2.0
    _current: float = 0.0

    def next(self) -> float:
        self._current = self.first if not self._current else min(self._current * self.growth, self.cap)
        return self._current


class StatusWatcher:
    """Yields a job's status snapshots until (and including) COMPLETED."""

    def __init__(self, source: StatusSource, handle: RequestHandle, *, logs: bool = True,
                 retry: RetryPolicy = STATUS_RETRY, use_stream: bool = True,
                 poll_gaps: PollGaps | None = None):
        self._source = source
        self._handle = handle
        self._logs = logs
        self._backoff = Backoff(retry)
        self._use_stream = use_stream
        self._gaps = poll_gaps or PollGaps()
        self._silent_stream_breaks = 0
        self.stream_connections = 0
        self.polls = 0

    async def statuses(self) -> AsyncIterator[JobStatus]:
        while True:
            if self._use_stream:
                async for status in self._from_stream():
                    yield status
                    if status.state is JobState.COMPLETED:
                        return
                if self._use_stream:
                    continue  # the stream ended early or broke; reconnect
            status = await self._poll()
            if status is not None:
                yield status
                if status.state is JobState.COMPLETED:
                    return
                await asyncio.sleep(self._gaps.next())

    async def _from_stream(self) -> AsyncIterator[JobStatus]:
        url = f"{self._handle.status_url.rstrip('/')}/stream"
        self.stream_connections += 1
        events = 0
        try:
            async with aconnect_sse(self._source.http, "GET", url,
                                    params={"logs": "1" if self._logs else "0"},
                                    headers=self._source.auth_headers(url)) as source:
                response = source.response
                if not response.is_success:
                    await response.aread()
                    self._on_refused_stream(response)
                    if response.status_code != 429:  # a rate limit says wait, not "no stream"
                        self._stream_broke_silently(f"HTTP {response.status_code}")
                    await self._back_off(responses.retry_after(response))
                    return
                async for event in source.aiter_sse():
                    status = _status_from_event(event.data)
                    if status is not None:
                        events += 1
                        self._silent_stream_breaks = 0
                        self._backoff.succeeded()
                        yield status
            if not events:  # closed without a word: do not reconnect in a tight loop
                self._stream_broke_silently("closed without a status")
                await self._back_off()
        except (httpx.TransportError, SSEError) as error:
            # A stream with the wrong content type is no stream at all; a broken one is transient.
            if isinstance(error, SSEError):
                logger.info("fal's status stream is unusable here (%s); polling instead", error)
                self._use_stream = False
                return
            logger.info("status stream of fal request %s broke (%s)", self._handle.request_id,
                        type(error).__name__)
            if not events:
                self._stream_broke_silently(type(error).__name__)
            await self._back_off()

    def _stream_broke_silently(self, how: str) -> None:
        self._silent_stream_breaks += 1
        if self._silent_stream_breaks >= MAX_SILENT_STREAM_BREAKS:
            logger.info("the status stream of fal request %s failed %d times without a status "
                        "(%s); polling instead", self._handle.request_id,
                        self._silent_stream_breaks, how)
            self._use_stream = False

    def _on_refused_stream(self, response: httpx.Response) -> None:
        self._raise_if_final(response)
        if response.status_code in _NO_STREAM_STATUS:
            logger.info("fal's status stream is not served here (HTTP %s); polling instead",
                        response.status_code)
            self._use_stream = False
        else:
            logger.info("status stream of fal request %s answered %s; retrying",
                        self._handle.request_id, response.status_code)

    async def _poll(self) -> JobStatus | None:
        url = self._handle.status_url
        self.polls += 1
        try:
            response = await self._source.http.get(
                url, params={"logs": "1" if self._logs else "0"},
                headers=self._source.auth_headers(url))
        except httpx.TransportError as error:
            logger.info("status check of fal request %s failed (%s); retrying",
                        self._handle.request_id, type(error).__name__)
            await self._back_off()
            return None
        if response.is_success:
            body = responses.json_body(response)
            if isinstance(body, dict):
                self._backoff.succeeded()
                return JobStatus.from_json(body)
        else:
            self._raise_if_final(response)
        logger.info("status check of fal request %s answered %s; retrying",
                    self._handle.request_id, response.status_code)
        await self._back_off(responses.retry_after(response))
        return None

    def _raise_if_final(self, response: httpx.Response) -> None:
        """Answers that waiting cannot fix end the watch with their typed error."""
        status = response.status_code
        request_id = self._handle.request_id
        if status == 404 and response.request.url.path.rstrip("/").endswith("/status"):
            raise JobNotFoundError(self._source.unknown_request_message(request_id),
                                   request_id=request_id, status_code=404)
        error = responses.error_for_response(response, request_id=request_id, action="status check",
                                             start_deadline=self._source.start_deadline_of(request_id))
        if isinstance(error, (AuthError, StartDeadlineError)) or status in (400, 410, 422):
            raise error

    async def _back_off(self, retry_after: float | None = None) -> None:
        delay = self._backoff.failed(retry_after)
        if self._backoff.exhausted:
            raise FalError(f"fal's status of request {self._handle.request_id} stayed unavailable")
        await asyncio.sleep(delay)


def _status_from_event(data: str) -> JobStatus | None:
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, TypeError):
        return None
    return JobStatus.from_json(body) if isinstance(body, dict) else None
