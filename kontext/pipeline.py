"""One Kontext edit end to end on bytes: references -> URLs -> fal job -> result image bytes.

Nodes (tensors) and the CLI (files) both call `run_edit`; it knows nothing of torch or ComfyUI.
A reference whose pixels are exactly those of a result fal still serves (an edit fed back into
an edit) goes as that result's URL: nothing encoded, nothing uploaded, no second JPEG generation.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..client import FalClient
from ..client.data_uri import encode_data_uri
from ..client.errors import FalError, FalTimeoutError, RequestRejectedError
from ..client.logs import logger
from ..jobs.job import JobNotStartedError, JobOrder, Ticket
from ..jobs.lifecycle import EndingKind, JobEnding
from ..jobs.result_cache import CachedResult, result_cache_key
from ..jobs.result_collection import CollectSpec, Decoder, EditResult, ResultImage, decode_in_thread
from ..jobs.result_images import decode_image, served_identity
from ..jobs.runner import PROCESS_JOBS, JobRunner
from ..jobs.store import JobStore, default_job_store
from ..jobs.words import done_line, timeout_text
from . import models as m
from . import parameters as p
from .request_contract import FalEditRequest
from .progress import ProgressReporter
from .spending import PROCESS_SPENDING, SpendTracker

_NO_SUCH_ROUTE = (404, 405)


@dataclass(frozen=True)
class Reference:
    """One reference image: a label for messages, a content key, and a lazy encoder, so a
    reference already uploaded in this process is never encoded again.

    `key` names the bytes sent (pixels, size limit and every constant of the encoding), so a
    changed encoder never reuses a stale upload. `identity` names only what the user chose (the
    pixels and the settings they picked) and is what the result cache and job ledger match on,
    so tuning the encoder in an upgrade never makes an identical run pay again. Empty: `key`.
    `pixels` is the identity of the frame's pixels (`frame_key`) when the reference would be
    sent as exactly those pixels (no downscale applies); a result fal still serves with those
    pixels then goes as its URL. Empty: never sent as a served result's URL."""

    label: str
    key: str
    encode: Callable[[], tuple[bytes, str]]  # -> (bytes, content type); run in a worker thread
    identity: str = ""
    pixels: str = ""

    @property
    def result_key(self) -> str:
        return self.identity or self.key


@dataclass(frozen=True)
class EditOptions:
    transport: str = p.BY_NAME["reference_transport"].default
    timeout: float = m.DEFAULT_TIMEOUT_SECONDS
    nsfw_policy: str = p.BY_NAME["nsfw_policy"].default
    max_download_bytes: int | None = None


@dataclass
class _RunState:
    """What one run learned on its way out: whether it still holds a spend reservation, and
    what became of its job when it stopped waiting."""

    reserved_usd: float = 0.0
    ending: JobEnding = JobEnding(EndingKind.NEVER_SUBMITTED)

    def release(self, spending: SpendTracker) -> None:
        spending.release(self.reserved_usd)
        self.reserved_usd = 0.0


async def run_edit(client: FalClient, request: FalEditRequest, references: Sequence[Reference], *,
                   options: EditOptions = EditOptions(),
                   progress: ProgressReporter | None = None,
                   store: JobStore | None = None,
                   spending: SpendTracker = PROCESS_SPENDING,
                   decode: Decoder = decode_image,
                   runner: JobRunner = PROCESS_JOBS) -> EditResult:
    """Run one edit: local checks (nothing spent) -> a stored result -> the spend reservation
    -> the references -> the job -> its result. The job is shared with identical runs and
    adopted from the job ledger (`store`; by default the one beside the configured result
    cache, with no re-use of finished results), so the same inputs are paid for once.
    `options.timeout` bounds the whole run; on a timeout or a cancel the run ends at once and
    the job decides what becomes of the work at fal."""
    request.validate(len(references))
    _check_options(options)
    progress = progress or ProgressReporter()
    store = store if store is not None else default_job_store(use_result_cache=False)
    key = request_key(request, [ref.result_key for ref in references])
    cached = store.cache.get(key) if store.cache is not None else None
    if cached is not None:
        return await from_cache(client, cached, request.estimated_cost_usd, progress, decode)
    progress.started(request.estimated_cost_usd, len(references))
    state = _RunState()
    work = asyncio.ensure_future(_run_job(client, request, references, options, progress, store,
                                          key, spending, decode, runner, state))
    try:
        done, _ = await asyncio.wait({work}, timeout=options.timeout)
    except asyncio.CancelledError:
        await _stop(work)
        progress.cancelled(state.ending)
        raise
    if not done:
        await _stop(work)
        raise FalTimeoutError(options.timeout,
                              cancel_confirmed=state.ending.kind is not EndingKind.LEFT_RUNNING,
                              request_id=state.ending.request_id, ending=timeout_text(state.ending))
    result = work.result()
    result.info["summary"] = done_line(result.info)
    progress.finished(result.info)
    return result


