"""Fetch a request fal already has by its id: the images a run paid for but never received.

A process killed after its submit left but before fal's answer arrived cannot know the job's id;
the user finds it in fal's dashboard and fetches the result with this (the 'fal Result by
Request ID' node, `fal-kontext collect`). Nothing is submitted, uploaded or cancelled, so it
costs nothing: the job is followed like one the job ledger adopts (waiting if it still runs),
collected, and stored in the result cache under its endpoint and id, so fetching it again is
served from disk, even after fal has forgotten it.
"""
from __future__ import annotations

import asyncio
import re
from typing import Sequence

from ..client import FalClient
from ..client.errors import (DownloadError, FalError, JobFailedError, JobNotFoundError,
                             StartDeadlineError, ValidationError)
from ..client.queue_types import EndpointId
from ..jobs.result_cache import result_cache_key
from ..jobs.result_collection import CollectSpec, Decoder, EditResult
from ..jobs.result_images import decode_image
from ..jobs.runner import PROCESS_JOBS, JobRunner
from ..jobs.store import JobStore, default_job_store
from ..jobs.words import done_line
from . import flux2_models as f
from . import models as m
from . import parameters as p
from .errors import InvalidInputError
from .pipeline import from_cache, progress_listener
from .progress import ProgressReporter

REQUEST_ID_INPUT, ENDPOINT_INPUT = "request_id", "endpoint"
DASHBOARD = "https://fal.ai/dashboard/requests"
# fal's request ids are UUIDs; a pasted dashboard or queue URL holding one is accepted too.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # anything else cannot go in a URL path
_NOT_SERVED = (403, 404, 410)  # the CDN's answers for a file past its lifetime


def pack_endpoints() -> tuple[str, ...]:
    """Every endpoint the pack sends jobs to, from the model tables: where a request the pack
    (or anyone) sent can be fetched by its id."""
    return (*(model.endpoint_id for model in m.ALL_MODELS),
            *(model.endpoint_id for model in f.FLUX2_MODELS.values()))


async def collect_request(client: FalClient, request_id: str, endpoint_id: str, *,
                          nsfw_policy: str = p.BY_NAME["nsfw_policy"].default,
                          progress: ProgressReporter | None = None,
                          store: JobStore | None = None, decode: Decoder = decode_image,
                          runner: JobRunner = PROCESS_JOBS,
                          endpoints: Sequence[str] | None = None) -> EditResult:
    """The images of fal request `request_id` sent to `endpoint_id` (one of `endpoints`, by
    default `pack_endpoints()`): from the result cache, else followed at fal until it finishes,
    then downloaded and stored. A cancel only stops the wait; the job is never cancelled here."""
    request_id = checked_request_id(request_id)
    endpoints = pack_endpoints() if endpoints is None else endpoints
    if endpoint_id not in endpoints:
        raise InvalidInputError(ENDPOINT_INPUT, f"must be one of {', '.join(endpoints)}; "
                                                f"got {endpoint_id!r}")
    nsfw_policy = p.check("nsfw_policy", nsfw_policy)
    progress = progress or ProgressReporter()
    store = store if store is not None else default_job_store()
    key = collected_key(endpoint_id, request_id, nsfw_policy)
    cached = store.cache.get(key) if store.cache is not None else None
    if cached is not None:
        return await from_cache(client, cached, 0.0, progress, decode)
    progress.following(request_id)
    spec = CollectSpec(endpoint_id=endpoint_id, instruction="",
                       default_content_type=f"image/{m.OUTPUT_FORMAT_DEFAULT}",
                       estimated_cost_usd=0.0, nsfw_policy=nsfw_policy)
    ticket = runner.follow_request(key, request_id, client, spec, store, decode=decode,
                                   listener=progress_listener(progress, submitting=False))
    try:
        result = await ticket.result()
    except asyncio.CancelledError:
        await ticket.leave()  # an adopted job: followed on for a while, never cancelled
        progress.stopped_following(request_id)
        raise
    except FalError as error:
        raise await _explained(client, error, request_id, endpoint_id, endpoints) from None
    info = {**result.info, "fetched_by_id": True}
    info["summary"] = done_line(info)
    progress.finished(info)
    return EditResult(images=result.images, seed=result.seed, info=info)


def checked_request_id(raw: object) -> str:
    """The request id in what the user pasted (an id, or a dashboard or queue URL holding one),
    or InvalidInputError naming the input."""
    text = raw.strip().strip("'\"`").strip() if isinstance(raw, str) else ""
    if not text:
        raise InvalidInputError(REQUEST_ID_INPUT, f"is empty; paste the id of a fal request (find "
                                                  f"it in {DASHBOARD})")
    found = _UUID.findall(text)
    if found:
        return found[-1].lower()
    if not _ID.fullmatch(text):
        raise InvalidInputError(REQUEST_ID_INPUT, f"{text[:80]!r} is not a fal request id (they "
                                                  "look like 764cabcf-b745-4b3e-ae38-1200304cf45b)")
    return text


def collected_key(endpoint_id: str, request_id: str, nsfw_policy: str) -> str:
    """The result cache key of a request fetched by its id. fal names a request by its app
    (owner/alias), whatever sub-path it was sent to; the policy decides which images are kept."""
    app = EndpointId.parse(endpoint_id).requests_path
    return result_cache_key(app, {"request_id": request_id, "nsfw_policy": nsfw_policy}, [])


async def _explained(client: FalClient, error: FalError, request_id: str, endpoint_id: str,
                     endpoints: Sequence[str]) -> FalError:
    """One line for each way a request cannot be fetched; other errors as they are."""
    if isinstance(error, JobNotFoundError):
        return await _not_found(client, request_id, endpoint_id, endpoints)
    if isinstance(error, (ValidationError, JobFailedError, StartDeadlineError)):
        reason = error.message.replace(f" (fal request id: {request_id})", "")
        return JobFailedError(f"fal request {request_id} ended without an image, so there is "
                              f"nothing to fetch ({reason})", request_id=request_id)
    if isinstance(error, DownloadError) and error.status_code in _NOT_SERVED:
        return DownloadError(f"fal request {request_id} finished, but fal no longer serves its "
                             f"images (HTTP {error.status_code}: past the lifetime they were "
                             "stored for), so they cannot be fetched any more",
                             request_id=request_id, status_code=error.status_code)
    return error


async def _not_found(client: FalClient, request_id: str, endpoint_id: str,
                     endpoints: Sequence[str]) -> FalError:
    """fal answers 404 for an id it does not know under the app asked: an id sent to another
    app (asked for free, one status call each), or a typo, or a request past its retention."""
    asked = EndpointId.parse(endpoint_id).requests_path
    others: dict[str, str] = {}
    for other in endpoints:
        others.setdefault(EndpointId.parse(other).requests_path, other)
    others.pop(asked, None)
    for app, other in others.items():
        try:
            await client.status(client.handle_for(other, request_id), logs=False)
        except FalError:
            continue
        return InvalidInputError(ENDPOINT_INPUT, f"is not where fal request {request_id} went: "
                                                 f"it was sent to {app.removesuffix('/requests')}"
                                                 f" (e.g. {other}), not {endpoint_id}; pick that "
                                                 "endpoint")
    return JobNotFoundError(f"fal has no request {request_id} for {endpoint_id}: check "
                            f"{REQUEST_ID_INPUT} (copy it from {DASHBOARD}); fal keeps a result "
                            "about an hour, so an older request can no longer be fetched",
                            request_id=request_id, status_code=404)


__all__ = ["checked_request_id", "collect_request", "collected_key", "pack_endpoints"]
