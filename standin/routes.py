"""The routes of the three origins: fal's queue + storage API, the blocking run host, the CDN.

Each route takes (state, request, params) and returns a Reply; the handler does the I/O.
"""
from __future__ import annotations

import json
import math
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .billing import BilledJob
from .generation import planned_failure
from .jobs import COMPLETED, IN_QUEUE, POLICY_VIOLATION, START_TIMEOUT, Job, JobFailure
from .records import RecordedRequest
from .responses import Reply, StreamReply, flat_error, json_reply, not_found
from .state import State
from .storage import TOKEN_LIFETIME_SECONDS, FileStore
from .validation import parse_body

Route = Callable[[State, RecordedRequest, dict[str, str]], "Reply | StreamReply"]
REQUEST_ID_HEADER = "x-fal-request-id"
NAMESPACES = ("workflows", "comfy")  # fal keeps these as a prefix of owner/alias
STREAM_POLL_SECONDS = 0.05
START_TIMEOUT_HEADER = "x-fal-request-timeout"
# Uploads to the CDN read X-Fal-Object-Lifecycle; initiate and inference requests read
# X-Fal-Object-Lifecycle-Preference (fal_client sends both names on uploads).
LIFECYCLE_HEADER = "x-fal-object-lifecycle"
LIFECYCLE_PREFERENCE_HEADER = "x-fal-object-lifecycle-preference"
MIN_START_TIMEOUT_SECONDS = 0.1  # fal's documented minimum (the SDKs insist on more than 1 s)

_REQUEST_PATH = re.compile(
    r"^/(?P<app>.+?)/requests/(?P<request_id>[^/]+)(?P<tail>/status/stream|/status|/cancel)?/?$")


# --- routing -----------------------------------------------------------------------------
def match(origin: str, method: str, path: str) -> tuple[str | None, Route | None, dict[str, str]]:
    """(route name, route, path params) for a request; (None, None, {}) when nothing matches."""
    method = "GET" if method == "HEAD" else method
    if origin == "cdn":
        if method == "POST" and path == "/files/upload":  # the storage token's base_url
            return "upload", upload, {}
        file_id = FileStore.parse_path(path)
        return ("file", serve_file, {"file_id": file_id}) if method == "GET" and file_id else _NO_ROUTE
    if origin == "run":
        return ("run", run, {"endpoint_id": path.strip("/")}) if method == "POST" else _NO_ROUTE
    return _match_api(method, path)


_NO_ROUTE: tuple[None, None, dict[str, str]] = (None, None, {})


def _match_api(method: str, path: str) -> tuple[str | None, Route | None, dict[str, str]]:
    if (method, path) in _STORAGE_ROUTES:
        name, route = _STORAGE_ROUTES[(method, path)]
        return name, route, {}
    if method == "PUT" and path.startswith("/storage/put/"):
        return "put_upload", put_upload, {"file_id": path.rsplit("/", 1)[-1]}
    found = _REQUEST_PATH.match(path)
    if found:
        params = {"app": found["app"], "request_id": found["request_id"]}
        tail = found["tail"] or ""
        named = {("GET", ""): ("result", result), ("GET", "/status"): ("status", status),
                 ("GET", "/status/stream"): ("status_stream", status_stream),
                 ("PUT", "/cancel"): ("cancel", cancel)}.get((method, tail))
        return (named[0], named[1], params) if named else _NO_ROUTE
    if method == "POST" and path.strip("/"):
        return "submit", submit, {"endpoint_id": path.strip("/")}
    return _NO_ROUTE


# --- helpers -----------------------------------------------------------------------------
def app_path(endpoint_id: str) -> str:
    """owner/alias of an endpoint id: the part queue URLs keep (the sub-path is dropped)."""
    parts = endpoint_id.split("/")
    keep = 3 if parts[0] in NAMESPACES else 2
    return "/".join(parts[:keep])


