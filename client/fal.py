"""`FalClient`: fal's queue, storage and file downloads over one httpx connection pool."""
from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import httpx

from . import responses
from .credentials import resolve_key
from .data_uri import decode_data_uri, is_data_uri
from .errors import (AuthError, ConnectionFailedError, DownloadError, FalError, FalTimeoutError,
                     JobCancelledError, JobFailedError, ServerError, StartDeadlineError,
                     SubmitUncertainError, ValidationError)
from .hosts import FalHosts, check_transport_security, is_loopback_host
from .logs import logger
from .queue_types import (CancelOutcome, EndpointId, JobState, JobStatus, QueueUpdate,
                          RequestHandle)
from .redaction import mask_key
from .retry import NO_RETRY, RETRYABLE_STATUS, STATUS_RETRY, Backoff, RetryPolicy, should_retry
from .status_watch import PollGaps, StatusWatcher
from .storage import (SHARED_SERVED_FILES, SHARED_UPLOAD_CACHE, ServedFile, ServedFiles,
                      StorageToken, UploadCache, content_key, lifecycle_header_value,
                      storage_lifetime_seconds)

USER_AGENT = "fal-kontext (python)"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=60.0)
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 2**20
DEFAULT_UPLOAD_CONCURRENCY = 4
CANCEL_CHECK_INTERVAL = 0.1  # how often `run` looks at should_cancel and the deadline
CANCEL_REQUEST_TIMEOUT = 10.0  # a cancel must never hold up an interrupt for long
SUBMIT_GRACE_SECONDS = 15.0  # how long an interrupted submit may finish so its job can be cancelled
# `run` without a timeout: how long a job may wait for a runner at fal (its start deadline), and
# so how long a rate-limited submit (429: fal took nothing) is waited out and sent again.
DEFAULT_START_DEADLINE_SECONDS = 600.0
LOG_TAIL_LINES = 5
MAX_REDIRECTS = 5
_CONNECT_RETRIES = 2  # httpx retries only failures to connect: safe even for a paid submit
NO_AUTH = ""  # `authorization=NO_AUTH`: send no Authorization header at all
START_DEADLINE_HEADER = "X-Fal-Request-Timeout"

T = TypeVar("T")
OnUpdate = Callable[[QueueUpdate], None]
ShouldCancel = Callable[[], bool]


