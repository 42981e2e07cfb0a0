"""`FalClient`: fal's queue, storage and file downloads over one httpx connection pool."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any, Callable, Mapping

import httpx

from . import responses
from .credentials import resolve_key
from .data_uri import decode_data_uri, is_data_uri
from .errors import (AuthError, ConnectionFailedError, DownloadError,
                     FalError, FalTimeoutError, JobFailedError, ServerError, SubmitUncertainError,
                     ValidationError)
from .errors import CancelledError as JobCancelledError
from .hosts import FalHosts, check_transport_security, is_loopback_host
from .logs import logger
from .polling import PollSchedule
from .queue_types import (CancelOutcome, EndpointId, JobState, JobStatus, QueueUpdate,
                          RequestHandle)
from .redaction import mask_key
from .retry import NO_RETRY, RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from .storage import (SHARED_UPLOAD_CACHE, UPLOAD_LIFETIME_SECONDS, StorageToken, UploadCache,
                      content_key)

USER_AGENT = "fal-kontext (python)"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=60.0)
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 2**20
DEFAULT_UPLOAD_CONCURRENCY = 4
CANCEL_CHECK_INTERVAL = 0.1  # how often `run` looks at should_cancel and the deadline
CANCEL_REQUEST_TIMEOUT = 10.0  # a cancel must never hold up an interrupt for long
SUBMIT_GRACE_SECONDS = 15.0  # how long an interrupted submit may finish so its job can be cancelled
LOG_TAIL_LINES = 5
MAX_REDIRECTS = 5
_CONNECT_RETRIES = 2
NO_AUTH = ""  # `authorization=NO_AUTH`: send no Authorization header at all  # httpx retries only failures to connect: safe even for a paid submit

OnUpdate = Callable[[QueueUpdate], None]
ShouldCancel = Callable[[], bool]


class FalClient:
    """Async fal client; use as `async with FalClient() as fal:`. Key and hosts default to env."""

    def __init__(self, key: str | None = None, *, base_url: str | None = None,
                 hosts: FalHosts | None = None, retry: RetryPolicy = RetryPolicy(),
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, max_connections: int = 32,
                 upload_cache: UploadCache = SHARED_UPLOAD_CACHE,
                 upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
                 max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
                 poll_schedule: Callable[[], PollSchedule] = PollSchedule,
                 environ: Mapping[str, str] | None = None):
        import os
        environ = os.environ if environ is None else environ
        self.hosts = hosts or (FalHosts.single_origin(base_url) if base_url else FalHosts.from_env(environ))
        self._key = resolve_key(key, environ)
        self._retry = retry
        self._upload_cache = upload_cache
        self._upload_slots = asyncio.Semaphore(upload_concurrency)
        self._max_download_bytes = max_download_bytes
        self._poll_schedule = poll_schedule
        self._storage_token: StorageToken | None = None
        self._cdn_route_works = True
        self._uploads_in_flight: dict[str, asyncio.Future] = {}
        self._token_lock = asyncio.Lock()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT},
            transport=httpx.AsyncHTTPTransport(retries=_CONNECT_RETRIES, limits=limits))

    def __repr__(self) -> str:
        return f"FalClient(queue={self.hosts.queue!r}, key={mask_key(self._key)!r})"

    async def __aenter__(self) -> "FalClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    # ----------------------------------------------------------------- queue

    async def submit(self, endpoint_id: str, arguments: Mapping[str, Any],
                     headers: Mapping[str, str] | None = None) -> RequestHandle:
        """Queue one job. Never re-sent once it may have reached fal (no double billing). If the
        caller is cancelled mid-request, the submit still completes and the job is cancelled,
        so no job runs on the account without a handle to stop it."""
        submitting = asyncio.ensure_future(self._submit(endpoint_id, arguments, headers))
        try:
            return await asyncio.shield(submitting)
        except asyncio.CancelledError:
            await self._cancel_once_submitted(submitting)
            raise

    async def _cancel_once_submitted(self, submitting: asyncio.Future) -> None:
        try:
            handle = await asyncio.wait_for(submitting, SUBMIT_GRACE_SECONDS)
        except (FalError, asyncio.TimeoutError, asyncio.CancelledError):
            return  # it failed or never finished: there is no job to cancel
        await self.cancel_quietly(handle)

    async def _submit(self, endpoint_id: str, arguments: Mapping[str, Any],
                      headers: Mapping[str, str] | None) -> RequestHandle:
        endpoint = EndpointId.parse(endpoint_id)
        url = f"{self.hosts.queue}/{endpoint.submit_path}"
        body = await self._request_json("POST", url, action="submit", idempotent=False,
                                        json=dict(arguments), headers=headers)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise SubmitUncertainError(
                "fal accepted the submit but its answer had no request id; the job may be "
                "running, so it was not re-sent: check https://fal.ai/dashboard/requests")
        handle = self._handle(endpoint, request_id, body)
        logger.info("submitted %s as fal request %s", endpoint_id, request_id)
        return handle

    def handle_for(self, endpoint_id: str, request_id: str) -> RequestHandle:
        """A handle for a job submitted earlier, from its id alone."""
        return self._handle(EndpointId.parse(endpoint_id), request_id, {})

    def _handle(self, endpoint: EndpointId, request_id: str, body: Mapping[str, Any]) -> RequestHandle:
        base = f"{self.hosts.queue}/{endpoint.requests_path}/{request_id}"

        def returned_or_built(field: str, built: str) -> str:
            # Use fal's URL only if it points at the queue origin: the key goes with these calls.
            url = body.get(field)
            return url if isinstance(url, str) and self.hosts.may_receive_key(url) else built

        return RequestHandle(
            endpoint_id=endpoint.submit_path, request_id=request_id,
            status_url=returned_or_built("status_url", f"{base}/status"),
            response_url=returned_or_built("response_url", base),
            cancel_url=returned_or_built("cancel_url", f"{base}/cancel"))

    async def status(self, handle: RequestHandle, logs: bool = True) -> JobStatus:
        body = await self._request_json("GET", handle.status_url, action="status check",
                                        params={"logs": "1" if logs else "0"},
                                        request_id=handle.request_id)
        return JobStatus.from_json(body)

    async def result(self, handle: RequestHandle) -> dict[str, Any]:
        """The job's output; a job that failed raises its error here (fal reports it this way)."""
        return await self._request_json("GET", handle.response_url, action="result fetch",
                                        request_id=handle.request_id)

    async def cancel(self, handle: RequestHandle) -> CancelOutcome:
        """Ask fal to stop the job; says whether it was stopped or had already finished."""
        url = handle.cancel_url
        try:
            await self._request("PUT", url, action="cancel", request_id=handle.request_id,
                                retry=RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0))
        except FalError as error:
            if error.status_code == 400:
                return CancelOutcome.ALREADY_COMPLETED
            if error.status_code == 404:
                return CancelOutcome.NOT_FOUND
            raise
        return CancelOutcome.REQUESTED

    async def run(self, endpoint_id: str, arguments: Mapping[str, Any], *,
                  on_update: OnUpdate | None = None, timeout: float | None = None,
                  should_cancel: ShouldCancel | None = None,
                  on_submit: Callable[[RequestHandle], None] | None = None) -> dict[str, Any]:
        """Submit, wait (reporting progress), fetch the result. A job we stop waiting for for any
        reason (timeout, should_cancel, task cancellation) is cancelled at fal first."""
        handle = await self.submit(endpoint_id, arguments)
        if on_submit is not None:
            on_submit(handle)
        return await self.wait_for_result(handle, on_update=on_update, timeout=timeout,
                                          should_cancel=should_cancel)

    async def wait_for_result(self, handle: RequestHandle, *, on_update: OnUpdate | None = None,
                              timeout: float | None = None,
                              should_cancel: ShouldCancel | None = None) -> dict[str, Any]:
        started = time.monotonic()
        waiter = asyncio.ensure_future(self._poll_then_fetch(handle, on_update, started))
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=CANCEL_CHECK_INTERVAL)
                if done:
                    return waiter.result()
                if should_cancel is not None and should_cancel():
                    await _stop(waiter)
                    outcome = await self.cancel_quietly(handle)
                    raise JobCancelledError(
                        cancel_confirmed=outcome.confirmed, request_id=handle.request_id,
                        finished_and_billed=outcome is CancelOutcome.ALREADY_COMPLETED)
                if timeout is not None and time.monotonic() - started >= timeout:
                    await _stop(waiter)
                    outcome = await self.cancel_quietly(handle)
                    if outcome is CancelOutcome.ALREADY_COMPLETED:
                        return await self.result(handle)  # it finished and was paid for: deliver it
                    raise FalTimeoutError(timeout, cancel_confirmed=outcome.confirmed,
                                          request_id=handle.request_id)
        except asyncio.CancelledError:
            await _stop(waiter)
            await self.cancel_quietly(handle)
            raise

    async def cancel_quietly(self, handle: RequestHandle) -> CancelOutcome:
        """Cancel without raising: the caller is already on its way out with its own error."""
        try:
            outcome = await asyncio.wait_for(self.cancel(handle), CANCEL_REQUEST_TIMEOUT)
        except (FalError, asyncio.TimeoutError) as error:
            logger.warning("cancel of fal request %s was not confirmed: %s", handle.request_id, error)
            return CancelOutcome.UNCONFIRMED
        if outcome is CancelOutcome.ALREADY_COMPLETED:
            # The caller may only show "interrupted" (ComfyUI): the bill must not go unmentioned.
            logger.warning("fal request %s had already finished when it was cancelled; it was "
                           "billed and its result stays in https://fal.ai/dashboard/requests",
                           handle.request_id)
        else:
            logger.info("cancel of fal request %s: %s", handle.request_id, outcome.value)
        return outcome

    async def _poll_then_fetch(self, handle: RequestHandle, on_update: OnUpdate | None,
                               started: float) -> dict[str, Any]:
        schedule = self._poll_schedule()
        seen_logs = 0
        log_lines: list[str] = []
        while True:
            try:
                status = await self.status(handle, logs=True)
            except FalError:
                # We can no longer follow the job: stop it rather than let it run (and bill) unseen.
                await self.cancel_quietly(handle)
                raise
            if len(status.logs) < seen_logs:
                seen_logs = 0  # the server trimmed its log list; show what it has now
            new_lines = tuple(str(entry.get("message", "")) for entry in status.logs[seen_logs:])
            seen_logs = len(status.logs)
            log_lines = (log_lines + list(new_lines))[-LOG_TAIL_LINES:]
            if on_update is not None:
                on_update(QueueUpdate(handle.request_id, status.state, status.queue_position,
                                      new_lines, time.monotonic() - started))
            if status.state is JobState.COMPLETED:
                return await self._completed_result(handle, status, log_lines)
            await asyncio.sleep(schedule.next_delay(status))

    async def _completed_result(self, handle: RequestHandle, status: JobStatus,
                                log_lines: list[str]) -> dict[str, Any]:
        if status.error is None:
            return await self.result(handle)
        # The job failed: its error is stored at the result URL; fetching again will not change it.
        try:
            return await self._request_json("GET", handle.response_url, action="result fetch",
                                            request_id=handle.request_id, retry=NO_RETRY)
        except (ValidationError, AuthError):
            raise
        except FalError as error:
            kind = f" [{status.error_type}]" if status.error_type else ""
            raise JobFailedError(f"The job failed at fal{kind}: {status.error}",
                                 logs_tail=log_lines, request_id=handle.request_id,
                                 status_code=error.status_code) from None

    # --------------------------------------------------------------- storage

    def cached_upload(self, cache_key: str) -> str | None:
        """The URL of content uploaded earlier in this process, if it is still fresh."""
        return self._upload_cache.get(self.hosts.upload, cache_key)

    def forget_upload(self, url: str) -> None:
        self._upload_cache.forget_url(url)

    async def upload(self, data: bytes, content_type: str, *, file_name: str | None = None,
                     cache_key: str | None = None) -> str:
        """Put bytes on fal's storage and return a URL fal can fetch; the same content is
        uploaded once per process (cached by content hash, per storage origin)."""
        return await self.upload_once(cache_key or content_key(data), lambda: (data, content_type),
                                      file_name=file_name)

    async def upload_once(self, cache_key: str, produce: Callable[[], tuple[bytes, str]], *,
                          file_name: str | None = None) -> str:
        """Like `upload`, for content made on demand: `produce()` -> (bytes, content type) runs
        in a worker thread only if `cache_key` was neither uploaded before nor is being uploaded
        right now (two nodes sharing a reference encode and upload it once)."""
        cached = self.cached_upload(cache_key)
        if cached is not None:
            return cached
        pending = self._uploads_in_flight.get(cache_key)
        if pending is None:
            pending = asyncio.ensure_future(self._produce_and_upload(cache_key, produce, file_name))
            self._uploads_in_flight[cache_key] = pending
            pending.add_done_callback(lambda _: self._uploads_in_flight.pop(cache_key, None))
        # Shielded: one waiter giving up (an interrupted node) must not fail the others.
        return await asyncio.shield(pending)

    async def _produce_and_upload(self, cache_key: str, produce: Callable[[], tuple[bytes, str]],
                                  file_name: str | None) -> str:
        data, content_type = await asyncio.to_thread(produce)
        file_name = file_name or f"{cache_key[:16]}{_extension(content_type)}"
        async with self._upload_slots:
            url = await self._upload_with_fallback(data, content_type, file_name)
        self._upload_cache.put(self.hosts.upload, cache_key, url)
        return url

    async def _upload_with_fallback(self, data: bytes, content_type: str, file_name: str) -> str:
        """fal's CDN route first (one request per file), then the documented initiate + PUT
        route, as fal's own clients do; a CDN route that failed is not tried again."""
        if self._cdn_route_works:
            try:
                return await self._upload_to_cdn(data, content_type, file_name)
            except AuthError:
                raise
            except FalError as error:
                self._cdn_route_works = False
                logger.info("CDN upload failed (%s); using fal's storage initiate route", error)
        return await self._upload_via_initiate(data, content_type, file_name)

    async def _upload_to_cdn(self, data: bytes, content_type: str, file_name: str) -> str:
        token = await self._cdn_token()
        body = await self._request_json(
            "POST", f"{self.hosts.upload}/files/upload", action="upload", content=data,
            authorization=token.header,
            headers={"Content-Type": content_type, "X-Fal-File-Name": file_name,
                     "X-Fal-Object-Lifecycle": _lifecycle_header()})
        return _url_field(body, "access_url", "upload")

    async def _cdn_token(self) -> StorageToken:
        async with self._token_lock:
            if self._storage_token is None or not self._storage_token.usable():
                body = await self._request_json(
                    "POST", f"{self.hosts.rest}/storage/auth/token", action="storage token",
                    params={"storage_type": "fal-cdn-v3"}, json={})
                self._storage_token = StorageToken(
                    token=str(body.get("token", "")), token_type=str(body.get("token_type") or "Bearer"),
                    expires_at=_parse_expiry(body.get("expires_at")))
            return self._storage_token

    async def _upload_via_initiate(self, data: bytes, content_type: str, file_name: str) -> str:
        body = await self._request_json(
            "POST", f"{self.hosts.rest}/storage/upload/initiate", action="upload",
            params={"storage_type": "fal-cdn-v3"},
            json={"file_name": file_name, "content_type": content_type},
            headers={"X-Fal-Object-Lifecycle-Preference": _lifecycle_header()})
        upload_url = _url_field(body, "upload_url", "upload")
        file_url = _url_field(body, "file_url", "upload")
        check_transport_security(upload_url, "upload")
        # A presigned URL carries its own permission: never send the key along.
        await self._request("PUT", upload_url, action="upload", content=data, authorization=NO_AUTH,
                            headers={"Content-Type": content_type})
        return file_url

    # ------------------------------------------------------------- downloads

    async def download(self, url: str, *, max_bytes: int | None = None,
                       expect_image: bool = False) -> bytes:
        """Bytes of an https URL or a data: URI, refusing more than `max_bytes`. Never sends the
        key: results live on public CDN hosts, and redirects are followed without credentials."""
        limit = max_bytes or self._max_download_bytes
        if is_data_uri(url):
            data, content_type = decode_data_uri(url, max_bytes=limit)
            _check_content_type(content_type, expect_image, url)
            return data
        for _ in range(MAX_REDIRECTS + 1):
            _check_download_url(url)
            response, data = await self._download_once(url, limit, expect_image)
            if response is None:
                return data
            url = str(response.url.join(response.headers["location"]))
        raise DownloadError(f"Download of {_short(url)} redirected more than {MAX_REDIRECTS} times")

    async def _download_once(self, url: str, limit: int,
                             expect_image: bool) -> tuple[httpx.Response | None, bytes]:
        """One GET with retries; returns (redirect response, b"") or (None, body)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        return response, b""
                    if response.is_success:
                        _check_content_type(response.headers.get("content-type", ""), expect_image, url)
                        return None, await _read_capped(response, limit, url)
                    await response.aread()
                    error: FalError = DownloadError(
                        f"Download of {_short(url)} failed with HTTP {response.status_code}",
                        status_code=response.status_code)
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    retryable = response.status_code in RETRYABLE_STATUS
            except httpx.TransportError as exc:
                error = DownloadError(f"Download of {_short(url)} failed: {_describe(exc)}")
                retry_after, retryable = None, True
            if not retryable or attempt >= self._retry.attempts:
                raise error
            await asyncio.sleep(self._retry.delay(attempt, retry_after))

    # ------------------------------------------------------------------ HTTP

    async def _request_json(self, method: str, url: str, *, action: str, idempotent: bool = True,
                            retry: RetryPolicy | None = None, **kwargs: Any) -> Any:
        """`_request`, then decode JSON; an unreadable body of a safe call is retried too."""
        policy = (retry or self._retry) if idempotent else NO_RETRY
        for attempt in range(1, policy.attempts + 1):
            response = await self._request(method, url, action=action, idempotent=idempotent,
                                           retry=policy, **kwargs)
            body = responses.json_body(response)
            if isinstance(body, dict):
                return body
            if not idempotent:
                raise SubmitUncertainError(
                    f"fal's answer to the {action} was not readable JSON; the job may be running, "
                    "so it was not re-sent: check https://fal.ai/dashboard/requests",
                    request_id=responses.fal_request_id(response))
            if attempt < policy.attempts:
                await asyncio.sleep(policy.delay(attempt))
        raise ServerError(f"fal's answer to the {action} was not readable JSON",
                          request_id=kwargs.get("request_id"))

    async def _request(self, method: str, url: str, *, action: str, idempotent: bool = True,
                       retry: RetryPolicy | None = None, request_id: str | None = None,
                       authorization: str | None = None, headers: Mapping[str, str] | None = None,
                       **kwargs: Any) -> httpx.Response:
        """One logical call with the retry policy; returns a 2xx response or raises a FalError."""
        policy = (retry or self._retry) if idempotent else NO_RETRY
        if authorization is None:
            authorization = self._key_header(url)
        all_headers = {**(headers or {}), **({"Authorization": authorization} if authorization else {})}
        for attempt in range(1, policy.attempts + 1):
            try:
                response = await self._http.request(method, url, headers=all_headers, **kwargs)
            except httpx.TransportError as exc:
                error = _transport_error(exc, action, idempotent, request_id)
                if not idempotent or attempt >= policy.attempts:
                    raise error from None
                logger.info("%s failed (%s); retrying", action, _describe(exc))
                await asyncio.sleep(policy.delay(attempt))
                continue
            logger.debug("%s %s -> %s", method, url, response.status_code)
            if response.is_success:
                return response
            if idempotent and response.status_code in RETRYABLE_STATUS and attempt < policy.attempts:
                await asyncio.sleep(policy.delay(attempt, parse_retry_after(response.headers.get("retry-after"))))
                continue
            error = responses.error_for_response(response, request_id=request_id, action=action)
            if not idempotent and response.status_code >= 500:
                raise SubmitUncertainError(
                    f"{error}. The job may or may not have been created; it was not re-sent to "
                    "avoid paying twice: check https://fal.ai/dashboard/requests before running again",
                    request_id=error.request_id, status_code=error.status_code) from None
            raise error
        raise AssertionError("unreachable: the loop returns or raises")

    def _key_header(self, url: str) -> str:
        """`Key <key>` for fal's API origins; nothing for any other host."""
        return f"Key {self._key}" if self.hosts.may_receive_key(url) else ""


