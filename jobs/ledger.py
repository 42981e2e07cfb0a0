"""The job ledger: a durable note of every fal request that may exist and may bill.

A job lives at fal whatever happens to the process that submitted it (a crash, kill -9, a closed
laptop). The ledger remembers it on disk from the moment a run decides to submit it until its
result is stored, or handed over with the result cache off, or it is known not to bill, so that
an identical run adopts the job instead of paying again, in this process or another one, and a
later process can collect what a dead one left behind.

Layout: `<directory>/<result cache key>.json`, one small JSON file per job. A run *claims* a key
by creating its file (create-if-absent, atomic), so of two processes queueing the same prompt at
the same moment exactly one submits and the other follows; later writes replace the file
atomically. An entry names its owner (pid, host, a per-process token) and is refreshed while the
owner follows the job, so a process can tell an orphan from a job a live process is watching.
When the disk refuses a write (full, read-only), the entry is kept in this process's memory
instead, so the promise holds at least until the process ends.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from ..client.logs import logger
from .durable import fsync_directory, write_synced

LEDGER_SUBDIRECTORY = "jobs"
LEDGER_FORMAT = 1
# fal keeps a queue result about an hour, and only a few minutes when it is large inline data
# (sync_mode) [docs: inference-api/queue/result]; past that a job cannot be adopted any more.
RESULT_RETENTION_SECONDS = 3600.0
INLINE_RESULT_RETENTION_SECONDS = 360.0
# A live owner refreshes its entries this often; one silent for STALE_AFTER is an orphan.
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 4 * HEARTBEAT_SECONDS

# preparing: references on their way, nothing at fal; submitting: fal may have it, no id yet;
# submitted / cancel_requested: fal named it; completed: finished, result not stored anywhere
# but at fal (the cache is off or could not take it), so a re-run fetches it from fal.
STATES = ("preparing", "submitting", "submitted", "cancel_requested", "completed")
_BAD_SUFFIX = ".bad"

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
    state: str = "preparing"
    owner_pid: int = field(default_factory=os.getpid)
    owner_host: str = _HOST
    owner_token: str = PROCESS_TOKEN
    updated_at: float = field(default_factory=time.time)
    collect: dict[str, Any] = field(default_factory=dict)  # what collecting the result needs

    @property
    def mine(self) -> bool:
        return self.owner_token == PROCESS_TOKEN

    @property
    def named(self) -> bool:
        return self.request_id is not None

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

    def owned_by_me(self) -> "LedgerEntry":
        """This entry as this process's (it follows the job from now on)."""
        return LedgerEntry(**{**asdict(self), "owner_pid": os.getpid(), "owner_host": _HOST,
                              "owner_token": PROCESS_TOKEN})


def retention_deadline(submitted_at: float, start_deadline: float, inline_results: bool) -> float:
    """Until when fal may still hold the job's result: it must start within the start deadline,
    and its result is kept for fal's retention window after that."""
    window = INLINE_RESULT_RETENTION_SECONDS if inline_results else RESULT_RETENTION_SECONDS
    return submitted_at + start_deadline + window


