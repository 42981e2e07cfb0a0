"""One Kontext edit end to end on bytes: references -> URLs -> fal job -> result image bytes.

Nodes (tensors) and the CLI (files) both call `run_edit`; it knows nothing of torch or ComfyUI.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..client import FalClient
from ..client.data_uri import encode_data_uri
from ..client.errors import (FalError, FalTimeoutError, RequestRejectedError, StartDeadlineError,
                             SubmitUncertainError, ValidationError)
from ..client.logs import logger
from . import models as m
from . import parameters as p
from .edit_request import EditRequest
from .job_ledger import JobLedger, ledger_for
from .job_tracker import ENDING_WAIT_SECONDS, PROCESS_JOBS, Flight, JobTracker
from .progress import ProgressReporter
from .result_cache import CachedResult, ResultCache, is_cacheable_key, result_cache_key
from .result_collection import CollectSpec, Decoder, EditResult, ResultImage, decode_in_thread
from .result_images import decode_image
from .spending import PROCESS_SPENDING, SpendTracker

_NO_SUCH_ROUTE = (404, 405)
# fal's error types for a reference it could not fetch or read.
_UNFETCHABLE_REFERENCE_TYPES = {"file_download_error", "image_load_error"}
_ENDING_UNKNOWN = "fal was asked to cancel the job; its answer is still pending"


@dataclass(frozen=True)
class Reference:
    """One reference image: a label for messages, a content key, and a lazy encoder, so a
    reference already uploaded in this process is never encoded again.

    `key` names the bytes sent (pixels, size limit and every constant of the encoding), so a
    changed encoder never reuses a stale upload. `identity` names only what the user chose (the
    pixels and the settings they picked) and is what the result cache and job ledger match on,
    so tuning the encoder in an upgrade never makes an identical run pay again. Empty: `key`."""

    label: str
    key: str
    encode: Callable[[], tuple[bytes, str]]  # -> (bytes, content type); run in a worker thread
    identity: str = ""

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
    """What one run learned on its way out: the flight it waited on and how the job ended."""

    flight: Flight | None = None
    ending: str = ""


async def run_edit(client: FalClient, request: EditRequest, references: Sequence[Reference], *,
                   options: EditOptions = EditOptions(),
                   progress: ProgressReporter | None = None,
                   result_cache: ResultCache | None = None,
                   spending: SpendTracker = PROCESS_SPENDING,
                   decode: Decoder = decode_image,
                   tracker: JobTracker = PROCESS_JOBS) -> EditResult:
    """Run one edit. Local checks come first (no money spent); a stored result or a job already
    at fal for the same inputs (this process's or one the job ledger names) is used instead of
    paying again; otherwise exactly one job is submitted (once more only when fal could not
    fetch a reference this process uploaded earlier). `options.timeout` bounds the whole run;
    on a timeout or a cancel the run ends at once, the job is cancelled at fal if it has not
    finished, and whatever it still delivers is kept in the result cache."""
    request.validate(len(references))
    _check_options(options)
    progress = progress or ProgressReporter()
    cache_key = result_cache_key(request, [ref.result_key for ref in references])
    cached = result_cache.get(cache_key) if result_cache is not None else None
    if cached is not None:
        return await _from_cache(cached, request, progress, decode)
    progress.started(request.estimated_cost_usd, len(references))
    state = _RunState()
    job = asyncio.ensure_future(_run_job(client, request, references, options, progress,
                                         result_cache, cache_key, spending, decode, tracker, state))
    try:
        done, _ = await asyncio.wait({job}, timeout=options.timeout)
    except asyncio.CancelledError:
        await _stop(job)
        progress.cancelled(state.ending or "nothing was sent to fal; nothing was billed")
        raise
    if not done:
        await _stop(job)
        flight = state.flight
        raise FalTimeoutError(options.timeout,
                              cancel_confirmed=bool(flight and flight.cancel_outcome
                                                    and flight.cancel_outcome.confirmed),
                              request_id=flight.request_id if flight else None,
                              ending=state.ending or "nothing was sent to fal; nothing was billed")
    result = job.result()
    progress.finished(result.info)
    return result


async def _run_job(client: FalClient, request: EditRequest, references: Sequence[Reference],
                   options: EditOptions, progress: ProgressReporter,
                   result_cache: ResultCache | None, cache_key: str, spending: SpendTracker,
                   decode: Decoder, tracker: JobTracker, state: _RunState) -> EditResult:
    cacheable = result_cache is not None and is_cacheable_key(cache_key)
    ledger: JobLedger | None = ledger_for(result_cache.directory) if cacheable else None
    fields = request.checked_values()
    spec = CollectSpec(endpoint_id=request.model.endpoint_id, instruction=request.instruction,
                       default_content_type=f"image/{fields['output_format']}",
                       estimated_cost_usd=request.estimated_cost_usd,
                       nsfw_policy=options.nsfw_policy,
                       max_download_bytes=options.max_download_bytes,
                       inline_results=fields["sync_mode"])
    for attempt in (1, 2):
        flight, leading = tracker.join_or_lead(cache_key, client, spec, ledger=ledger,
                                               cache=result_cache if cacheable else None,
                                               start_deadline=options.timeout, decode=decode)
        state.flight = flight
        try:
            return await _wait_for_flight(client, request, references, options, progress,
                                          spending, flight, leading, state)
        except ValidationError as error:
            stale = _stale_references(client, error, flight) if leading else []
            if attempt == 2 or not stale:
                raise
            logger.warning("fal could not fetch %d cached reference upload(s); uploading again",
                           len(stale))
            for url in stale:
                client.forget_upload(url)
        except FalError:
            if attempt == 2 or (flight.ours and not flight.rejoined) or leading:
                raise
            # A job adopted from the ledger, or left by a cancelled run, ended without a
            # result (it was cancelled, say): run it ourselves.
            logger.info("the earlier fal request %s ended without a result; submitting anew",
                        flight.request_id)
    raise AssertionError("unreachable: the loop returns or raises")


async def _wait_for_flight(client: FalClient, request: EditRequest,
                           references: Sequence[Reference], options: EditOptions,
                           progress: ProgressReporter, spending: SpendTracker, flight: Flight,
                           leading: bool, state: _RunState) -> EditResult:
    unsubscribe = flight.subscribe(_progress_listener(progress))
    try:
        if leading:
            await _lead(client, request, references, options, progress, spending, flight)
        result = await _await_concurrent(flight.future)
        return result if leading else _shared(result, request)
    except asyncio.CancelledError:
        state.ending = await _stop_waiting(flight)
        raise
    except FalError as error:
        if leading and flight.handed_over and _never_billed(error, flight):
            spending.release(request.estimated_cost_usd)
        raise
    finally:
        unsubscribe()


def _never_billed(error: FalError, flight: Flight) -> bool:
    """A submit that never reached fal, was refused without creating a job (4xx), or a job fal
    dropped before it started: nothing is billed, so the spend reservation goes back."""
    if isinstance(error, StartDeadlineError):
        return True
    return flight.request_id is None and not isinstance(error, SubmitUncertainError)


async def _lead(client: FalClient, request: EditRequest, references: Sequence[Reference],
                options: EditOptions, progress: ProgressReporter, spending: SpendTracker,
                flight: Flight) -> None:
    """Reserve the spend, send the references, then hand the submit to the job's flight."""
    try:
        spending.reserve(request.estimated_cost_usd)  # before uploads: a refused run costs nothing
    except BaseException as error:
        flight.fail_before_submit(error)
        raise
    # Only URLs from an earlier upload can have gone stale; a fresh one is not uploaded twice.
    flight.reused_urls = ({client.cached_upload(ref.key) for ref in references}
                          if options.transport == "upload" else set())
    try:
        flight.uploaded_urls = await _reference_urls(client, references, options.transport, progress)
    except asyncio.CancelledError:
        spending.release(request.estimated_cost_usd)
        raise
    except BaseException as error:
        spending.release(request.estimated_cost_usd)
        flight.fail_before_submit(error)
        raise
    flight.submit(request.arguments(flight.uploaded_urls))


async def _stop_waiting(flight: Flight) -> str:
    """This caller gives up on the flight; returns what became of the job, as far as known
    within ENDING_WAIT_SECONDS (the node must return promptly)."""
    ending = flight.release()
    try:
        return await asyncio.wait_for(_await_concurrent(ending), ENDING_WAIT_SECONDS)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the words are best effort
        return _ENDING_UNKNOWN


def _progress_listener(progress: ProgressReporter) -> Callable[[str, Any], None]:
    """Progress events arrive on the job tracker's thread; show them on the caller's loop."""
    loop = asyncio.get_running_loop()
    handlers = {"submitted": progress.submitted, "update": progress.queue_update,
                "downloaded": lambda pair: progress.downloaded(*pair)}

    def listener(kind: str, payload: Any) -> None:
        try:
            loop.call_soon_threadsafe(handlers[kind], payload)
        except RuntimeError:  # the caller's loop is gone; nobody is watching
            pass
    return listener


def _shared(result: EditResult, request: EditRequest) -> EditResult:
    """A result this run followed but did not submit (another node's job for the same inputs,
    or one an earlier run left at fal): it was billed once, to that job, not again for this run."""
    info = {**result.info, "shared_job": True, "cost_saved_usd": request.estimated_cost_usd}
    return EditResult(images=result.images, seed=result.seed, info=info)


async def _await_concurrent(future: "concurrent.futures.Future[Any]") -> Any:
    """Await a future of another thread without ever cancelling it (others may wait on it)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def settle(done: "concurrent.futures.Future[Any]") -> None:
        def set_outcome() -> None:
            if waiter.done():
                return
            if done.cancelled():
                waiter.set_exception(FalError("The job was stopped"))
            elif done.exception() is not None:
                waiter.set_exception(done.exception())
            else:
                waiter.set_result(done.result())
        try:
            loop.call_soon_threadsafe(set_outcome)
        except RuntimeError:
            pass
    future.add_done_callback(settle)
    return await waiter


async def _stop(task: asyncio.Future) -> None:
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - its outcome no longer matters; we are leaving
        pass


def _stale_references(client: FalClient, error: ValidationError, flight: Flight) -> list[str]:
    return [url for url in _unfetchable_cached_urls(error, flight.uploaded_urls)
            if url in flight.reused_urls]


def _check_options(options: EditOptions) -> None:
    p.check("reference_transport", options.transport)
    p.check("nsfw_policy", options.nsfw_policy)
    p.check("timeout_seconds", options.timeout)


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


async def _from_cache(cached: CachedResult, request: EditRequest, progress: ProgressReporter,
                      decode: Decoder) -> EditResult:
    info = {**cached.info, "cached": True, "cost_saved_usd": request.estimated_cost_usd,
            "estimated_cost_usd": 0.0}
    decoded = await asyncio.gather(*(decode_in_thread(decode, data, info.get("request_id"))
                                     for data, _ in cached.images))
    images = [ResultImage(data, content_type, index, decoded=pixels)
              for index, ((data, content_type), pixels) in enumerate(zip(cached.images, decoded))]
    progress.finished(info)
    return EditResult(images=images, seed=cached.info.get("seed"), info=info)


__all__ = ["EditOptions", "EditResult", "Reference", "ResultImage", "run_edit"]