def job_urls(base_url: str, job: Job) -> dict[str, str]:
    response_url = f"{base_url}/{app_path(job.endpoint_id)}/requests/{job.request_id}"
    return {"response_url": response_url, "status_url": f"{response_url}/status",
            "cancel_url": f"{response_url}/cancel"}


def _key_refusal(state: State, request: RecordedRequest) -> Reply | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme == "Key" and key and (state.api_key is None or key == state.api_key):
        return None
    return json_reply(401, {"detail": "Invalid key"})


def _find_job(state: State, params: dict[str, str]) -> Job | None:
    job = state.jobs.get(params["request_id"])
    # Lenient like the brief asks: owner/alias (fal's form) or the full endpoint id.
    if job is None or params["app"] not in (app_path(job.endpoint_id), job.endpoint_id):
        return None
    # Past fal's retention window a request is answered like one that never existed.
    return None if state.forgotten(job, time.monotonic()) else job


def _authorized_job(state: State, request: RecordedRequest, params: dict[str, str]) -> Job | Reply:
    """The job a request-id route names, or the reply refusing it (bad key, unknown id)."""
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    job = _find_job(state, params)
    return job if job is not None else not_found("Request not found")


def _wants_logs(request: RecordedRequest) -> bool:
    return request.query.get("logs", "0").strip().lower() in ("1", "true", "yes")


def status_payload(state: State, job: Job, now: float, with_logs: bool) -> dict[str, Any]:
    current = job.status_at(now)
    payload: dict[str, Any] = {"status": current, "request_id": job.request_id,
                               **job_urls(state.base_url, job)}
    if current == IN_QUEUE:
        payload["queue_position"] = state.jobs.queue_position(job, now)
        return payload
    payload["logs"] = job.logs_at(now) if with_logs else None
    if current == COMPLETED:
        payload["metrics"] = {"inference_time": job.inference_time()}
        outcome = job.outcome()
        if isinstance(outcome, JobFailure):
            payload["error"] = outcome.message
            payload["error_type"] = outcome.error_type
    return payload


def _with_id(reply: Reply, request_id: str) -> Reply:
    reply.headers[REQUEST_ID_HEADER] = request_id
    return reply


def _start_timeout_status(state: State, job: Job, now: float) -> Reply | None:
    """In "status" mode a job dropped at its start deadline answers its status with fal's 504."""
    if state.start_timeout_answer == "status" and job.dropped_at is not None \
            and not job.cancelled and now >= job.dropped_at:
        return _with_id(START_TIMEOUT.reply(), job.request_id)
    return None