class JobLedger:
    """The entries in one directory (one shared instance per directory: `ledger_for`). Every
    disk failure degrades to keeping the entry in memory with a warning: never a failed run."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._memory: dict[str, LedgerEntry] = {}  # entries the disk refused
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JobLedger({str(self.directory)!r})"

    def path_for(self, cache_key: str) -> Path:
        return self.directory / f"{cache_key}.json"

    def claim(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Record `entry` unless its key already has one: None when claimed (the caller leads),
        else the entry found (some run, here or in another process, has the job)."""
        with self._lock:
            existing = self._read(entry.cache_key)
            if existing is not None:
                return existing
            if self._create(entry):
                return None
            existing = self._read(entry.cache_key)  # another process won the race
            if existing is None:  # and gave it up already: unlikely; ours now
                self._replace(entry)
            return existing

    def take_over(self, entry: LedgerEntry, stale: LedgerEntry) -> bool:
        """Replace `stale` (expired, or its owner died before fal named the job) by `entry`:
        True if this caller got it, False if another run got there first."""
        with self._lock:
            current = self._read(entry.cache_key)
            if current is not None and (current.owner_token, current.updated_at) != (
                    stale.owner_token, stale.updated_at):
                return False
            self._remove(entry.cache_key)
            return self._create(entry)

    def write(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._replace(entry)

    def read(self, cache_key: str) -> LedgerEntry | None:
        with self._lock:
            return self._read(cache_key)

    def remove(self, cache_key: str, *, only_if_request: str | None = None) -> None:
        """Forget the job; with `only_if_request`, only if the entry still names that request
        (another process may have replaced it with a newer job for the same key)."""
        with self._lock:
            if only_if_request is not None:
                current = self._read(cache_key)
                if current is not None and current.request_id not in (None, only_if_request):
                    return
            self._remove(cache_key)

    def entries(self) -> Iterator[LedgerEntry]:
        try:
            keys = sorted(path.stem for path in self.directory.glob("*.json"))
        except OSError:
            keys = []
        with self._lock:
            keys = sorted(set(keys) | set(self._memory))
        for key in keys:
            entry = self.read(key)
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
            elif not entry.named and entry.owner_gone(now):
                if entry.state == "submitting":
                    log_unnamed_submit(entry)
                self.remove(entry.cache_key, only_if_request=None)

    # -- disk, with memory as the fallback (caller holds the lock) ----------------------------
    def _read(self, cache_key: str) -> LedgerEntry | None:
        entry = _load(self.path_for(cache_key))
        return entry if entry is not None else self._memory.get(cache_key)

    def _create(self, entry: LedgerEntry) -> bool:
        """Create the entry's file if there is none (atomically: a complete file or nothing)."""
        temp = self._temp_path(entry)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_synced(temp, _serialise(entry))
            try:
                os.link(temp, self.path_for(entry.cache_key))
            except FileExistsError:
                return False
            fsync_directory(self.directory)
            self._memory.pop(entry.cache_key, None)
            return True
        except OSError as error:
            return self._remember(entry, error, create=True)
        finally:
            _unlink(temp)

    def _replace(self, entry: LedgerEntry) -> None:
        entry.updated_at = time.time()
        temp = self._temp_path(entry)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_synced(temp, _serialise(entry))
            os.replace(temp, self.path_for(entry.cache_key))
            self._memory.pop(entry.cache_key, None)
        except OSError as error:
            _unlink(temp)
            self._remember(entry, error, create=False)

    def _remember(self, entry: LedgerEntry, error: OSError, *, create: bool) -> bool:
        if create and entry.cache_key in self._memory:
            return False
        logger.warning("could not record fal request %s in the job ledger at %s (%s); this "
                       "process remembers it until it ends", entry.request_id or "(not named yet)",
                       self.directory, error)
        self._memory[entry.cache_key] = entry
        return True

    def _remove(self, cache_key: str) -> None:
        self._memory.pop(cache_key, None)
        _unlink(self.path_for(cache_key))

    def _temp_path(self, entry: LedgerEntry) -> Path:
        return self.directory / f".tmp-{entry.cache_key}-{uuid.uuid4().hex}"


def log_unnamed_submit(entry: LedgerEntry) -> None:
    """A submit whose answer never arrived: the job may exist at fal, under an id nobody knows."""
    logger.warning(
        "a submit to %s was interrupted before fal named the job; if it reached fal it ran and "
        "billed: find its request id in https://fal.ai/dashboard/requests and fetch the result "
        "(free) with the 'fal Result by Request ID' node or `fal-kontext collect REQUEST_ID "
        "--endpoint %s`", entry.endpoint_id, entry.endpoint_id)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "cache_key": (str,), "endpoint_id": (str,), "submitted_at": (int, float),
    "keep_until": (int, float), "request_id": (str, type(None)), "state": (str,),
    "owner_pid": (int,), "owner_host": (str,), "owner_token": (str,),
    "updated_at": (int, float), "collect": (dict,),
}
assert set(_FIELD_TYPES) == {f.name for f in fields(LedgerEntry)}


def _serialise(entry: LedgerEntry) -> bytes:
    return json.dumps({"format": LEDGER_FORMAT, **asdict(entry)}, indent=1).encode()


def _load(path: Path) -> LedgerEntry | None:
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return _set_aside(path, f"unreadable: {error}")
    if not isinstance(raw, dict) or raw.pop("format", None) != LEDGER_FORMAT:
        return _set_aside(path, f"not a format-{LEDGER_FORMAT} entry")
    problem = _problem(raw, path)
    if problem:
        return _set_aside(path, problem)
    return LedgerEntry(**raw)


def _problem(raw: dict[str, Any], path: Path) -> str:
    """What is wrong with a decoded entry, or "" (a hand edit or another writer may break it)."""
    missing = {"cache_key", "endpoint_id", "submitted_at", "keep_until"} - set(raw)
    if missing:
        return f"missing {', '.join(sorted(missing))}"
    for name, value in raw.items():
        types = _FIELD_TYPES.get(name)
        if types is None:
            return f"unknown field {name!r}"
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {name!r} is {type(value).__name__}"
    if raw.get("state", "preparing") not in STATES:
        return f"unknown state {raw['state']!r}"
    if raw["cache_key"] != path.stem:
        return "its key does not match its file name"
    return ""


def _set_aside(path: Path, problem: str) -> None:
    """Move a bad entry out of the way (kept for a look), so it never breaks a run again."""
    logger.warning("job ledger entry %s is %s; set aside as %s%s", path, problem, path.name,
                   _BAD_SUFFIX)
    try:
        os.replace(path, path.with_name(path.name + _BAD_SUFFIX))
    except OSError:
        _unlink(path)
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


_LEDGERS: dict[str, JobLedger] = {}
_LEDGERS_LOCK = threading.Lock()


def ledger_for(cache_directory: Path) -> JobLedger:
    """The ledger that goes with a result cache directory (whether or not the cache is on),
    one instance per directory in this process."""
    directory = Path(cache_directory) / LEDGER_SUBDIRECTORY
    with _LEDGERS_LOCK:
        return _LEDGERS.setdefault(os.path.abspath(directory), JobLedger(directory))