def request_key(request: FalEditRequest, reference_keys: Sequence[str]) -> str:
    """The key of a run's job and stored result: the endpoint, every checked field and the
    references' identities (unique per call when fal picks the seed)."""
    return result_cache_key(request.model.endpoint_id, request.checked_values(), reference_keys,
                            reproducible=request.reproducible)


async def _run_job(client: FalClient, request: FalEditRequest, references: Sequence[Reference],
                   options: EditOptions, progress: ProgressReporter, store: JobStore, key: str,
                   spending: SpendTracker, decode: Decoder, runner: JobRunner,
                   state: _RunState) -> EditResult:
    fields = request.checked_values()
    spec = CollectSpec(endpoint_id=request.model.endpoint_id, instruction=request.instruction,
                       default_content_type=f"image/{fields['output_format']}",
                       estimated_cost_usd=request.estimated_cost_usd,
                       nsfw_policy=options.nsfw_policy,
                       max_download_bytes=options.max_download_bytes,
                       inline_results=bool(fields.get("sync_mode", False)),
                       output_lifetime=client.storage_lifetime)
    for attempt in (1, 2):
        ticket = runner.join(key, client, spec, store, start_deadline=options.timeout,
                             decode=decode, listener=progress_listener(progress))
        try:
            if ticket.leading:
                await _lead(client, request, references, options, progress, spending, ticket, state)
            result = await ticket.result()
        except asyncio.CancelledError:
            state.ending = await ticket.leave()
            if state.ending.nothing_billed:
                state.release(spending)
            raise
        except FalError as error:
            if ticket.ending is None or ticket.ending.nothing_billed:
                state.release(spending)
            if attempt == 2 or not ticket.may_run_anew(error):
                raise
            # A job adopted from the ledger, or left by a cancelled run, ended without a
            # result (it was cancelled, say): run it ourselves.
            logger.info("the earlier fal request %s ended without a result; submitting anew",
                        ticket.request_id)
            continue
        return result if ticket.leading else _shared(result, request)
    raise AssertionError("unreachable: the loop returns or raises")


async def _lead(client: FalClient, request: FalEditRequest, references: Sequence[Reference],
                options: EditOptions, progress: ProgressReporter, spending: SpendTracker,
                ticket: Ticket, state: _RunState) -> None:
    """Reserve the spend, send the references, then hand the submit to the job."""
    try:
        spending.reserve(request.estimated_cost_usd)  # before uploads: a refused run costs nothing
    except BaseException as error:
        ticket.fail_before_submit(error)
        raise
    state.reserved_usd = request.estimated_cost_usd
    served = [client.served_url(ref.pixels) if ref.pixels else None for ref in references]
    # Only URLs used before (an earlier upload, a served result) can have gone stale; a fresh
    # upload is not sent twice.
    reused = {url for url in served if url}
    if options.transport == "upload":
        reused |= {client.cached_upload(ref.key) for ref, url in zip(references, served) if not url}
    try:
        urls = await _reference_urls(client, references, served, options.transport, progress)
    except BaseException as error:
        state.release(spending)
        ticket.fail_before_submit(error if isinstance(error, Exception) else JobNotStartedError(
            "Stopped before anything was sent to fal"))
        raise
    ticket.submit(JobOrder(arguments=request.arguments, urls=urls,
                           references=[(ref.key, ref.encode) for ref in references],
                           reused_urls=frozenset(url for url in reused if url),
                           inline=options.transport != "upload"))