def _start_timeout(request: RecordedRequest) -> float | None | Reply:
    """Seconds from X-Fal-Request-Timeout; None without it; a 400 bad_request when malformed."""
    raw = request.headers.get(START_TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= MIN_START_TIMEOUT_SECONDS:
        return flat_error(400, f"Invalid X-Fal-Request-Timeout header: {raw!r} (seconds, more "
                               f"than {MIN_START_TIMEOUT_SECONDS})", "bad_request")
    return seconds


def _lifetime(request: RecordedRequest, *headers: str) -> float | None | Reply:
    """expiration_duration_seconds of the first lifecycle header present; None without one (or
    with a null duration: keep for good); a 400 bad_request when it is not fal's JSON shape."""
    for header in headers:
        raw = request.headers.get(header)
        if raw is None:
            continue
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        seconds = payload.get("expiration_duration_seconds") if isinstance(payload, dict) else "?"
        if seconds is None:
            return None
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            return flat_error(400, f"Invalid {header} header: expected a JSON object with a "
                                   "positive integer expiration_duration_seconds", "bad_request")
        return float(seconds)
    return None


# --- queue routes ------------------------------------------------------------------------
def submit(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    endpoint_id = params["endpoint_id"]
    start_timeout = _start_timeout(request)
    if isinstance(start_timeout, Reply):
        return start_timeout
    output_lifetime = _lifetime(request, LIFECYCLE_PREFERENCE_HEADER)
    if isinstance(output_lifetime, Reply):
        return output_lifetime
    prepared = state.generator.prepare(endpoint_id, request.body)
    if isinstance(prepared, Reply):
        return prepared
    prepared.output_lifetime = output_lifetime
    now = time.monotonic()
    job = Job(str(uuid.uuid4()), endpoint_id, prepared.arguments, now, time.time(),
              state.queue_delay, state.processing_delay, prepared.num_images,
              [image.size for image in prepared.references],
              start_deadline=None if start_timeout is None else now + start_timeout,
              usd=prepared.usd, megapixels=prepared.billed_megapixels)
    failure = planned_failure(prepared, state.failures)
    state.jobs.add(job)
    if failure:
        job.finish_rendering(now, None, failure)
    else:
        state.generator.start_render(job, prepared)
    payload = {"status": IN_QUEUE, "request_id": job.request_id, **job_urls(state.base_url, job),
               "queue_position": state.jobs.queue_position(job, now)}
    return json_reply(200, payload, {REQUEST_ID_HEADER: job.request_id})


def status(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    job = _authorized_job(state, request, params)
    if not isinstance(job, Job):
        return job
    now = time.monotonic()
    dropped = _start_timeout_status(state, job, now)
    if dropped:
        return dropped
    payload = status_payload(state, job, now, _wants_logs(request))
    return _with_id(json_reply(200, payload), job.request_id)


def status_stream(state: State, request: RecordedRequest,
                  params: dict[str, str]) -> Reply | StreamReply:
    job = _authorized_job(state, request, params)
    if not isinstance(job, Job):
        return job
    dropped = _start_timeout_status(state, job, time.monotonic())
    if dropped:
        return dropped
    with_logs = _wants_logs(request)
    keepalive = state.stream_keepalive

    def events() -> Any:
        last: dict[str, Any] | None = None
        last_sent = time.monotonic()
        while not state.stopping.is_set():
            now = time.monotonic()
            if _start_timeout_status(state, job, now):
                return  # "status" mode: the stream ends; the next status call answers 504
            payload = status_payload(state, job, now, with_logs)
            if payload != last:  # one event per change of state, position or logs
                yield f"data: {json.dumps(payload)}\n\n".encode()
                last, last_sent = payload, now
            elif now - last_sent >= keepalive:
                yield b": keep-alive\n\n"  # like fal: proxies must not time the stream out
                last_sent = now
            if payload["status"] == COMPLETED:
                return  # fal closes the stream after the COMPLETED event
            state.stopping.wait(_until_next_event(job, now, min(STREAM_POLL_SECONDS, keepalive)))

    return StreamReply(events(), headers={REQUEST_ID_HEADER: job.request_id,
                                          "cache-control": "no-cache"})


def _until_next_event(job: Job, now: float, poll: float) -> float:
    """How long the stream sleeps: one poll, or less when the job's completion time is known,
    so COMPLETED goes out when it happens (fal pushes it) and not up to a poll later."""
    finish = job.finish_time()
    return min(poll, finish - now) if finish is not None and finish > now else poll


def result(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    job = _authorized_job(state, request, params)
    if not isinstance(job, Job):
        return job
    if job.status_at(time.monotonic()) != COMPLETED:
        return _with_id(json_reply(400, {"detail": "Request is still in progress"}), job.request_id)
    outcome = job.outcome()
    reply = outcome.reply() if isinstance(outcome, JobFailure) else json_reply(200, outcome)
    return _with_id(reply, job.request_id)


def cancel(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    job = _find_job(state, params)
    if job is None:
        return json_reply(404, {"status": "NOT_FOUND"})
    if job.cancel(time.monotonic(), honour_in_progress=not state.ignore_cancel_in_progress):
        return _with_id(json_reply(202, {"status": "CANCELLATION_REQUESTED"}), job.request_id)
    return _with_id(json_reply(400, {"status": "ALREADY_COMPLETED"}), job.request_id)


# --- storage routes ----------------------------------------------------------------------
def token(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    expires = datetime.now(timezone.utc) + timedelta(seconds=TOKEN_LIFETIME_SECONDS)
    payload = {"token": state.store.issue_token(time.monotonic()), "token_type": "Bearer",
               "expires_at": expires.isoformat()}
    base_url = {"cdn": state.cdn_url, "api": state.base_url}.get(
        state.token_base_url or "", state.token_base_url)
    if base_url:
        payload["base_url"] = base_url  # where fal's CDN takes uploads with this token
    return json_reply(200, payload)


def upload(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.store.token_valid(value.strip(), time.monotonic()):
        return json_reply(401, {"detail": "Invalid token"})
    lifetime = _lifetime(request, LIFECYCLE_HEADER, LIFECYCLE_PREFERENCE_HEADER)
    if isinstance(lifetime, Reply):
        return lifetime
    content_type = request.headers.get("content-type", "application/octet-stream")
    file_id, name = state.store.put(request.body, content_type,
                                    request.headers.get("x-fal-file-name"), lifetime)
    return json_reply(200, {"access_url": state.cdn_url + FileStore.path_for(file_id, name),
                            "content_type": content_type, "file_name": name,
                            "file_size": len(request.body)})


def initiate(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    lifetime = _lifetime(request, LIFECYCLE_PREFERENCE_HEADER)
    if isinstance(lifetime, Reply):
        return lifetime
    payload, errors = parse_body(request.body)
    if payload is None:
        return json_reply(422, {"detail": errors})
    slot = state.store.open_slot(payload.get("file_name"),
                                 payload.get("content_type") or "application/octet-stream",
                                 lifetime)
    return json_reply(200, {
        "upload_url": f"{state.base_url}/storage/put/{slot.file_id}?sig={slot.signature}",
        "file_url": state.cdn_url + FileStore.path_for(slot.file_id, slot.name)})


def put_upload(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    # Signed URL, like a GCS/S3 presigned PUT: the signature is the credential, no auth header.
    stored = state.store.fill_slot(params["file_id"], request.query.get("sig", ""), request.body,
                                   request.headers.get("content-type"))
    if stored is None:
        return json_reply(403, {"detail": "Invalid or expired upload signature"})
    return Reply(200, b"", None)


_STORAGE_ROUTES: dict[tuple[str, str], tuple[str, Route]] = {
    ("POST", "/storage/auth/token"): ("token", token),
    ("POST", "/files/upload"): ("upload", upload),
    ("POST", "/storage/upload/initiate"): ("initiate", initiate),
}


# --- CDN and run origins -----------------------------------------------------------------
def serve_file(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    stored = state.store.get(params["file_id"])
    if stored is None:
        return Reply(404, b"Not Found", "text/plain")
    return Reply(200, stored.data, stored.content_type, {"cache-control": "public, max-age=3600"})


def run(state: State, request: RecordedRequest, params: dict[str, str]) -> Reply:
    refusal = _key_refusal(state, request)
    if refusal:
        return refusal
    prepared = state.generator.prepare(params["endpoint_id"], request.body)
    if isinstance(prepared, Reply):
        return prepared
    if prepared.violates_policy:
        return POLICY_VIOLATION.reply()
    lifetime = _lifetime(request, LIFECYCLE_PREFERENCE_HEADER)
    if isinstance(lifetime, Reply):
        return lifetime
    prepared.output_lifetime = lifetime
    if state.pause(state.processing_delay):
        return flat_error(503, "The stand-in is shutting down", "runner_disconnected")
    output = state.generator.render(prepared, state.processing_delay)
    request_id = str(uuid.uuid4())
    state.runs_billed.add(BilledJob(request_id, params["endpoint_id"], prepared.num_images,
                                    prepared.usd, "run", False, prepared.billed_megapixels))
    return _with_id(json_reply(200, output), request_id)
