"""The job ledger: a durable note of every fal request that may exist and may bill.

A job lives at fal whatever happens to the process that submitted it (a crash, kill -9, a closed
laptop). The ledger remembers it on disk, next to the result cache, from just before the submit
until its result is stored or it is known not to bill, so that an identical run adopts the job
instead of paying again, and a later process can collect what a dead one left behind.

Layout: `<result cache>/jobs/<result cache key>.json`, one small JSON file per job, replaced
atomically (write a temp file, then rename), so several processes can share it safely. An entry
names its owner (pid, host, a per-process token) and is refreshed while the owner follows the job,
so a process can tell an orphan from a job another live process is still watching.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..client.logs import logger

LEDGER_SUBDIRECTORY = "jobs"
LEDGER_FORMAT = 1
# fal keeps a queue result about an hour, and only a few minutes when it is large inline data
# (sync_mode) [docs: inference-api/queue/result]; past that a job cannot be adopted any more.
RESULT_RETENTION_SECONDS = 3600.0
INLINE_RESULT_RETENTION_SECONDS = 360.0
# A live owner refreshes its entries this often; one silent for STALE_AFTER is an orphan.
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 4 * HEARTBEAT_SECONDS

PROCESS_TOKEN = uuid.uuid4().hex  # tells this process's entries from a reused pid's
_HOST = socket.gethostname()


@dataclass
class LedgerEntry:
    """One job that may exist at fal. `request_id` is None until fal named it."""

    cache_key: str
    endpoint_id: str
    submitted_at: float
    keep_until: float
    request_id: str | None = None
    state: str = "submitting"  # submitting | submitted | cancel_requested
    owner_pid: int = field(default_factory=os.getpid)
    owner_host: str = _HOST
    owner_token: str = PROCESS_TOKEN
    updated_at: float = field(default_factory=time.time)
    collect: dict[str, Any] = field(default_factory=dict)  # what collecting the result needs

    @property
    def mine(self) -> bool:
        return self.owner_token == PROCESS_TOKEN

    def owner_gone(self, now: float | None = None) -> bool:
        """True when no live process is following this job any more."""
        if self.mine:
            return False
        now = time.time() if now is None else now
        if now - self.updated_at > STALE_AFTER_SECONDS:
            return True
        return self.owner_host == _HOST and _process_alive(self.owner_pid) is False

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.keep_until


def retention_deadline(submitted_at: float, start_deadline: float, inline_results: bool) -> float:
    """Until when fal may still hold the job's result: it must start within the start deadline,
    and its result is kept for fal's retention window after that."""
    window = INLINE_RESULT_RETENTION_SECONDS if inline_results else RESULT_RETENTION_SECONDS
    return submitted_at + start_deadline + window


class JobLedger:
    """The entries in one directory. Every failure degrades to "not recorded" with a warning:
    the ledger must never fail a run."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"JobLedger({str(self.directory)!r})"

    def path_for(self, cache_key: str) -> Path:
        return self.directory / f"{cache_key}.json"

    def write(self, entry: LedgerEntry) -> None:
        entry.updated_at = time.time()
        data = json.dumps({"format": LEDGER_FORMAT, **asdict(entry)}, indent=1).encode()
        temp = self.directory / f".tmp-{entry.cache_key}-{uuid.uuid4().hex}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path_for(entry.cache_key))
        except OSError as error:
            logger.warning("could not record fal request %s in the job ledger at %s (%s)",
                           entry.request_id or "(being submitted)", self.directory, error)
            _unlink(temp)

    def read(self, cache_key: str) -> LedgerEntry | None:
        return _load(self.path_for(cache_key))

    def remove(self, cache_key: str, *, only_if_request: str | None = None) -> None:
        """Forget the job; with `only_if_request`, only if the entry still names that request
        (another process may have replaced it with a newer job for the same key)."""
        if only_if_request is not None:
            current = self.read(cache_key)
            if current is not None and current.request_id not in (None, only_if_request):
                return
        _unlink(self.path_for(cache_key))

    def entries(self) -> Iterator[LedgerEntry]:
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return
        for path in paths:
            entry = _load(path)
            if entry is not None:
                yield entry

    def drop_expired(self) -> None:
        """Forget jobs whose result fal no longer keeps, or whose submit never got an id."""
        now = time.time()
        for entry in self.entries():
            if entry.expired(now):
                logger.info("fal request %s is past fal's result retention; it is no longer "
                            "followed (its result, if any, is in https://fal.ai/dashboard/requests)",
                            entry.request_id or "(unknown id)")
                self.remove(entry.cache_key, only_if_request=entry.request_id)
            elif entry.request_id is None and entry.owner_gone(now):
                logger.warning("a submit to %s was interrupted before fal named the job; if it "
                               "reached fal it ran and billed: see https://fal.ai/dashboard/requests",
                               entry.endpoint_id)
                self.remove(entry.cache_key, only_if_request=None)


def _load(path: Path) -> LedgerEntry | None:
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("unreadable job ledger entry %s (%s); removing it", path, error)
        _unlink(path)
        return None
    if not isinstance(raw, dict) or raw.pop("format", None) != LEDGER_FORMAT:
        return None
    try:
        return LedgerEntry(**raw)
    except TypeError:
        return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.debug("could not remove %s: %s", path, error)


def _process_alive(pid: int) -> bool | None:
    """Whether a pid on this host is running; None where that cannot be asked safely
    (on Windows os.kill would terminate the process, so the heartbeat decides there)."""
    if sys.platform.startswith("win"):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def ledger_for(cache_directory: Path) -> JobLedger:
    return JobLedger(Path(cache_directory) / LEDGER_SUBDIRECTORY)
