"""Stored files (uploads and generated results), upload tokens and signed upload slots."""
from __future__ import annotations

import mimetypes
import posixpath
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

TOKEN_LIFETIME_SECONDS = 3600.0


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str
    name: str
    expires_at: float | None = None  # time.monotonic(); None keeps it for the server's life


@dataclass(frozen=True)
class UploadSlot:
    """An initiated (not yet PUT) upload: where the bytes go and what they will be called."""

    file_id: str
    name: str
    content_type: str
    signature: str
    lifetime: float | None = None  # seconds the file lives once PUT


def safe_name(name: str | None, content_type: str) -> str:
    """A file name fit for a URL path segment; derived from the content type when absent."""
    base = posixpath.basename((name or "").replace("\\", "/")).strip()
    if base in ("", ".", ".."):
        extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
        base = f"upload{extension}"
    return base


class FileStore:
    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._slots: dict[str, UploadSlot] = {}
        self._lock = threading.Lock()

    # --- files -------------------------------------------------------------------------
    def put(self, data: bytes, content_type: str, name: str | None = None,
            lifetime: float | None = None) -> tuple[str, str]:
        """Store bytes (for `lifetime` seconds, or for good); returns (file_id, name) for
        building the CDN path."""
        file_id = uuid.uuid4().hex
        stored = StoredFile(bytes(data), content_type, safe_name(name, content_type),
                            _expiry(lifetime))
        with self._lock:
            self._files[file_id] = stored
        return file_id, stored.name

    def get(self, file_id: str) -> StoredFile | None:
        """The file, or None when unknown or past its lifecycle expiry (fal's CDN then 404s)."""
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None or (stored.expires_at is not None and time.monotonic() >= stored.expires_at):
            return None
        return stored

    def expire(self, file_id: str) -> bool:
        """End a file's life now, as its lifecycle would; False when there is no such file."""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                return False
            self._files[file_id] = StoredFile(stored.data, stored.content_type, stored.name,
                                              expires_at=time.monotonic())
            return True

    @staticmethod
    def path_for(file_id: str, name: str) -> str:
        return f"/files/{file_id}/{quote(name)}"

    @staticmethod
    def parse_path(path: str) -> str | None:
        """The file id in a `/files/<id>/<name>` path, or None."""
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] == "" and parts[1] == "files" and parts[2]:
            return unquote(parts[2])
        return None

    def resolve_url(self, url: str, cdn_url: str) -> StoredFile | None | bool:
        """A file on our own CDN origin; False when the URL is not ours (fetch it over HTTP)."""
        if not url.startswith(cdn_url + "/"):
            return False
        file_id = self.parse_path(urlsplit(url).path)
        return self.get(file_id) if file_id else None

    # --- v3 tokens ---------------------------------------------------------------------
    def issue_token(self, now: float) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = now + TOKEN_LIFETIME_SECONDS
        return token

    def token_valid(self, token: str, now: float) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and now < expiry

    # --- initiate + PUT ----------------------------------------------------------------
    def open_slot(self, name: str | None, content_type: str,
                  lifetime: float | None = None) -> UploadSlot:
        slot = UploadSlot(uuid.uuid4().hex, safe_name(name, content_type), content_type,
                          secrets.token_urlsafe(16), lifetime)
        with self._lock:
            self._slots[slot.file_id] = slot
        return slot

    def fill_slot(self, file_id: str, signature: str, data: bytes,
                  content_type: str | None) -> StoredFile | None:
        """Store the PUT bytes under the slot's id; None when the slot or signature is wrong."""
        with self._lock:
            slot = self._slots.get(file_id)
            if slot is None or not secrets.compare_digest(slot.signature, signature):
                return None
            stored = StoredFile(bytes(data), content_type or slot.content_type, slot.name,
                                _expiry(slot.lifetime))
            self._files[file_id] = stored
            return stored


def _expiry(lifetime: float | None) -> float | None:
    return None if lifetime is None else time.monotonic() + lifetime
