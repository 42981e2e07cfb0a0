"""Storage bookkeeping that outlives one client: the process-wide cache of uploaded content, and
the table of result files fal serves (so a result fed back into an edit goes as its URL).

Both hold plain data only (origin, content hash -> URL, expiry), so they are safe to share
across the event loops ComfyUI creates per prompt.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping

from .errors import ConfigurationError

DEFAULT_UPLOAD_TTL_SECONDS = 6 * 3600.0  # well inside the lifetime we ask fal to keep uploads
# How long fal keeps what the pack puts on its public CDN (references) and what a job writes
# there (outputs): the pack keeps its own copies, so a day is plenty.
STORAGE_LIFETIME_ENV = "FAL_KONTEXT_FAL_STORAGE_SECONDS"
UPLOAD_LIFETIME_SECONDS = 24 * 3600
_LIFETIME_OFF = frozenset({"off", "none", "default", "fal", ""})
DEFAULT_UPLOAD_CACHE_ENTRIES = 512
# A result file is handed back to fal by its URL only while this much of the lifetime asked for
# is left (half of it for shorter lifetimes): fal may fetch a reference only when a runner takes
# the job, and a job may wait up to an hour for one (the longest run timeout).
SERVED_URL_MARGIN_SECONDS = 3600.0
DEFAULT_SERVED_FILE_ENTRIES = 512


def storage_lifetime_seconds(environ: Mapping[str, str]) -> int | None:
    """The lifetime to ask fal for, from FAL_KONTEXT_FAL_STORAGE_SECONDS (None = fal's default)."""
    raw = environ.get(STORAGE_LIFETIME_ENV)
    if raw is None:
        return UPLOAD_LIFETIME_SECONDS
    text = raw.strip().lower()
    if text in _LIFETIME_OFF:
        return None
    try:
        seconds = int(float(text))
    except ValueError:
        seconds = 0
    if seconds < 60:
        raise ConfigurationError(f"{STORAGE_LIFETIME_ENV}={raw!r} must be a number of seconds "
                                 "(60 or more), or 'off' to keep fal's account default")
    return seconds


def lifecycle_header_value(seconds: int) -> str:
    """fal's lifecycle preference: JSON with the expiry in seconds."""
    return json.dumps({"expiration_duration_seconds": int(seconds)})


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class UploadCache:
    """(storage origin, content key) -> URL, least-recently-used, entries expire after `ttl`."""

    def __init__(self, max_entries: int = DEFAULT_UPLOAD_CACHE_ENTRIES,
                 ttl: float = DEFAULT_UPLOAD_TTL_SECONDS, clock=time.monotonic):
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, origin: str, key: str, max_age: float | None = None) -> str | None:
        """The URL, unless older than `ttl` (or `max_age`, when the caller knows fal keeps
        the file for less time)."""
        with self._lock:
            entry = self._entries.get((origin, key))
            if entry is None:
                return None
            url, stored_at = entry
            if self._clock() - stored_at > min(self.ttl, max_age if max_age is not None else self.ttl):
                del self._entries[(origin, key)]
                return None
            self._entries.move_to_end((origin, key))
            return url

    def put(self, origin: str, key: str, url: str) -> None:
        with self._lock:
            self._entries[(origin, key)] = (url, self._clock())
            self._entries.move_to_end((origin, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_url(self, url: str) -> None:
        """Drop every entry pointing at `url` (fal could not fetch it any more)."""
        with self._lock:
            for cache_key in [k for k, (u, _) in self._entries.items() if u == url]:
                del self._entries[cache_key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


SHARED_UPLOAD_CACHE = UploadCache()


@dataclass(frozen=True)
class ServedFile:
    """A file fal serves on its CDN (a job's output): its URL, the fal it came from (the queue
    origin) and until when (time.time()) the pack may hand the URL back to that fal."""

    url: str
    origin: str
    reuse_until: float

    def usable(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.reuse_until


def reuse_deadline(created_after: float, lifetime_seconds: float) -> float:
    """Until when a file fal made after `created_after` (time.time()), asked to keep for
    `lifetime_seconds`, may be handed back to fal (see SERVED_URL_MARGIN_SECONDS)."""
    margin = min(SERVED_URL_MARGIN_SECONDS, lifetime_seconds / 2)
    return created_after + lifetime_seconds - margin


class ServedFiles:
    """(fal origin, identity of a file's decoded pixels) -> the file fal serves with exactly those
    pixels; least-recently-used, bounded. A URL fal could not fetch is refused from then on (a
    result cache entry may offer it again), until it drops out of a bounded memory."""

    def __init__(self, max_entries: int = DEFAULT_SERVED_FILE_ENTRIES,
                 clock: Callable[[], float] = time.time):
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], ServedFile] = OrderedDict()
        self._refused: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, origin: str, identity: str) -> str | None:
        """The URL serving these pixels at `origin`, while it may still be handed back."""
        with self._lock:
            served = self._entries.get((origin, identity))
            if served is None:
                return None
            if not served.usable(self._clock()):
                del self._entries[(origin, identity)]
                return None
            self._entries.move_to_end((origin, identity))
            return served.url

    def put(self, identity: str, served: ServedFile) -> None:
        with self._lock:
            if served.url in self._refused or not served.usable(self._clock()):
                return
            self._entries[(served.origin, identity)] = served
            self._entries.move_to_end((served.origin, identity))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def refuse(self, url: str) -> None:
        """fal could not fetch `url`: never hand it out again."""
        with self._lock:
            for key in [k for k, served in self._entries.items() if served.url == url]:
                del self._entries[key]
            self._refused[url] = None
            while len(self._refused) > self.max_entries:
                self._refused.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._refused.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


SHARED_SERVED_FILES = ServedFiles()


@dataclass(frozen=True)
class StorageToken:
    """A short-lived token for fal's CDN upload host (not the API key)."""

    token: str
    token_type: str
    expires_at: float  # time.time() seconds
    base_url: str | None = None  # the upload host fal named for this token, if it named one

    @property
    def header(self) -> str:
        return f"{self.token_type} {self.token}"

    def usable(self, margin: float = 60.0) -> bool:
        return time.time() < self.expires_at - margin