def progress_listener(progress: ProgressReporter, *,
                      submitting: bool = True) -> Callable[[str, Any], None]:
    """Progress events arrive on the job runner's thread; show them on the caller's loop.
    `submitting` False: the run follows a request fal already has (its naming is no news)."""
    loop = asyncio.get_running_loop()
    handlers = {"submitted": progress.submitted if submitting else lambda _: None,
                "update": progress.queue_update,
                "downloaded": lambda pair: progress.downloaded(*pair)}

    def listener(kind: str, payload: Any) -> None:
        try:
            loop.call_soon_threadsafe(handlers[kind], payload)
        except RuntimeError:  # the caller's loop is gone; nobody is watching
            pass
    return listener


def _shared(result: EditResult, request: FalEditRequest) -> EditResult:
    """A result this run followed but did not submit (another node's job for the same inputs,
    or one an earlier run left at fal): it was billed once, to that job, not again for this run."""
    info = {**result.info, "shared_job": True, "cost_saved_usd": request.estimated_cost_usd}
    return EditResult(images=result.images, seed=result.seed, info=info)


async def _stop(task: asyncio.Future) -> None:
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - its outcome no longer matters; we are leaving
        pass


def _check_options(options: EditOptions) -> None:
    p.check("reference_transport", options.transport)
    p.check("nsfw_policy", options.nsfw_policy)
    p.check("timeout_seconds", options.timeout)


async def _reference_urls(client: FalClient, references: Sequence[Reference],
                          served: Sequence[str | None], transport: str,
                          progress: ProgressReporter) -> list[str]:
    """URLs for every reference, in order: the URL fal serves it from (an earlier result with
    exactly its pixels, whichever the transport), else uploaded in parallel (bounded by the
    client) or inline."""
    done = 0

    async def one(reference: Reference, served_url: str | None) -> str:
        nonlocal done
        if served_url:
            logger.info("%s is a result fal still serves: sent as its URL, nothing uploaded",
                        reference.label)
            url = served_url
        elif transport == "upload":
            url = await _uploaded_or_inline(client, reference)
        else:
            url = await _inline(reference)
        done += 1
        progress.uploaded(done, len(references))
        return url

    return list(await asyncio.gather(*(one(ref, url) for ref, url in zip(references, served))))


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


async def from_cache(client: FalClient, cached: CachedResult, cost_saved_usd: float,
                     progress: ProgressReporter, decode: Decoder) -> EditResult:
    """A stored result as a run's result (nothing asked of fal). Where fal still serves its
    files, they are remembered again, so an edit fed this result sends their URLs."""
    info = {**cached.info, "cached": True, "cost_saved_usd": cost_saved_usd,
            "estimated_cost_usd": 0.0}
    decoded = await asyncio.gather(*(decode_in_thread(decode, data, info.get("request_id"))
                                     for data, _ in cached.images))
    served = list(cached.served) + [None] * (len(cached.images) - len(cached.served))
    images = [ResultImage(data, content_type, index, decoded=pixels,
                          url=copy.url if copy else "", served=copy)
              for index, ((data, content_type), pixels, copy)
              in enumerate(zip(cached.images, decoded, served))]
    await asyncio.to_thread(_remember_served_again, client, images)
    info["summary"] = done_line(info)
    progress.finished(info)
    return EditResult(images=images, seed=cached.info.get("seed"), info=info)


def _remember_served_again(client: FalClient, images: Sequence[ResultImage]) -> None:
    # The identity is of the pixels decoded here and now (not stored): they are what the next
    # node gets, and another Pillow or libjpeg may decode the same file a little differently.
    for image in images:
        if image.served is not None and image.served.usable():
            identity = served_identity(image.data, image.decoded)
            if identity is not None:
                client.remember_served(identity, image.served)


__all__ = ["EditOptions", "EditResult", "Reference", "ResultImage", "from_cache",
           "progress_listener", "run_edit"]