async def _stop(task: asyncio.Future) -> None:
    task.cancel()
    try:
        await task
    except BaseException:  # the task's own outcome no longer matters; we are leaving
        pass


def _transport_error(exc: httpx.TransportError, action: str, idempotent: bool,
                     request_id: str | None) -> FalError:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        nothing_sent = " (nothing was sent)" if not idempotent else ""
        return ConnectionFailedError(
            f"Could not reach fal for the {action}{nothing_sent}: {_describe(exc)}; "
            "check the network or proxy settings", request_id=request_id)
    if not idempotent:
        return SubmitUncertainError(
            f"The connection broke during the {action} ({_describe(exc)}); the job may be running "
            "at fal, so it was not re-sent to avoid paying twice: check "
            "https://fal.ai/dashboard/requests before running again", request_id=request_id)
    return ServerError(f"The {action} failed after retries: {_describe(exc)}", request_id=request_id)


_PLAIN_TRANSPORT_ERRORS = {
    "ReadError": "the connection was reset while reading the answer",
    "WriteError": "the connection was reset while sending",
    "ReadTimeout": "no answer within the read timeout",
    "WriteTimeout": "sending took longer than the write timeout",
    "PoolTimeout": "no free connection within the pool timeout",
    "ConnectTimeout": "connecting took longer than the connect timeout",
}


