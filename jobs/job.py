"""`Job`: the one owner of one fal job's whole life, and `Ticket`: one run waiting for it.

A job lives on the job runner's event loop (its own thread, `jobs/runner.py`), because a paid
job outlives the node that started it: ComfyUI throws a prompt's event loop away when the prompt
ends, and a cancelled or timed-out run must not leave its job unwatched. Everything that changes
a job happens on that loop, in this class: the submit (and the one re-submit when fal could not
fetch a reference upload reused from earlier), following it, cancelling it when the last run
stops waiting, collecting and storing its result, and every job-ledger write. Runs in any thread
hold a `Ticket`; they hear progress through a listener and meet the job at one future.

A job is also how a request fal already has is fetched by its id (`JobRunner.follow_request`):
an adopted job, which is followed and collected like any other and never cancelled.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Protocol, Sequence

from ..client import FalClient
from ..client.data_uri import encode_data_uri
from ..client.errors import (DownloadError, FalError, JobNotFoundError, SubmitUncertainError,
                             ValidationError)
from ..client.logs import logger
from ..client.queue_types import CancelOutcome, JobState, QueueUpdate, RequestHandle
from .ledger import LedgerEntry, log_unnamed_submit, retention_deadline
from .lifecycle import EndingKind, JobEnding, JobPhase, check_transition
from .result_collection import (CollectSpec, Decoder, EditResult, collect_result,
                                remember_served_images)
from .store import JobStore

# A job nobody waits for any more is still followed this long, to keep what it was paid for.
ABANDONED_WATCH_SECONDS = 600.0
# How long a run that stops waiting may wait to learn what became of the job (the cancel's
# answer); a node must return well within 2 s of an interrupt.
ENDING_WAIT_SECONDS = 1.2
# How often a run waiting for another process's submit looks at the ledger for the job's id.
NAME_POLL_SECONDS = 0.2
# fal's error types for a reference it could not fetch or read.
_UNFETCHABLE_REFERENCE_TYPES = {"file_download_error", "image_load_error"}

Listener = Callable[[str, Any], None]  # (kind, payload): "submitted", "update", "downloaded"
Encoder = Callable[[], "tuple[bytes, str]"]


class Runner(Protocol):
    """What a job asks of the runner that hosts it (jobs/runner.py)."""

    def start(self, job: "Job", order: "JobOrder | None") -> None: ...

    def call(self, work: Coroutine[Any, Any, Any]) -> concurrent.futures.Future: ...

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None: ...

    def forget(self, job: "Job") -> None: ...


class Origin(enum.Enum):
    OURS = "ours"  # this process submits it for the run that leads it
    ADOPTED = "adopted"  # named by the ledger: an earlier run's, another process's, a dead one's


class JobNotStartedError(FalError):
    """The run preparing a job stopped before submitting it (here or in another process), so
    nothing exists at fal; a run that waited for it may run the job itself."""


@dataclass(frozen=True)
class JobOrder:
    """What the leading run hands over once its references are sent: fal's body for a list of
    reference URLs, those URLs, and how to send a reference again (upload key and encoder;
    inline as a data URI instead when the run sends its references inline)."""

    arguments: Callable[[list[str]], dict[str, Any]]
    urls: list[str]
    references: Sequence[tuple[str, Encoder]] = ()
    # URLs used before (an earlier upload, or a result fal served): fal may no longer fetch them.
    reused_urls: frozenset[str] = frozenset()
    inline: bool = False


class Job:
    """One fal job and the runs waiting for it. Only the runner creates jobs; only the job's own
    methods change it, on the runner's loop."""

    def __init__(self, runner: Runner, key: str, client: FalClient, spec: CollectSpec,
                 store: JobStore | None, *, decode: Decoder, start_deadline: float,
                 origin: Origin, phase: JobPhase, entry: LedgerEntry | None = None,
                 owns_entry: bool = True, request_id: str | None = None):
        self.runner = runner
        self.key = key
        self.client = client
        self.spec = spec
        self.store = store
        self.decode = decode
        self.start_deadline = start_deadline
        self.origin = origin
        self.phase = phase
        self.phases: list[JobPhase] = [phase]  # the way it went, for logs and tests
        self.future: concurrent.futures.Future[EditResult] = concurrent.futures.Future()
        self.request_id: str | None = entry.request_id if entry is not None else request_id
        # When fal got the job (time.time(), an upper bound on its outputs' age); None: unknown.
        self.submitted_at: float | None = (entry.submitted_at if entry is not None and entry.named
                                           else None)
        self.cancel_outcome: CancelOutcome | None = None
        self.ending: JobEnding | None = None
        self._entry = entry
        self._owns_entry = owns_entry and entry is not None
        self._handle: RequestHandle | None = None
        self._lock = threading.Lock()  # guards the waiters and listeners, touched by runs
        self._waiters = 0
        self._listeners: list[Listener] = []
        self._abandoned = False
        self._rejoined = False  # a run joined after every earlier one had given up
        self._cancel_when_named = False
        self._finished_hint: asyncio.Event | None = None  # made on the runner's loop
        self._task: asyncio.Task | None = None
        self._watch_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"Job({self.key[:12]}, {self.origin.value}, {self.phase.value}, {self.request_id})"

    # -- runs (any thread) ---------------------------------------------------------------------
    def attach(self, listener: Listener | None, *, leading: bool) -> "Ticket":
        with self._lock:
            self._waiters += 1
            self._rejoined = self._rejoined or self._abandoned
            if listener is not None:
                self._listeners.append(listener)
                if self.request_id is not None:
                    listener("submitted", self.request_id)
        return Ticket(self, listener, leading)

    @property
    def joinable(self) -> bool:
        return not self.future.done()

    def may_run_anew(self, ticket: "Ticket", error: BaseException) -> bool:
        """After `error`, may the waiting run submit the job itself? Yes when nothing was
        started for it, or when it followed a job it did not start that was adopted or given
        up on (cancelled, say). Never for the run that led it: that would pay twice."""
        if ticket.leading:
            return False
        return (isinstance(error, JobNotStartedError) or self.origin is Origin.ADOPTED
                or self._rejoined)

    # -- the runner's loop ----------------------------------------------------------------------
    def _move(self, phase: JobPhase) -> None:
        check_transition(self.phase, phase)
        if phase is not self.phase:
            self.phases.append(phase)
        self.phase = phase

    def _emit(self, kind: str, payload: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, payload)
            except Exception as error:  # noqa: BLE001 - a broken progress sink must not stop the job
                logger.debug("progress listener failed: %s", error)

    def begin(self, order: JobOrder | None) -> None:
        """Start the job's life on the runner's loop (called there)."""
        self._task = asyncio.get_running_loop().create_task(self._drive(order))

    def watch_for_at_most(self, seconds: float) -> None:
        """Nobody waits for the job: follow it this long at most (called on the runner's loop)."""
        if self.ending is None and self._watch_timer is None:
            self._watch_timer = asyncio.get_running_loop().call_later(seconds, self._watch_ended,
                                                                      seconds)

    def _watch_ended(self, seconds: float) -> None:
        logger.info("fal request %s is no longer followed after %.0f s; the job ledger keeps it "
                    "for a later run", self.request_id, seconds)
        self.stop_following()

    def stop_following(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _drive(self, order: JobOrder | None) -> None:
        """The job's whole life from here: submit (ours) or wait for its id (another process's
        submit), follow, collect, store; every ending goes through `_end`."""
        self._finished_hint = asyncio.Event()
        try:
            if self.phase is JobPhase.AWAITING_NAME:
                await self._await_name()
            output = await self._submit_and_follow(order)
            self._move(JobPhase.COLLECTING)
            result = await collect_result(
                self.client, output, self._handle_now(), self.spec, decode=self.decode,
                on_downloaded=lambda done, total: self._emit("downloaded", (done, total)))
            await self._complete(result)
        except asyncio.CancelledError:
            # Only the runner cancels (abandoned too long, or shutting down): the ledger keeps
            # the job so a later run or process can still collect it.
            self._end(self._snapshot(EndingKind.LEFT_RUNNING),
                      error=FalError("The job was left to a later run to collect",
                                     request_id=self.request_id))
            raise
        except BaseException as error:  # noqa: BLE001 - every failure ends the job, typed
            await self._fail(error)

    def fail_before_submit(self, error: BaseException) -> None:
        """The leading run could not get as far as submitting: nothing exists at fal."""
        if self.phase is JobPhase.PREPARING:
            self._forget_in_ledger()
            self._end(self._snapshot(EndingKind.NEVER_SUBMITTED, error=error), error=error)

    async def _submit_and_follow(self, order: JobOrder | None) -> dict[str, Any]:
        urls = list(order.urls) if order is not None else []
        for attempt in (1, 2):
            try:
                if order is not None:
                    await self._submit(order.arguments(urls))
                return await self._follow()
            except ValidationError as error:
                stale = _stale_references(error, urls, order)
                if attempt == 2 or not stale:
                    raise
                logger.warning("fal could not fetch %d reference URL(s) used before (an earlier "
                               "upload or result); sending them again and submitting once more "
                               "(the refused submit is not billed)", len(stale))
                urls = await self._send_again(order, urls, stale)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _send_again(self, order: JobOrder, urls: list[str], stale: list[int]) -> list[str]:
        urls = list(urls)
        for index in stale:
            self.client.forget_unfetchable(urls[index])
            key, encode = order.references[index]
            urls[index] = (encode_data_uri(*await asyncio.to_thread(encode)) if order.inline
                           else await self.client.upload_once(key, encode))
        return urls

    async def _submit(self, arguments: dict[str, Any]) -> None:
        self._move(JobPhase.SUBMITTING)
        self.submitted_at = time.time()
        self._record(state="submitting", request_id=None)
        self._handle = await self.client.submit(self.spec.endpoint_id, arguments,
                                                start_deadline=self.start_deadline,
                                                on_request_id=self._named)
        self._named(self._handle.request_id)
        self._move(JobPhase.QUEUED)

    def _named(self, request_id: str) -> None:
        if self.request_id == request_id:
            return
        self.request_id = request_id
        self._record(state="submitted", request_id=request_id)
        self._emit("submitted", request_id)
        if self._cancel_when_named:
            # Nobody wants this job any more: stop it the moment it has a name.
            asyncio.ensure_future(self._cancel())

    async def _await_name(self) -> None:
        """Another process claimed the same job first: wait for fal to name it there, then follow
        it. If that process gives up or dies before, nothing was started for this run."""
        ledger = self.store.ledger if self.store is not None else None
        while ledger is not None:
            entry = await asyncio.to_thread(ledger.read, self.key)
            if entry is not None and entry.named and not entry.expired():
                logger.info("another process submitted these inputs as fal request %s; "
                            "following it instead of paying again", entry.request_id)
                self.request_id, self.submitted_at = entry.request_id, entry.submitted_at
                # Its outputs live as long as the submitting process asked fal to keep them.
                self.spec = dataclasses.replace(
                    self.spec, output_lifetime=entry.collect.get("output_lifetime"))
                self._emit("submitted", entry.request_id)
                self._move(JobPhase.QUEUED)
                return
            if entry is None or entry.expired() or entry.owner_gone():
                if entry is not None and entry.state == "submitting":
                    log_unnamed_submit(entry)
                break
            await asyncio.sleep(NAME_POLL_SECONDS)
        raise JobNotStartedError("The process that was submitting this job stopped before fal "
                                 "named it")

    async def _follow(self) -> dict[str, Any]:
        def on_update(update: QueueUpdate) -> None:
            if update.state is JobState.IN_QUEUE:
                self._move(JobPhase.QUEUED)
            elif update.state is JobState.IN_PROGRESS:
                self._move(JobPhase.RUNNING)
            self._emit("update", update)
        handle = self._handle_now()
        following = asyncio.ensure_future(self.client.follow(handle, on_update=on_update))
        hinted = asyncio.ensure_future(self._finished_hint.wait())
        try:
            await asyncio.wait({following, hinted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hinted.cancel()
        if following.done():
            return following.result()
        # fal said the job had finished (its cancel answer) before its status showed it.
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        return await self.client.result(handle)

    def _handle_now(self) -> RequestHandle:
        if self._handle is None or self._handle.request_id != self.request_id:
            self._handle = self.client.handle_for(self.spec.endpoint_id, self.request_id)
        return self._handle

    async def leave(self, ticket: "Ticket") -> JobEnding:
        """One run stops waiting; the last one abandons the job: cancelled at fal if it is ours
        and has not finished, followed on (bounded) so whatever it still delivers is kept."""
        with self._lock:
            self._waiters -= 1
            last = self._waiters <= 0
            if ticket.listener in self._listeners:
                self._listeners.remove(ticket.listener)
        if self.ending is not None:
            return self._ending_for(ticket)
        if not last:
            return self._snapshot(EndingKind.LEFT_RUNNING, still_wanted=True,
                                  shared=not ticket.leading)
        return await self._abandon()

    async def _abandon(self) -> JobEnding:
        self._abandoned = True
        if self.phase is JobPhase.PREPARING:
            error = JobNotStartedError("Stopped before anything was sent to fal")
            self.fail_before_submit(error)
            return self._snapshot(EndingKind.NEVER_SUBMITTED)
        if self.phase is JobPhase.AWAITING_NAME:
            self.stop_following()  # the other process follows it
            return self._snapshot(EndingKind.LEFT_RUNNING, shared=True)
        self.watch_for_at_most(ABANDONED_WATCH_SECONDS)
        if self.origin is Origin.ADOPTED:
            return self._snapshot(EndingKind.LEFT_RUNNING, shared=True)
        if self.request_id is None:
            self._cancel_when_named = True
            return self._snapshot(EndingKind.CANCEL_REQUESTED)
        if self.phase is JobPhase.COLLECTING:
            return self._snapshot(EndingKind.COMPLETED_KEPT)
        was_queued = self.phase in (JobPhase.QUEUED, JobPhase.SUBMITTING)
        outcome = await self._cancel()
        if outcome is CancelOutcome.ALREADY_COMPLETED:
            self._finished_hint.set()
            return self._snapshot(EndingKind.COMPLETED_KEPT)
        if outcome is CancelOutcome.NOT_FOUND:
            return self._snapshot(EndingKind.FAILED, error=JobNotFoundError(
                "fal no longer knows the job", request_id=self.request_id))
        if outcome is CancelOutcome.UNCONFIRMED:
            return self._snapshot(EndingKind.LEFT_RUNNING)
        return self._snapshot(EndingKind.CANCELLED_BEFORE_START if was_queued
                              else EndingKind.CANCEL_REQUESTED)

    async def _cancel(self) -> CancelOutcome:
        outcome = self.cancel_outcome = await self.client.cancel_quietly(self._handle_now())
        if outcome is CancelOutcome.REQUESTED:
            self._record(state="cancel_requested", request_id=self.request_id)
        return outcome

    async def _complete(self, result: EditResult) -> None:
        """Store the result where the next identical run finds it, then hand it over."""
        try:
            await asyncio.to_thread(remember_served_images, self.client, result, self.spec,
                                    self.submitted_at)
        except Exception as error:  # noqa: BLE001 - an optimisation must never lose a paid result
            logger.warning("could not remember where fal serves the result of request %s (%s); "
                           "a chained edit uploads it instead", self.request_id, error)
        with self._lock:
            delivered = self._waiters > 0
        cache = self.store.cache if self.store is not None else None
        stored = cache is not None and await asyncio.to_thread(cache.put, self.key, result)
        if delivered and (stored or cache is None):
            # Handed over, and stored (or the cache is off: finished results are not re-used).
            self._forget_in_ledger()
            kept = "cache" if stored else ""
        else:
            # Paid for and not handed to anyone yet (or not stored): the ledger keeps its id
            # while fal keeps the result, so an identical run gets it even with the cache off.
            self._record(state="completed", request_id=self.request_id)
            kept = "cache" if stored else "fal" if self.store is not None else ""
            if not stored and self.store is not None:
                logger.warning("the result of fal request %s is not stored locally; the job ledger "
                               "keeps its id, so an identical run fetches it from fal (free) "
                               "within about an hour", self.request_id)
        kind = EndingKind.COMPLETED_DELIVERED if delivered else EndingKind.COMPLETED_KEPT
        if not delivered:
            logger.info("fal request %s finished after its run stopped waiting; its result is "
                        "kept (%s)", self.request_id, kept or "nowhere")
        self._end(self._snapshot(kind, kept=kept), result=result)

    async def _fail(self, error: BaseException) -> None:
        kept = ""
        if isinstance(error, DownloadError) and self.request_id is not None:
            # Paid for, and fal still has it: the ledger keeps the id for an identical run.
            logger.warning("the result of fal request %s could not be downloaded (%s); the job "
                           "ledger keeps it, so an identical run fetches it instead of paying "
                           "again", self.request_id, error)
            self._record(state="completed", request_id=self.request_id)
            kept = "fal"
        else:
            if isinstance(error, SubmitUncertainError) and self.request_id is None and self._entry:
                log_unnamed_submit(self._entry)
            self._forget_in_ledger()
        self._end(self._snapshot(EndingKind.FAILED, error=error, kept=kept), error=error)

    def _end(self, ending: JobEnding, *, result: EditResult | None = None,
             error: BaseException | None = None) -> None:
        """The one way a job ends: its ending set, out of the runner's registry, its watch timer
        stopped (so it keeps nothing in memory), its waiters told."""
        if self.ending is not None:
            return
        self.ending = ending
        self._move(JobPhase.ENDED)
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        self.runner.forget(self)
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)

    def _snapshot(self, kind: EndingKind, *, error: BaseException | None = None, kept: str | None = None,
                  shared: bool | None = None, still_wanted: bool = False) -> JobEnding:
        if kept is None:
            kept = self.store.kept_where if self.store is not None else ""
        return JobEnding(kind, self.request_id, self.spec.estimated_cost_usd, kept=kept,
                         shared=self.origin is Origin.ADOPTED if shared is None else shared,
                         error=error, still_wanted=still_wanted)

    def _ending_for(self, ticket: "Ticket") -> JobEnding:
        ending = self.ending
        shared = ending.shared or not ticket.leading
        return dataclasses.replace(ending, shared=shared)

    # -- the ledger (only this job writes its entry) -------------------------------------------
    def _record(self, *, state: str, request_id: str | None) -> None:
        ledger = self.store.ledger if self.store is not None else None
        if ledger is None or not self._owns_entry:
            return
        entry = self._entry
        entry.state, entry.request_id = state, request_id
        if state == "submitting":
            entry.submitted_at = time.time()
            entry.keep_until = retention_deadline(entry.submitted_at, self.start_deadline,
                                                  self.spec.inline_results)
        ledger.write(entry)

    def _forget_in_ledger(self) -> None:
        if self.store is not None and (self._owns_entry or self.request_id is not None):
            self.store.ledger.remove(self.key, only_if_request=self.request_id)

    def heartbeat(self) -> None:
        """Tell other processes a live one still follows this job (runner's loop)."""
        if self._owns_entry and self.ending is None and self.store is not None:
            self.store.ledger.write(self._entry)


class Ticket:
    """One run's place at a job: the leading run submits through it; every run waits on it
    and leaves through it."""

    def __init__(self, job: Job, listener: Listener | None, leading: bool):
        self.job = job
        self.listener = listener
        self.leading = leading

    @property
    def request_id(self) -> str | None:
        return self.job.request_id

    @property
    def ending(self) -> JobEnding | None:
        """How the job ended, once it has (None while it lives)."""
        return self.job.ending

    def submit(self, order: JobOrder) -> None:
        """Start the job (the leading run calls this once its references are sent)."""
        self.job.runner.start(self.job, order)

    def fail_before_submit(self, error: BaseException) -> None:
        self.job.runner.call_soon(self.job.fail_before_submit, error)

    async def result(self) -> EditResult:
        return await await_concurrent(self.job.future)

    async def leave(self) -> JobEnding:
        """Stop waiting; what became of the job, as far as known within ENDING_WAIT_SECONDS."""
        leaving = self.job.runner.call(self.job.leave(self))
        try:
            return await asyncio.wait_for(await_concurrent(leaving), ENDING_WAIT_SECONDS)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the words are best effort
            return JobEnding(EndingKind.CANCEL_REQUESTED, self.job.request_id,
                             self.job.spec.estimated_cost_usd,
                             kept=self.job.store.kept_where if self.job.store else "")

    def may_run_anew(self, error: BaseException) -> bool:
        return self.job.may_run_anew(self, error)


def _stale_references(error: ValidationError, urls: list[str], order: JobOrder | None) -> list[int]:
    """Indices of the reused reference URLs (earlier uploads or results) fal said it could not
    fetch or read."""
    if order is None:
        return []
    stale = set()
    for field_error in error.fields:
        location = [part for part in field_error.location if part != "body"]
        if field_error.type not in _UNFETCHABLE_REFERENCE_TYPES or not location:
            continue
        if location[0] == "image_url" and urls:
            stale.add(0)
        elif (location[0] == "image_urls" and len(location) > 1 and isinstance(location[1], int)
              and 0 <= location[1] < len(urls)):
            stale.add(location[1])
    return sorted(i for i in stale if urls[i] in order.reused_urls and i < len(order.references))


async def await_concurrent(future: "concurrent.futures.Future[Any]") -> Any:
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
