"""Upload bookkeeping that outlives one client: the process-wide cache of uploaded content.

It holds plain data only (origin, content hash -> URL, expiry), so it is safe to share across
the event loops ComfyUI creates per prompt.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_UPLOAD_TTL_SECONDS = 6 * 3600.0  # well inside the lifetime we ask fal to keep uploads
UPLOAD_LIFETIME_SECONDS = 24 * 3600  # sent to fal so references do not pile up on the account
DEFAULT_UPLOAD_CACHE_ENTRIES = 512


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

    def get(self, origin: str, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get((origin, key))
            if entry is None:
                return None
            url, stored_at = entry
            if self._clock() - stored_at > self.ttl:
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
class StorageToken:
    """A short-lived token for fal's CDN upload host (not the API key)."""

    token: str
    token_type: str
    expires_at: float  # time.time() seconds

    @property
    def header(self) -> str:
        return f"{self.token_type} {self.token}"

    def usable(self, margin: float = 60.0) -> bool:
        return time.time() < self.expires_at - margin
