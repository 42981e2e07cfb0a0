"""Where a fal job lives once it is submitted: one background event loop per process.

A node's coroutine can be interrupted, time out, or belong to an event loop that ComfyUI throws
away when the prompt ends; the job at fal goes on regardless, and so must whatever watches it.
So the submit, the wait and the result download of every job run here, in a daemon thread with
its own event loop and its own `FalClient` (a sibling of the caller's). Callers wait on a
`Flight`; when the last one stops waiting, the job is cancelled at fal if it is ours and has not
finished, and whatever fal still completes (or had completed) is downloaded and put in the result
cache, bounded in time. Identical runs (same result-cache key) share one flight (single flight),
and a job named in the job ledger is adopted instead of submitted again.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from dataclasses import asdict
from typing import Any, Callable, Mapping

from ..client import FalClient
from ..client.errors import DownloadError, FalError
from ..client.logs import logger
from ..client.queue_types import CancelOutcome, JobState, QueueUpdate, RequestHandle
from .job_ledger import HEARTBEAT_SECONDS, JobLedger, LedgerEntry, retention_deadline
from .result_cache import ResultCache
from .result_collection import CollectSpec, Decoder, EditResult, collect_result
from .result_images import decode_image

# A job nobody waits for any more is still followed this long, to keep what it was paid for.
ABANDONED_WATCH_SECONDS = 600.0
# How long a caller that stops waiting may wait to learn what became of the job (the cancel's
# answer); the node must return well within 2 s of an interrupt.
ENDING_WAIT_SECONDS = 1.2
_MAX_SIBLING_CLIENTS = 4

Listener = Callable[[str, Any], None]  # (kind, payload): "submitted", "update", "downloaded"


class Flight:
    """One fal job and everyone waiting for it."""

    def __init__(self, tracker: "JobTracker", key: str, client: FalClient, spec: CollectSpec, *,
                 ledger: JobLedger | None, cache: ResultCache | None, decode: Decoder,
                 ours: bool, start_deadline: float):
        self.tracker = tracker
        self.key = key
        self.client = client
        self.spec = spec
        self.ledger = ledger
        self.cache = cache
        self.decode = decode
        self.ours = ours  # submitted by this process for a caller (so it may be cancelled)
        self.start_deadline = start_deadline
        self.future: concurrent.futures.Future[EditResult] = concurrent.futures.Future()
        self.request_id: str | None = None
        self.handle: RequestHandle | None = None
        self.phase = "preparing"  # preparing, submitting, queued, running, completed, done
        self.abandoned = False
        self.handed_over = False  # the leader gave the submit to the tracker
        self.rejoined = False  # someone joined after every earlier caller had given up
        self.waiters = 0
        self.cancel_outcome: CancelOutcome | None = None
        self.uploaded_urls: list[str] = []  # the leader's reference URLs, as submitted
        self.reused_urls: set[str | None] = set()  # those that came from an earlier upload
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self._entry: LedgerEntry | None = None
        self._finished_hint: asyncio.Event | None = None  # made in the tracker's loop
        self.watch_timer: asyncio.TimerHandle | None = None  # ends the watch of an abandoned job

    # -- callers (any thread) -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)
            if self.request_id is not None:
                listener("submitted", self.request_id)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def submit(self, arguments: dict[str, Any]) -> None:
        """Start the job (the leader calls this once its references are uploaded)."""
        self.handed_over = True
        self.tracker.start(self, self._drive(arguments))

    def fail_before_submit(self, error: BaseException) -> None:
        """The leader could not get as far as submitting: nothing exists at fal."""
        self._end(error=error)

    def release(self) -> concurrent.futures.Future[str]:
        """One caller stops waiting; the last one abandons the job. Resolves to the ending in
        words (what became of the job at fal), as far as it is known within a moment."""
        with self._lock:
            self.waiters -= 1
            last = self.waiters <= 0
        if not last or self.future.done():
            done: concurrent.futures.Future[str] = concurrent.futures.Future()
            done.set_result(self._ending_when_done())
            return done
        return self.tracker.call(self._abandon())

    # -- the job (tracker loop) ---------------------------------------------------------------
    def _emit(self, kind: str, payload: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, payload)
            except Exception as error:  # noqa: BLE001 - a broken progress sink must not stop the job
                logger.debug("progress listener failed: %s", error)

    async def _drive(self, arguments: dict[str, Any] | None) -> None:
        self._finished_hint = asyncio.Event()
        try:
            if arguments is not None:
                await self._submit(arguments)
            output = await self._follow()
            self.phase = "completed"
            result = await collect_result(self.client, output, self.handle, self.spec,
                                          decode=self.decode,
                                          on_downloaded=lambda d, t: self._emit("downloaded", (d, t)))
            if self.cache is not None:
                await asyncio.to_thread(self.cache.put, self.key, result)
            self._forget_in_ledger()
            self._finish(result)
        except asyncio.CancelledError:
            # Only the tracker cancels (abandoned too long, or shutting down): the ledger keeps
            # the job so a later run or process can still collect it.
            self._end(error=FalError("The job was left to a later run to collect",
                                     request_id=self.request_id))
            raise
        except BaseException as error:
            self._settle_failure(error)
            self._end(error=error)

    async def _submit(self, arguments: dict[str, Any]) -> None:
        self.phase = "submitting"
        self._record(LedgerEntry(cache_key=self.key, endpoint_id=self.spec.endpoint_id,
                                 submitted_at=time.time(), keep_until=self._keep_until(),
                                 collect=asdict(self.spec)))
        self.handle = await self.client.submit(self.spec.endpoint_id, arguments,
                                               start_deadline=self.start_deadline,
                                               on_request_id=self._named)
        self._named(self.handle.request_id)
        self.phase = "queued"

    def _named(self, request_id: str) -> None:
        if self.request_id == request_id:
            return
        self.request_id = request_id
        if self._entry is not None:
            self._entry.request_id = request_id
            self._entry.state = "submitted"
            self._record(self._entry)
        self._emit("submitted", request_id)
        if self.abandoned and self.ours:
            # Nobody wants this job any more: stop it the moment it has a name.
            handle = self.client.handle_for(self.spec.endpoint_id, request_id)
            asyncio.ensure_future(self._cancel(handle))

    async def _follow(self) -> dict[str, Any]:
        def on_update(update: QueueUpdate) -> None:
            if update.state is JobState.IN_QUEUE:
                self.phase = "queued"
            elif update.state is JobState.IN_PROGRESS:
                self.phase = "running"
            else:
                self.phase = "completed"
            self._emit("update", update)
        following = asyncio.ensure_future(self.client.follow(self.handle, on_update=on_update))
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
        return await self.client.result(self.handle)

    async def _abandon(self) -> str:
        self.abandoned = True
        if self.future.done():
            return self._ending_when_done()
        if self.ours and self.phase == "preparing":
            self.fail_before_submit(FalError("Stopped before anything was sent to fal"))
            return "nothing was sent to fal; nothing was billed"
        self.tracker.watch_for_at_most(self, ABANDONED_WATCH_SECONDS)
        if not self.ours:
            return ("the job was submitted by an earlier run; it is still followed and its "
                    "result kept" + self._kept_suffix())
        if self.request_id is None:
            return ("the submit was still on its way to fal; the job will be cancelled the "
                    "moment fal names it")
        if self.phase == "completed":
            return "the job had already finished at fal and was billed" + self._kept_suffix()
        was_queued = self.phase in ("queued", "submitting")
        handle = self.handle or self.client.handle_for(self.spec.endpoint_id, self.request_id)
        outcome = await self._cancel(handle)
        if outcome is CancelOutcome.ALREADY_COMPLETED:
            if self._finished_hint is not None:
                self._finished_hint.set()
            return "the job had already finished at fal and was billed" + self._kept_suffix()
        if outcome is CancelOutcome.NOT_FOUND:
            return "fal no longer knows the job"
        if outcome is CancelOutcome.UNCONFIRMED:
            return "fal did not confirm the cancel; the job is still followed" + self._kept_suffix()
        if was_queued:
            return "the job was cancelled at fal before it started; nothing was billed"
        return ("fal was asked to cancel the running job; if it finishes anyway it is billed"
                + self._kept_suffix())

    async def _cancel(self, handle: RequestHandle) -> CancelOutcome:
        outcome = self.cancel_outcome = await self.client.cancel_quietly(handle)
        if self._entry is not None and outcome is CancelOutcome.REQUESTED:
            self._entry.state = "cancel_requested"
            self._record(self._entry)
        return outcome

    def _kept_suffix(self) -> str:
        return ("; its result is kept in the result cache" if self.cache is not None
                else "; its result is not kept (the result cache is off)")

    def _settle_failure(self, error: BaseException) -> None:
        """Forget the job in the ledger unless its paid result may still be fetched later."""
        if isinstance(error, DownloadError) and self.request_id is not None:
            logger.warning("the result of fal request %s could not be downloaded (%s); the job "
                           "ledger keeps it, so an identical run fetches it instead of paying "
                           "again", self.request_id, error)
            return
        self._forget_in_ledger()

    def _record(self, entry: LedgerEntry) -> None:
        if self.ledger is None or not self.ours:
            return
        self._entry = entry
        self.ledger.write(entry)

    def _forget_in_ledger(self) -> None:
        if self.ledger is not None:
            self.ledger.remove(self.key, only_if_request=self.request_id)

    def heartbeat(self) -> None:
        if self._entry is not None and not self.future.done():
            self._record(self._entry)

    def _keep_until(self) -> float:
        return retention_deadline(time.time(), self.start_deadline, inline_results=self.spec.inline_results)

    def _finish(self, result: EditResult) -> None:
        self._end(result=result)
        if self.abandoned:
            logger.info("fal request %s finished after its run stopped waiting; its result is "
                        "kept in the result cache", self.request_id)

    def _end(self, *, result: EditResult | None = None, error: BaseException | None = None) -> None:
        """The one way a flight ends: out of the registry, its watch timer stopped (so it keeps
        nothing in memory), its waiters told."""
        self.phase = "done"
        if self.watch_timer is not None:  # only ever armed, and so only cancelled, on the loop
            self.watch_timer.cancel()
            self.watch_timer = None
        self.tracker.forget(self)
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)

    def _ending_when_done(self) -> str:
        if not self.future.done():
            return "the job is still followed"
        if self.future.exception() is None:
            return "the job finished and was billed" + self._kept_suffix()
        return f"the job ended without a result ({self.future.exception()})"


class JobTracker:
    """The process's background loop for fal jobs, and the registry of flights by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._flights: dict[tuple[str, str], Flight] = {}
        self._clients: dict[tuple, FalClient] = {}

    # -- flights ---------------------------------------------------------------------------------
    def join_or_lead(self, key: str, client: FalClient, spec: CollectSpec, *,
                     ledger: JobLedger | None, cache: ResultCache | None, start_deadline: float,
                     decode: Decoder = decode_image) -> tuple[Flight, bool]:
        """The flight for `key`: an existing one (joined), a job the ledger names (adopted), or
        a new one this caller leads (True: it must call `submit` or `fail_before_submit`)."""
        scope = (str(ledger.directory) if ledger is not None else "", key)
        with self._lock:
            flight = self._flights.get(scope) if ledger is not None else None
            if flight is not None:
                # A job a cancelled run left behind is joined too: if fal ignored the cancel its
                # result arrives here unpaid-for again; if the cancel worked, the caller leads anew.
                flight.waiters += 1
                flight.rejoined = flight.rejoined or flight.abandoned
                return flight, False
            sibling = self._sibling(client)
            entry = ledger.read(key) if ledger is not None else None
            adoptable = entry is not None and entry.request_id is not None and not entry.expired()
            flight = Flight(self, key, sibling, spec, ledger=ledger, cache=cache, decode=decode,
                            ours=not adoptable, start_deadline=start_deadline)
            flight.waiters = 1
            if ledger is not None:
                self._flights[scope] = flight
        if adoptable:
            self._adopt(flight, entry)
            return flight, False
        return flight, True

    def collect_left_jobs(self, client: FalClient, ledger: JobLedger, cache: ResultCache | None,
                          decode: Decoder = decode_image) -> list[Flight]:
        """Follow every job a dead process left in the ledger, into the result cache."""
        ledger.drop_expired()
        flights = []
        for entry in ledger.entries():
            if entry.request_id is None or not entry.owner_gone():
                continue
            scope = (str(ledger.directory), entry.cache_key)
            with self._lock:
                if scope in self._flights:
                    continue
                spec = CollectSpec(**entry.collect)
                flight = Flight(self, entry.cache_key, self._sibling(client), spec, ledger=ledger,
                                cache=cache, decode=decode, ours=False, start_deadline=0.0)
                flight.abandoned = True
                self._flights[scope] = flight
            logger.info("collecting fal request %s, left running by an earlier process",
                        entry.request_id)
            self._adopt(flight, entry)
            self.watch_for_at_most(flight, ABANDONED_WATCH_SECONDS)
            flights.append(flight)
        return flights

    def _adopt(self, flight: Flight, entry: LedgerEntry) -> None:
        flight.request_id = entry.request_id
        flight.handle = flight.client.handle_for(entry.endpoint_id, entry.request_id)
        flight.phase = "queued"
        logger.info("fal request %s for the same inputs is already known; following it instead "
                    "of paying again", entry.request_id)
        self.start(flight, flight._drive(None))

    def forget(self, flight: Flight) -> None:
        scope = (str(flight.ledger.directory) if flight.ledger is not None else "", flight.key)
        with self._lock:
            if self._flights.get(scope) is flight:
                del self._flights[scope]

    # -- the loop --------------------------------------------------------------------------------
    def start(self, flight: Flight, work: Any) -> None:
        loop = self._ensure_loop()

        def begin() -> None:
            flight._task = loop.create_task(work)
        loop.call_soon_threadsafe(begin)

    def call(self, work: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(work, self._ensure_loop())

    def watch_for_at_most(self, flight: Flight, seconds: float) -> None:
        def stop() -> None:
            if flight._task is not None and not flight._task.done():
                logger.info("fal request %s is no longer followed after %.0f s; the job ledger "
                            "keeps it for a later run", flight.request_id, seconds)
                flight._task.cancel()
        def arm() -> None:
            if flight.phase != "done" and flight.watch_timer is None:
                flight.watch_timer = self._loop.call_later(seconds, stop)
        self._ensure_loop().call_soon_threadsafe(arm)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._run_loop, args=(self._loop, ready),
                                                name="fal-kontext-jobs", daemon=True)
                self._thread.start()
                ready.wait()
            return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.create_task(self._heartbeats())
        loop.run_forever()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with self._lock:
                flights = list(self._flights.values())
            for flight in flights:
                flight.heartbeat()

    def _sibling(self, client: FalClient) -> FalClient:
        """This loop's client acting for the same account and hosts as `client` (caller holds
        the lock)."""
        identity = client.identity
        sibling = self._clients.get(identity)
        if sibling is None:
            sibling = self._clients[identity] = client.sibling()
            while len(self._clients) > _MAX_SIBLING_CLIENTS:
                oldest = next(iter(self._clients))
                old = self._clients.pop(oldest)
                if self._loop is not None:
                    asyncio.run_coroutine_threadsafe(old.aclose(), self._loop)
        return sibling

    def reset(self, timeout: float = 5.0) -> None:
        """Stop following every job and close the clients (tests; process shutdown)."""
        with self._lock:
            flights = list(self._flights.values())
            self._flights.clear()
            clients = list(self._clients.values())
            self._clients.clear()
            loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def stop_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                     and t.get_coro().__name__ != "_heartbeats"]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.aclose()
        try:
            asyncio.run_coroutine_threadsafe(stop_all(), loop).result(timeout)
        except Exception as error:  # noqa: BLE001 - best effort
            logger.debug("job tracker reset incomplete: %s", error)
        del flights


PROCESS_JOBS = JobTracker()


def start_collecting_left_jobs(cache: "ResultCache | None",
                               environ: Mapping[str, str] = os.environ) -> list[Flight]:
    """Follow, in the background, the jobs a dead process left in the job ledger, so their paid
    results land in the result cache (called when the pack loads). Quietly does nothing without
    a result cache, a ledger or a key."""
    from .job_ledger import ledger_for
    if cache is None:
        return []
    ledger = ledger_for(cache.directory)
    if not ledger.directory.is_dir():
        return []
    try:
        client = FalClient(environ=environ)
    except FalError as error:
        logger.info("jobs left in the job ledger are not collected now (%s)", error)
        return []
    return PROCESS_JOBS.collect_left_jobs(client, ledger, cache)
