"""One Kontext edit end to end on bytes: references -> URLs -> fal job -> result image bytes.

Nodes (tensors) and the CLI (files) both call `run_edit`; it knows nothing of torch or ComfyUI.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..client import FalClient
from ..client.data_uri import encode_data_uri
from ..client.errors import (DecodeError, DownloadError, FalError, InvalidInputError,
                             RequestRejectedError, SafetyFilterError, SubmitUncertainError,
                             ValidationError)
from ..client.logs import logger
from ..client.queue_types import QueueUpdate, RequestHandle
from . import models as m
from .edit_request import EditRequest
from .progress import ProgressReporter
from .result_cache import CachedResult, ResultCache, result_cache_key
from .result_images import decode_image
from .spending import PROCESS_SPENDING, SpendTracker

Decoder = Callable[[bytes], Any]  # raises DecodeError for bytes that are not a usable image

_NO_SUCH_ROUTE = (404, 405)
# fal's error types for a reference it could not fetch or read.
_UNFETCHABLE_REFERENCE_TYPES = {"file_download_error", "image_load_error"}


@dataclass(frozen=True)
class Reference:
    """One reference image: a label for messages, a content key, and a lazy encoder, so a
    reference already uploaded in this process is never encoded again."""

    label: str
    key: str
    encode: Callable[[], tuple[bytes, str]]  # -> (bytes, content type); run in a worker thread


@dataclass(frozen=True)
class EditOptions:
    transport: str = "upload"  # one of models.REFERENCE_TRANSPORTS
    timeout: float = m.DEFAULT_TIMEOUT_SECONDS
    nsfw_policy: str = "drop"  # one of models.NSFW_POLICIES
    max_download_bytes: int | None = None


@dataclass
class ResultImage:
    data: bytes  # the file as fal returned it
    content_type: str
    index: int  # position in fal's answer
    nsfw: bool = False
    decoded: Any = None  # what the run's decoder made of `data` (pixels for the nodes)


@dataclass
class EditResult:
    images: list[ResultImage]
    seed: int | None
    info: dict[str, Any] = field(default_factory=dict)


async def run_edit(client: FalClient, request: EditRequest, references: Sequence[Reference], *,
                   options: EditOptions = EditOptions(),
                   progress: ProgressReporter | None = None,
                   should_cancel: Callable[[], bool] | None = None,
                   result_cache: ResultCache | None = None,
                   spending: SpendTracker = PROCESS_SPENDING,
                   decode: Decoder = decode_image) -> EditResult:
    """Run one edit. Local checks come first (no money spent); exactly one job is submitted,
    except once more when fal could not fetch a reference this process uploaded earlier.
    Every result is decoded (in a thread, as it arrives) before anything is cached."""
    request.validate(len(references))
    _check_options(options)
    progress = progress or ProgressReporter()
    cache_key = result_cache_key(request, [ref.key for ref in references])
    cached = result_cache.get(cache_key) if result_cache is not None else None
    if cached is not None:
        return await _from_cache(cached, request, progress, decode)
    progress.started(request.estimated_cost_usd, len(references))
    outcome, handle = await _submit_with_fresh_references(
        client, request, references, options, progress, should_cancel, spending)
    result = await _collect_images(client, request, outcome, handle, options, progress, decode)
    if result_cache is not None:
        result_cache.put(cache_key, result)
    progress.finished(result.info)
    return result


async def _submit_with_fresh_references(
        client: FalClient, request: EditRequest, references: Sequence[Reference],
        options: EditOptions, progress: ProgressReporter,
        should_cancel: Callable[[], bool] | None,
        spending: SpendTracker) -> tuple[dict[str, Any], RequestHandle]:
    """Upload (or inline) the references and run the job; if fal cannot fetch an upload that
    an earlier run left in the cache, upload it again and submit once more."""
    spending.reserve(request.estimated_cost_usd)  # before uploads: a refused run costs nothing
    # Only URLs from an earlier upload can have gone stale; a fresh one is not uploaded twice.
    reused = ({client.cached_upload(ref.key) for ref in references}
              if options.transport == "upload" else set())
    try:
        urls = await _reference_urls(client, references, options.transport, progress)
    except BaseException:
        spending.release(request.estimated_cost_usd)
        raise
    try:
        return await _submit_and_wait(client, request, urls, options, progress, should_cancel,
                                      spending)
    except ValidationError as error:
        stale = [url for url in _unfetchable_cached_urls(error, urls) if url in reused]
        if not stale:
            raise
    logger.warning("fal could not fetch %d cached reference upload(s); uploading again", len(stale))
    for url in stale:
        client.forget_upload(url)
    spending.reserve(request.estimated_cost_usd)  # the refused submit gave its share back
    urls = await _reference_urls(client, references, options.transport, progress)
    return await _submit_and_wait(client, request, urls, options, progress, should_cancel, spending)


def _check_options(options: EditOptions) -> None:
    if options.transport not in m.REFERENCE_TRANSPORTS:
        raise InvalidInputError("reference_transport", f"must be one of {', '.join(m.REFERENCE_TRANSPORTS)}")
    if options.nsfw_policy not in m.NSFW_POLICIES:
        raise InvalidInputError("nsfw_policy", f"must be one of {', '.join(m.NSFW_POLICIES)}")
    if not m.TIMEOUT_MIN_SECONDS <= options.timeout <= m.TIMEOUT_MAX_SECONDS:
        raise InvalidInputError("timeout_seconds", f"must be from {m.TIMEOUT_MIN_SECONDS:g} to "
                                                   f"{m.TIMEOUT_MAX_SECONDS:g} seconds")


async def _reference_urls(client: FalClient, references: Sequence[Reference], transport: str,
                          progress: ProgressReporter) -> list[str]:
    """URLs for every reference, uploaded in parallel (bounded by the client), in order."""
    done = 0

    async def one(reference: Reference) -> str:
        nonlocal done
        url = (await _uploaded_or_inline(client, reference) if transport == "upload"
               else await _inline(reference))
        done += 1
        progress.uploaded(done, len(references))
        return url

    return list(await asyncio.gather(*(one(ref) for ref in references)))


async def _inline(reference: Reference) -> str:
    return encode_data_uri(*await asyncio.to_thread(reference.encode))


async def _uploaded_or_inline(client: FalClient, reference: Reference) -> str:
    """The reference's storage URL; inline when the server has no storage routes at all (a
    proxy or gateway that only forwards the queue), rather than failing the run."""
    try:
        return await client.upload_once(reference.key, reference.encode)
    except RequestRejectedError as error:
        if error.status_code not in _NO_SUCH_ROUTE:
            raise
        logger.warning("fal storage is not available here (%s); sending %s inline as a data URI",
                       error, reference.label)
        return await _inline(reference)


async def _submit_and_wait(client: FalClient, request: EditRequest, urls: list[str],
                           options: EditOptions, progress: ProgressReporter,
                           should_cancel: Callable[[], bool] | None,
                           spending: SpendTracker) -> tuple[dict[str, Any], RequestHandle]:
    try:
        handle = await client.submit(request.model.endpoint_id, request.arguments(urls))
    except SubmitUncertainError:
        raise  # the job may exist and be billed: keep it counted
    except FalError:
        # Never reached fal, or refused (4xx) without creating a job: nothing is billed.
        spending.release(request.estimated_cost_usd)
        raise
    progress.submitted(handle.request_id)

    def on_update(update: QueueUpdate) -> None:
        progress.queue_update(update)

    outcome = await client.wait_for_result(handle, on_update=on_update, timeout=options.timeout,
                                           should_cancel=should_cancel)
    return outcome, handle


def _unfetchable_cached_urls(error: ValidationError, urls: list[str]) -> list[str]:
    """The http(s) reference URLs fal said it could not fetch or read (by field location)."""
    stale = []
    for field_error in error.fields:
        location = [p for p in field_error.location if p != "body"]
        if field_error.type not in _UNFETCHABLE_REFERENCE_TYPES or not location:
            continue
        if location[0] == "image_url" and urls:
            stale.append(urls[0])
        elif location[0] == "image_urls" and len(location) > 1 and isinstance(location[1], int) \
                and 0 <= location[1] < len(urls):
            stale.append(urls[location[1]])
    return [url for url in stale if url.startswith(("http://", "https://"))]


async def _collect_images(client: FalClient, request: EditRequest, output: dict[str, Any],
                          handle: RequestHandle, options: EditOptions,
                          progress: ProgressReporter, decode: Decoder) -> EditResult:
    entries = [e for e in output.get("images") or [] if isinstance(e, dict) and e.get("url")]
    flags = _nsfw_flags(output, len(entries))
    keep = _apply_nsfw_policy(flags, options.nsfw_policy, handle.request_id)
    done = 0

    async def fetch(index: int) -> ResultImage:
        nonlocal done
        entry = entries[index]
        try:
            data = await client.download(entry["url"], max_bytes=options.max_download_bytes,
                                         expect_image=True)
        except DownloadError as error:
            # The job ran and was billed: name it, so its result can still be found at fal.
            raise DownloadError(f"{error.message}; the job finished, its result stays in "
                                "https://fal.ai/dashboard/requests", request_id=handle.request_id,
                                status_code=error.status_code) from None
        decoded = await _decode(decode, data, handle.request_id)
        done += 1
        progress.downloaded(done, len(keep))
        content_type = entry.get("content_type") or f"image/{request.output_format}"
        return ResultImage(data, str(content_type), index, flags[index], decoded)

    images = list(await asyncio.gather(*(fetch(i) for i in keep)))
    info = _info(request, output, handle, flags, keep)
    return EditResult(images=images, seed=output.get("seed"), info=info)


def _nsfw_flags(output: dict[str, Any], count: int) -> list[bool]:
    raw = output.get("has_nsfw_concepts") or []
    return [bool(raw[i]) if i < len(raw) else False for i in range(count)]


def _apply_nsfw_policy(flags: list[bool], policy: str, request_id: str) -> list[int]:
    """Indices of the images to pass downstream; never a silent black frame."""
    flagged = [i for i, flag in enumerate(flags) if flag]
    if not flags:
        raise SafetyFilterError("fal returned no images for this request", request_id=request_id)
    if not flagged or policy == "keep":
        if flagged:
            logger.warning("fal flagged result image(s) %s as NSFW; kept as asked (nsfw_policy=keep)", flagged)
        return list(range(len(flags)))
    if policy == "error" or len(flagged) == len(flags):
        raise SafetyFilterError(
            f"fal's safety checker flagged {len(flagged)} of {len(flags)} result image(s) "
            "(they come back blank); rephrase the prompt or raise safety_tolerance",
            request_id=request_id)
    logger.warning("dropped %d of %d result images that fal flagged as NSFW", len(flagged), len(flags))
    return [i for i, flag in enumerate(flags) if not flag]


def _info(request: EditRequest, output: dict[str, Any], handle: RequestHandle,
          flags: list[bool], keep: list[int]) -> dict[str, Any]:
    return {
        "request_id": handle.request_id,
        "endpoint": request.model.endpoint_id,
        "seed": output.get("seed"),
        "prompt": output.get("prompt", request.prompt),
        "has_nsfw_concepts": flags,
        "dropped_nsfw_images": [i for i in range(len(flags)) if i not in keep],
        "timings": output.get("timings") or {},
        "num_images": len(keep),
        "estimated_cost_usd": request.estimated_cost_usd,
        "cached": False,
    }


async def _decode(decode: Decoder, data: bytes, request_id: str | None) -> Any:
    try:
        return await asyncio.to_thread(decode, data)
    except DecodeError as error:
        # The job ran and was billed: name it, so its result can still be found at fal.
        raise DecodeError(error.message, request_id=request_id) from None


async def _from_cache(cached: CachedResult, request: EditRequest, progress: ProgressReporter,
                      decode: Decoder) -> EditResult:
    info = {**cached.info, "cached": True, "cost_saved_usd": request.estimated_cost_usd,
            "estimated_cost_usd": 0.0}
    decoded = await asyncio.gather(*(_decode(decode, data, info.get("request_id"))
                                     for data, _ in cached.images))
    images = [ResultImage(data, content_type, index, decoded=pixels)
              for index, ((data, content_type), pixels) in enumerate(zip(cached.images, decoded))]
    progress.finished(info)
    return EditResult(images=images, seed=cached.info.get("seed"), info=info)


__all__ = ["EditOptions", "EditResult", "Reference", "ResultImage", "run_edit"]
