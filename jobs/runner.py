"""The job runner: one background event loop per process where every fal job lives, and the
registry that gives identical runs one job (single flight).

A run asks `join` for a ticket: the job already running for the same key in this process
(joined), a job the job ledger names (adopted: another run's, another process's, a dead one's),
a job another process is submitting right now (its id awaited, then followed), or a new job the
run leads (it sends the references, then `Ticket.submit`). The ledger claim is atomic across
processes, so of two processes queueing the same prompt exactly one submits. `follow_request`
gives a ticket for a request fal already has, named by its id: adopted, never submitted.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
import time
from dataclasses import asdict
from typing import Any, Callable, Coroutine, Mapping

from ..client import FalClient
from ..client.errors import FalError
from ..client.logs import logger
from .job import ABANDONED_WATCH_SECONDS, Job, JobOrder, Listener, Origin, Ticket
from .ledger import HEARTBEAT_SECONDS, JobLedger, LedgerEntry, log_unnamed_submit, retention_deadline
from .lifecycle import JobPhase
from .result_cache import is_cacheable_key
from .result_collection import CollectSpec, Decoder
from .store import JobStore

_MAX_SIBLING_CLIENTS = 4
_CLAIM_ATTEMPTS = 3


class JobRunner:
    """The process's background loop for fal jobs, and the registry of jobs by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._jobs: dict[tuple[str, str], Job] = {}
        self._clients: dict[tuple, FalClient] = {}

    # -- jobs ------------------------------------------------------------------------------------
    def join(self, key: str, client: FalClient, spec: CollectSpec, store: JobStore | None, *,
             start_deadline: float, decode: Decoder,
             listener: Listener | None = None) -> Ticket:
        """A ticket for the job of `key`; `ticket.leading` says this run must submit it (or call
        `fail_before_submit`). Runs without a seed (key not cacheable) never share a job."""
        store = store if is_cacheable_key(key) else None
        with self._lock:
            job = self._jobs.get(self._scope(store, key)) if store is not None else None
            if job is not None and job.joinable:
                return job.attach(listener, leading=False)
            job = self._new_job(key, self._sibling(client), spec, store, start_deadline, decode)
            if store is not None:
                self._jobs[self._scope(store, key)] = job
            ticket = job.attach(listener, leading=job.origin is Origin.OURS)
        if not ticket.leading:
            self.start(job, None)
        return ticket

    def _new_job(self, key: str, client: FalClient, spec: CollectSpec, store: JobStore | None,
                 start_deadline: float, decode: Decoder) -> Job:
        def job(origin: Origin, phase: JobPhase, entry: LedgerEntry | None = None,
                owns_entry: bool = True) -> Job:
            job_spec = spec
            if entry is not None and entry.named:
                # Its outputs live as long as the process that submitted it asked fal to keep them.
                job_spec = dataclasses.replace(spec,
                                               output_lifetime=entry.collect.get("output_lifetime"))
            return Job(self, key, client, job_spec, store, decode=decode,
                       start_deadline=start_deadline, origin=origin, phase=phase, entry=entry,
                       owns_entry=owns_entry)

        if store is None:
            return job(Origin.OURS, JobPhase.PREPARING)
        now = time.time()
        claim = LedgerEntry(cache_key=key, endpoint_id=spec.endpoint_id, submitted_at=now,
                            keep_until=retention_deadline(now, start_deadline, spec.inline_results),
                            collect=asdict(spec))
        for _ in range(_CLAIM_ATTEMPTS):
            found = store.ledger.claim(claim)
            if found is None:
                return job(Origin.OURS, JobPhase.PREPARING, claim)
            if found.named and not found.expired():
                return self._adopted(job, store.ledger, found)
            if not found.expired() and not found.mine and not found.owner_gone():
                return job(Origin.ADOPTED, JobPhase.AWAITING_NAME, owns_entry=False)
            # Expired, or its submit died before fal named it: the key is free again.
            if found.state == "submitting" and not found.expired():
                log_unnamed_submit(found)
            if store.ledger.take_over(claim, found):
                return job(Origin.OURS, JobPhase.PREPARING, claim)
        raise FalError("The job ledger keeps changing under this run; try again")

    def follow_request(self, key: str, request_id: str, client: FalClient, spec: CollectSpec,
                       store: JobStore | None, *, decode: Decoder,
                       listener: Listener | None = None) -> Ticket:
        """A ticket for a request fal already has, named by its id (from fal's dashboard, say):
        the job is adopted, so it is followed and collected, stored under `key`, and never
        submitted or cancelled. Runs following the same key share one job."""
        store = store if is_cacheable_key(key) else None
        with self._lock:
            job = self._jobs.get(self._scope(store, key)) if store is not None else None
            if job is not None and job.joinable:
                return job.attach(listener, leading=False)
            job = Job(self, key, self._sibling(client), spec, store, decode=decode,
                      start_deadline=0.0, origin=Origin.ADOPTED, phase=JobPhase.QUEUED,
                      request_id=request_id)
            if store is not None:
                self._jobs[self._scope(store, key)] = job
            ticket = job.attach(listener, leading=False)
        self.start(job, None)
        return ticket

    @staticmethod
    def _adopted(job: Callable[..., Job], ledger: JobLedger, entry: LedgerEntry) -> Job:
        logger.info("fal request %s for the same inputs is already known; following it instead "
                    "of paying again", entry.request_id)
        if entry.owner_gone() or entry.mine:
            entry = entry.owned_by_me()  # we follow it now: our heartbeat keeps it alive
            ledger.write(entry)
            return job(Origin.ADOPTED, JobPhase.QUEUED, entry)
        return job(Origin.ADOPTED, JobPhase.QUEUED, entry, owns_entry=False)

    def collect_left_jobs(self, client: FalClient, store: JobStore, decode: Decoder) -> list[Job]:
        """Follow every job a dead process left in the ledger, so its paid result is stored."""
        store.ledger.drop_expired()
        jobs = []
        for entry in store.ledger.entries():
            if not entry.named or not entry.owner_gone():
                continue
            with self._lock:
                if self._scope(store, entry.cache_key) in self._jobs:
                    continue
                spec = CollectSpec(**entry.collect)
                entry = entry.owned_by_me()
                store.ledger.write(entry)
                job = Job(self, entry.cache_key, self._sibling(client), spec, store,
                          decode=decode, start_deadline=0.0, origin=Origin.ADOPTED,
                          phase=JobPhase.QUEUED, entry=entry)
                self._jobs[self._scope(store, entry.cache_key)] = job
            logger.info("collecting fal request %s, left running by an earlier process",
                        entry.request_id)
            self.start(job, None)
            self.call_soon(job.watch_for_at_most, ABANDONED_WATCH_SECONDS)
            jobs.append(job)
        return jobs

    def forget(self, job: Job) -> None:
        scope = self._scope(job.store, job.key)
        with self._lock:
            if self._jobs.get(scope) is job:
                del self._jobs[scope]

    @staticmethod
    def _scope(store: JobStore | None, key: str) -> tuple[str, str]:
        return (str(store.ledger.directory) if store is not None else "", key)

    # -- the loop --------------------------------------------------------------------------------
    def start(self, job: Job, order: JobOrder | None) -> None:
        self._ensure_loop().call_soon_threadsafe(job.begin, order)

    def call(self, work: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(work, self._ensure_loop())

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None:
        self._ensure_loop().call_soon_threadsafe(function, *args)

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
                jobs = list(self._jobs.values())
            for job in jobs:
                job.heartbeat()

    def _sibling(self, client: FalClient) -> FalClient:
        """This loop's client acting for the same account and hosts as `client` (caller holds
        the lock)."""
        identity = client.identity
        sibling = self._clients.get(identity)
        if sibling is None:
            sibling = self._clients[identity] = client.sibling()
            while len(self._clients) > _MAX_SIBLING_CLIENTS:
                old = self._clients.pop(next(iter(self._clients)))
                if self._loop is not None:
                    asyncio.run_coroutine_threadsafe(old.aclose(), self._loop)
        return sibling

    def reset(self, timeout: float = 5.0) -> None:
        """Stop following every job and close the clients (tests; process shutdown)."""
        with self._lock:
            self._jobs.clear()
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
            logger.debug("job runner reset incomplete: %s", error)


    def close(self, timeout: float = 5.0) -> None:
        """`reset`, then end the loop's thread (a runner that is not the process's own)."""
        self.reset(timeout)
        with self._loop_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)


PROCESS_JOBS = JobRunner()


def start_collecting_left_jobs(store: JobStore, decode: Decoder,
                               environ: Mapping[str, str] = os.environ) -> list[Job]:
    """Follow, in the background, the jobs a dead process left in the job ledger, so their paid
    results land in the result cache (or stay collectable by an identical run). Quietly does
    nothing without a result cache (the ledger keeps the jobs for an identical run then), a
    ledger folder or a key."""
    if store.cache is None or not store.ledger.directory.is_dir():
        return []
    try:
        client = FalClient(environ=environ)
    except FalError as error:
        logger.info("jobs left in the job ledger are not collected now (%s)", error)
        return []
    return PROCESS_JOBS.collect_left_jobs(client, store, decode)