def _describe(exc: BaseException) -> str:
    """A transport failure in words, e.g. "ReadError (the connection was reset ...)"."""
    name = type(exc).__name__
    text = str(exc).strip() or _PLAIN_TRANSPORT_ERRORS.get(name, "")
    return f"{name}: {text}" if text else name


def _url_field(body: Mapping[str, Any], field: str, action: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ServerError(f"fal's answer to the {action} had no {field}")
    return value


def _parse_expiry(value: Any) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time() + 300.0


def _lifecycle_header() -> str:
    return json.dumps({"expiration_duration_seconds": UPLOAD_LIFETIME_SECONDS})


def _extension(content_type: str) -> str:
    return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}.get(content_type, ".bin")


def _short(url: str) -> str:
    return url[:60] + "..." if len(url) > 63 else url


def _check_download_url(url: str) -> None:
    scheme = url.split(":", 1)[0].lower()
    host = httpx.URL(url).host if scheme in ("http", "https") else ""
    if scheme == "https" or (scheme == "http" and is_loopback_host(host)):
        return
    raise DownloadError(f"Refusing to download {_short(url)}: only https URLs (or local http) are fetched")


def _check_content_type(content_type: str, expect_image: bool, url: str) -> None:
    media = content_type.split(";")[0].strip().lower()
    if expect_image and media and not (media.startswith("image/") or media in (
            "application/octet-stream", "binary/octet-stream")):
        raise DownloadError(f"Expected an image from {_short(url)} but got {media}")


async def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise DownloadError(f"{_short(url)} is {int(declared) / 2**20:.1f} MiB, over the "
                            f"{limit / 2**20:.0f} MiB download cap")
    chunks, total = [], 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > limit:
            raise DownloadError(f"{_short(url)} is over the {limit / 2**20:.0f} MiB download cap")
        chunks.append(chunk)
    return b"".join(chunks)