class FalClient:
    """Async fal client; use as `async with FalClient() as fal:`. Key and hosts default to env."""

    def __init__(self, key: str | None = None, *, base_url: str | None = None,
                 hosts: FalHosts | None = None, retry: RetryPolicy = RetryPolicy(),
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, max_connections: int = 32,
                 upload_cache: UploadCache = SHARED_UPLOAD_CACHE,
                 served_files: ServedFiles = SHARED_SERVED_FILES,
                 upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
                 max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
                 storage_lifetime: int | None | str = "env", use_status_stream: bool = True,
                 poll_gaps: Callable[[], PollGaps] = PollGaps,
                 transport: httpx.AsyncBaseTransport | None = None,
                 environ: Mapping[str, str] | None = None):
        import os
        environ = os.environ if environ is None else environ
        self.hosts = hosts or (FalHosts.single_origin(base_url) if base_url else FalHosts.from_env(environ))
        self._key = resolve_key(key, environ)
        self._retry = retry
        self._upload_cache = upload_cache
        self._served_files = served_files
        self._upload_slots = asyncio.Semaphore(upload_concurrency)
        self._max_download_bytes = max_download_bytes
        self.storage_lifetime = (storage_lifetime_seconds(environ) if storage_lifetime == "env"
                                 else storage_lifetime)
        self._use_status_stream = use_status_stream
        self._poll_gaps = poll_gaps
        self._storage_token: StorageToken | None = None
        self._cdn_route_works = True
        self._uploads_in_flight: dict[str, asyncio.Future] = {}
        self._token_lock = asyncio.Lock()
        self._start_deadlines: dict[str, float] = {}
        self._uncertain_submits: dict[str, str] = {}  # request id -> what went wrong at submit
        # What a sibling client (another thread's event loop) needs to act for the same account.
        self._settings = dict(key=self._key, hosts=self.hosts, retry=retry, timeout=timeout,
                             max_connections=max_connections, upload_cache=upload_cache,
                             served_files=served_files,
                             max_download_bytes=max_download_bytes,
                             storage_lifetime=self.storage_lifetime,
                             use_status_stream=use_status_stream, poll_gaps=poll_gaps,
                             # A scripted transport holds no connections, so siblings share it.
                             transport=transport if isinstance(transport, httpx.MockTransport)
                             else None)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT},
            transport=transport or httpx.AsyncHTTPTransport(retries=_CONNECT_RETRIES, limits=limits))

    @property
    def identity(self) -> tuple:
        """Equal for clients that act for the same account, hosts and policies."""
        settings = self._settings
        return (settings["key"], settings["hosts"], settings["retry"], repr(settings["timeout"]),
                settings["max_download_bytes"], settings["storage_lifetime"],
                settings["use_status_stream"], settings["poll_gaps"], id(settings["upload_cache"]),
                id(settings["served_files"]), id(settings["transport"]))

    def sibling(self) -> "FalClient":
        """A new client with this one's key, hosts and policies, for use in another event loop."""
        return FalClient(**self._settings)

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    def auth_headers(self, url: str) -> dict[str, str]:
        """The Authorization header for `url`: the key for fal's API origins, nothing elsewhere."""
        header = self._key_header(url)
        return {"Authorization": header} if header else {}

    def start_deadline_of(self, request_id: str) -> float | None:
        return self._start_deadlines.get(request_id)

    def unknown_request_message(self, request_id: str) -> str:
        """Why fal may not know a request id: an unusable submit answer, or retention."""
        if request_id in self._uncertain_submits:
            return ("fal's answer to the submit was unusable and fal has no job under the id it "
                    "named, so nothing was created or billed; run again")
        return ("fal does not know this request (it was never created, or its result is past "
                "fal's retention time)")

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
                     headers: Mapping[str, str] | None = None, *,
                     start_deadline: float | None = None,
                     on_request_id: Callable[[str], None] | None = None) -> RequestHandle:
        """Queue one job. Never re-sent once fal may have taken it (no double billing); a 429
        (fal took nothing) is waited out within `start_deadline`. The job carries that deadline
        to fal (X-Fal-Request-Timeout): if no runner starts it in time, fal drops it unbilled.
        `on_request_id` hears the id the moment fal names it (header or body), before the body
        is parsed. If the caller is cancelled mid-request, the submit still completes and the
        job is cancelled, so no job runs on the account without a handle to stop it."""
        submitting = asyncio.ensure_future(self._submit(endpoint_id, arguments, headers,
                                                        start_deadline, on_request_id))
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
                      headers: Mapping[str, str] | None, start_deadline: float | None,
                      on_request_id: Callable[[str], None] | None) -> RequestHandle:
        endpoint = EndpointId.parse(endpoint_id)
        url = f"{self.hosts.queue}/{endpoint.submit_path}"
        all_headers = {**self._submit_headers(start_deadline), **(headers or {})}
        deadline = time.monotonic() + start_deadline if start_deadline else None
        try:
            body = await self._request_json("POST", url, action="submit", idempotent=False,
                                            json=dict(arguments), headers=all_headers,
                                            deadline=deadline, on_response=_announce_id(on_request_id))
        except SubmitUncertainError as error:
            if not error.request_id:
                raise
            # fal named the job (x-fal-request-id) but its answer was unusable: follow the job by
            # its id rather than lose it; a job that does not exist shows up as NOT_FOUND later.
            logger.warning("fal's answer to the submit was unusable (%s); following request %s "
                           "by its id", error, error.request_id)
            body = {"request_id": error.request_id}
            self._uncertain_submits[error.request_id] = error.message
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise SubmitUncertainError(
                "fal accepted the submit but its answer had no request id; the job may be "
                "running, so it was not re-sent: check https://fal.ai/dashboard/requests")
        if start_deadline:
            self._start_deadlines[request_id] = start_deadline
        if on_request_id is not None:
            on_request_id(request_id)
        handle = self._handle(endpoint, request_id, body)
        logger.info("submitted %s as fal request %s", endpoint_id, request_id)
        return handle

    def _submit_headers(self, start_deadline: float | None) -> dict[str, str]:
        headers = {}
        if start_deadline:
            # fal takes whole seconds; round up so the deadline is never shorter than asked.
            headers[START_DEADLINE_HEADER] = str(max(1, math.ceil(start_deadline)))
        if self.storage_lifetime:
            headers["X-Fal-Object-Lifecycle-Preference"] = lifecycle_header_value(self.storage_lifetime)
        return headers

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

    def watch(self, handle: RequestHandle, *, logs: bool = True) -> StatusWatcher:
        """A watcher whose `statuses()` yields the job's status on every change until COMPLETED
        (status stream, or gentle polling where there is none); it rides out transient errors
        for as long as the caller keeps waiting."""
        patient = RetryPolicy(attempts=STATUS_RETRY.attempts, base_delay=self._retry.base_delay,
                              max_delay=self._retry.max_delay,
                              max_retry_after=self._retry.max_retry_after)
        return StatusWatcher(self, handle, logs=logs, retry=patient,
                             use_stream=self._use_status_stream, poll_gaps=self._poll_gaps())

    async def result(self, handle: RequestHandle, status: JobStatus | None = None) -> dict[str, Any]:
        """The job's output; a job that failed raises its error here (fal reports it this way).
        Pass the COMPLETED status when there is one: a failed job's error is then not re-asked."""
        if status is None or status.error is None:
            return await self._request_json("GET", handle.response_url, action="result fetch",
                                            request_id=handle.request_id)
        try:
            return await self._request_json("GET", handle.response_url, action="result fetch",
                                            request_id=handle.request_id, retry=NO_RETRY)
        except (ValidationError, AuthError, StartDeadlineError):
            raise
        except FalError as error:
            kind = f" [{status.error_type}]" if status.error_type else ""
            raise JobFailedError(f"The job failed at fal{kind}: {status.error}",
                                 request_id=handle.request_id, status_code=error.status_code) from None

    async def cancel(self, handle: RequestHandle) -> CancelOutcome:
        """Ask fal to stop the job; says whether it was stopped or had already finished."""
        try:
            response = await self._request("PUT", handle.cancel_url, action="cancel",
                                           request_id=handle.request_id,
                                           retry=RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0))
        except FalError as error:
            if error.status_code == 400:
                return CancelOutcome.ALREADY_COMPLETED
            if error.status_code == 404:
                return CancelOutcome.NOT_FOUND
            raise
        said = responses.json_body(response)
        if isinstance(said, dict) and said.get("status") == CancelOutcome.ALREADY_COMPLETED.value:
            return CancelOutcome.ALREADY_COMPLETED
        return CancelOutcome.REQUESTED

    async def run(self, endpoint_id: str, arguments: Mapping[str, Any], *,
                  on_update: OnUpdate | None = None, timeout: float | None = None,
                  should_cancel: ShouldCancel | None = None,
                  on_submit: Callable[[RequestHandle], None] | None = None) -> dict[str, Any]:
        """Submit, wait (reporting progress), fetch the result. A job we stop waiting for for any
        reason (timeout, should_cancel, task cancellation) is cancelled at fal first. The job's
        start deadline is `timeout`, or DEFAULT_START_DEADLINE_SECONDS without one."""
        handle = await self.submit(endpoint_id, arguments,
                                   start_deadline=timeout or DEFAULT_START_DEADLINE_SECONDS)
        if on_submit is not None:
            on_submit(handle)
        return await self.wait_for_result(handle, on_update=on_update, timeout=timeout,
                                          should_cancel=should_cancel)

    async def wait_for_result(self, handle: RequestHandle, *, on_update: OnUpdate | None = None,
                              timeout: float | None = None,
                              should_cancel: ShouldCancel | None = None) -> dict[str, Any]:
        """Wait for the job and fetch its output. Every way of giving up (timeout, should_cancel,
        task cancellation) takes the one path: stop waiting, cancel the job at fal."""
        started = time.monotonic()
        waiter = asyncio.ensure_future(self.follow(handle, on_update=on_update, started=started))
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=CANCEL_CHECK_INTERVAL)
                if done:
                    return waiter.result()
                if should_cancel is not None and should_cancel():
                    outcome = await self._give_up(waiter, handle)
                    raise JobCancelledError(
                        cancel_confirmed=outcome.confirmed, request_id=handle.request_id,
                        finished_and_billed=outcome is CancelOutcome.ALREADY_COMPLETED)
                if timeout is not None and time.monotonic() - started >= timeout:
                    outcome = await self._give_up(waiter, handle)
                    if outcome is CancelOutcome.ALREADY_COMPLETED:
                        return await self.result(handle)  # it finished and was paid for: deliver it
                    raise FalTimeoutError(timeout, cancel_confirmed=outcome.confirmed,
                                          request_id=handle.request_id)
        except asyncio.CancelledError:
            await self._give_up(waiter, handle)
            raise

    async def _give_up(self, waiter: asyncio.Future, handle: RequestHandle) -> CancelOutcome:
        await _stop(waiter)
        return await self.cancel_quietly(handle)

    async def follow(self, handle: RequestHandle, *, on_update: OnUpdate | None = None,
                     started: float | None = None) -> dict[str, Any]:
        """Watch the job to COMPLETED, reporting each change, then fetch its output."""
        started = time.monotonic() if started is None else started
        seen_logs = 0
        log_lines: list[str] = []
        async for status in self.watch(handle).statuses():
            if len(status.logs) < seen_logs:
                seen_logs = 0  # the server trimmed its log list; show what it has now
            new_lines = tuple(str(entry.get("message", "")) for entry in status.logs[seen_logs:])
            seen_logs = len(status.logs)
            log_lines = (log_lines + list(new_lines))[-LOG_TAIL_LINES:]
            if on_update is not None:
                on_update(QueueUpdate(handle.request_id, status.state, status.queue_position,
                                      new_lines, time.monotonic() - started))
            if status.state is JobState.COMPLETED:
                try:
                    return await self.result(handle, status)
                except JobFailedError as error:
                    raise JobFailedError(error.message, logs_tail=log_lines,
                                         request_id=handle.request_id,
                                         status_code=error.status_code) from None
        raise ServerError("fal's status ended without the job completing", request_id=handle.request_id)

    async def cancel_quietly(self, handle: RequestHandle) -> CancelOutcome:
        """Cancel without raising: the caller is already on its way out with its own error."""
        try:
            outcome = await asyncio.wait_for(self.cancel(handle), CANCEL_REQUEST_TIMEOUT)
        except (FalError, asyncio.TimeoutError) as error:
            logger.warning("cancel of fal request %s was not confirmed: %s", handle.request_id, error)
            return CancelOutcome.UNCONFIRMED
        if outcome is CancelOutcome.ALREADY_COMPLETED:
            # The caller may only show "interrupted" (ComfyUI): the bill must not go unmentioned.
            logger.warning("fal request %s had already finished when it was cancelled; if it "
                           "produced a result it was billed, and the result stays in "
                           "https://fal.ai/dashboard/requests", handle.request_id)
        else:
            logger.info("cancel of fal request %s: %s", handle.request_id, outcome.value)
        return outcome

    # --------------------------------------------------------------- storage

    def cached_upload(self, cache_key: str) -> str | None:
        """The URL of content uploaded earlier in this process, if it is still fresh (well
        inside the lifetime fal was asked to keep it)."""
        max_age = self.storage_lifetime / 2 if self.storage_lifetime else None
        return self._upload_cache.get(self.hosts.upload, cache_key, max_age=max_age)

    def forget_unfetchable(self, url: str) -> None:
        """fal could not fetch `url` (an earlier upload, or a result it served): never hand it
        to fal again in this process."""
        self._upload_cache.forget_url(url)
        self._served_files.refuse(url)

    def served_url(self, identity: str) -> str | None:
        """The URL of a file this fal serves whose decoded pixels have this identity (an earlier
        result), while there is time enough left to hand it back to fal."""
        return self._served_files.get(self.hosts.queue, identity)

    def remember_served(self, identity: str, served: ServedFile) -> None:
        """Remember that `served` (a result fal serves) decodes to pixels with this identity."""
        self._served_files.put(identity, served)

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
        route, as fal's own clients do; a CDN route that failed is not tried again. A rejected
        storage token (401/403 from the CDN) is not the API key's fault: a fresh token is tried
        once before falling back."""
        if self._cdn_route_works:
            try:
                return await self._upload_to_cdn(data, content_type, file_name)
            except _TokenRejected:
                self._storage_token = None
                try:
                    return await self._upload_to_cdn(data, content_type, file_name)
                except (_TokenRejected, FalError) as error:
                    self._cdn_route_works = False
                    logger.info("CDN upload refused a fresh storage token (%s); using fal's "
                                "storage initiate route", error)
            except _TokenRouteFailed as failure:
                if isinstance(failure.error, AuthError):
                    raise failure.error from None  # the key itself was refused
                self._cdn_route_works = False
                logger.info("storage token not available (%s); using fal's storage initiate "
                            "route", failure.error)
            except FalError as error:
                self._cdn_route_works = False
                logger.info("CDN upload failed (%s); using fal's storage initiate route", error)
        return await self._upload_via_initiate(data, content_type, file_name)

    async def _upload_to_cdn(self, data: bytes, content_type: str, file_name: str) -> str:
        token = await self._cdn_token()
        upload_origin = check_transport_security(token.base_url or self.hosts.upload, "upload")
        try:
            body = await self._request_json(
                "POST", f"{upload_origin}/files/upload", action="upload", content=data,
                authorization=token.header,
                headers={"Content-Type": content_type, "X-Fal-File-Name": file_name,
                         **self._lifecycle_headers()})
        except AuthError as error:
            raise _TokenRejected(error) from None
        return _url_field(body, "access_url", "upload")

    def _lifecycle_headers(self) -> dict[str, str]:
        """Both names fal reads on upload routes (its own clients send both)."""
        if not self.storage_lifetime:
            return {}
        value = lifecycle_header_value(self.storage_lifetime)
        return {"X-Fal-Object-Lifecycle": value, "X-Fal-Object-Lifecycle-Preference": value}

    async def _cdn_token(self) -> StorageToken:
        async with self._token_lock:
            if self._storage_token is None or not self._storage_token.usable():
                try:
                    body = await self._request_json(
                        "POST", f"{self.hosts.rest}/storage/auth/token", action="storage token",
                        params={"storage_type": "fal-cdn-v3"}, json={})
                except FalError as error:
                    raise _TokenRouteFailed(error) from None
                base_url = body.get("base_url")
                self._storage_token = StorageToken(
                    token=str(body.get("token", "")), token_type=str(body.get("token_type") or "Bearer"),
                    expires_at=_parse_expiry(body.get("expires_at")),
                    base_url=base_url.rstrip("/") if isinstance(base_url, str) and base_url else None)
            return self._storage_token

    async def _upload_via_initiate(self, data: bytes, content_type: str, file_name: str) -> str:
        body = await self._request_json(
            "POST", f"{self.hosts.rest}/storage/upload/initiate", action="upload",
            params={"storage_type": "fal-cdn-v3"},
            json={"file_name": file_name, "content_type": content_type},
            headers=self._lifecycle_headers())
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
        """One GET with retries; returns (redirect response, b"") or (None, body). A paid result
        is worth repeating for every transient failure, content-type surprises included."""
        async def attempt() -> tuple[httpx.Response | None, bytes]:
            try:
                async with self._http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        return response, b""
                    if response.is_success:
                        try:
                            _check_content_type(response.headers.get("content-type", ""),
                                                expect_image, url)
                        except DownloadError as error:
                            raise _Retryable(error) from None
                        return None, await _read_capped(response, limit, url)
                    await response.aread()
                    error = DownloadError(f"Download of {_short(url)} failed with HTTP "
                                          f"{response.status_code}", status_code=response.status_code)
                    if response.status_code in RETRYABLE_STATUS:
                        raise _Retryable(error, responses.retry_after(response))
                    raise error
            except httpx.TransportError as exc:
                raise _Retryable(DownloadError(f"Download of {_short(url)} failed: {_describe(exc)}")) from None

        return await self._with_retries(attempt, policy=self._retry, action="download")

    # ------------------------------------------------------------------ HTTP

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], *, policy: RetryPolicy,
                            action: str, deadline: float | None = None) -> T:
        """The one retry loop: repeat `attempt` while it raises _Retryable, with the policy's
        backoff (or the server's Retry-After), never past `deadline` (time.monotonic())."""
        backoff = Backoff(policy)
        while True:
            try:
                return await attempt()
            except _Retryable as retryable:
                delay = backoff.failed(retryable.retry_after)
                out_of_time = deadline is not None and time.monotonic() + delay > deadline
                if backoff.exhausted or out_of_time:
                    raise retryable.error from None
                logger.info("%s failed (%s); retrying in %.1f s", action, retryable.error, delay)
                await asyncio.sleep(delay)

    async def _request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """`_request` whose answer must be a JSON object; an unreadable answer to a safe call is
        retried like any other transient failure (same loop, same budget)."""
        return await self._request(method, url, expect_json=True, **kwargs)

    async def _request(self, method: str, url: str, *, action: str, idempotent: bool = True,
                       retry: RetryPolicy | None = None, request_id: str | None = None,
                       authorization: str | None = None, headers: Mapping[str, str] | None = None,
                       expect_json: bool = False, deadline: float | None = None,
                       on_response: Callable[[httpx.Response], None] | None = None,
                       **kwargs: Any) -> Any:
        """One logical call: a 2xx response (or its JSON object with `expect_json`), or a typed
        FalError. A call that is not idempotent (submit) is repeated only when fal provably
        took nothing (a 429, or fal's own "retryable" verdict)."""
        policy = retry or self._retry
        if not idempotent:
            policy = RetryPolicy(attempts=1_000 if deadline else 1, base_delay=policy.base_delay,
                                 max_delay=policy.max_delay, max_retry_after=policy.max_retry_after)
        if authorization is None:
            authorization = self._key_header(url)
        all_headers = {**(headers or {}), **({"Authorization": authorization} if authorization else {})}

        async def attempt() -> Any:
            # Streamed, so fal's request id (a header) is known even if the body then breaks.
            response = await self._send(method, url, all_headers, action, idempotent, request_id,
                                        on_response, kwargs)
            if response.is_success:
                return self._successful(response, action, idempotent, expect_json, request_id)
            error = responses.error_for_response(
                response, request_id=request_id, action=action,
                start_deadline=self.start_deadline_of(request_id) if request_id else None)
            if should_retry(response.status_code, response.headers, idempotent=idempotent):
                raise _Retryable(error, responses.retry_after(response))
            if not idempotent and response.status_code >= 500:
                raise SubmitUncertainError(
                    f"{error}. The job may or may not have been created; it was not re-sent to "
                    "avoid paying twice: check https://fal.ai/dashboard/requests before running again",
                    request_id=error.request_id, status_code=error.status_code) from None
            raise error

        return await self._with_retries(attempt, policy=policy, action=action, deadline=deadline)

    async def _send(self, method: str, url: str, headers: Mapping[str, str], action: str,
                    idempotent: bool, request_id: str | None,
                    on_response: Callable[[httpx.Response], None] | None,
                    kwargs: Mapping[str, Any]) -> httpx.Response:
        """One request, its body read; transport failures become typed (and retryable) errors."""
        def failed(exc: httpx.TransportError, known_id: str | None) -> BaseException:
            error = _transport_error(exc, action, idempotent, known_id)
            return _Retryable(error) if idempotent else error

        request = self._http.build_request(method, url, headers=headers, **kwargs)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise failed(exc, request_id) from None
        try:
            logger.debug("%s %s -> %s", method, url, response.status_code)
            if on_response is not None:
                on_response(response)
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise failed(exc, request_id or responses.fal_request_id(response)) from None
        finally:
            await response.aclose()
        return response

    @staticmethod
    def _successful(response: httpx.Response, action: str, idempotent: bool, expect_json: bool,
                    request_id: str | None) -> Any:
        if not expect_json:
            return response
        body = responses.json_body(response)
        if isinstance(body, dict):
            return body
        if not idempotent:
            raise SubmitUncertainError(
                f"fal's answer to the {action} was not readable JSON; the job may be running, "
                "so it was not re-sent: check https://fal.ai/dashboard/requests",
                request_id=responses.fal_request_id(response))
        raise _Retryable(ServerError(f"fal's answer to the {action} was not readable JSON",
                                     request_id=request_id))

    def _key_header(self, url: str) -> str:
        """`Key <key>` for fal's API origins; nothing for any other host."""
        return f"Key {self._key}" if self.hosts.may_receive_key(url) else ""


class _Retryable(Exception):
    """An attempt failed in a way worth repeating; carries the error to raise if it is the last."""

    def __init__(self, error: FalError, retry_after: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _TokenRejected(Exception):
    """The CDN refused the storage token (not the API key)."""

    def __init__(self, error: FalError):
        super().__init__(str(error))
        self.error = error


class _TokenRouteFailed(Exception):
    """The storage-token route failed; the caller decides between falling back and raising."""

    def __init__(self, error: FalError):
        super().__init__(str(error))
        self.error = error


def _announce_id(on_request_id: Callable[[str], None] | None) -> Callable[[httpx.Response], None] | None:
    """A response hook passing x-fal-request-id on the moment the answer's headers arrive."""
    if on_request_id is None:
        return None

    def hook(response: httpx.Response) -> None:
        request_id = responses.fal_request_id(response)
        if request_id and response.is_success:
            on_request_id(request_id)
    return hook


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
