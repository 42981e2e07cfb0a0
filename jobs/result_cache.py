"""A persistent, size-bounded cache of finished edits, so the same paid request is never billed twice.

ComfyUI's own cache forgets outputs when another graph runs or ComfyUI restarts; this one keeps the
image files fal returned on disk, shared safely by threads and by processes.

Layout under the cache directory:
    <key[:2]>/<key>/0.png, 1.jpg, ...  the image files exactly as fal returned them, in order
    <key[:2]>/<key>/entry.json         file names, content types, sizes, sha256s, where fal
                                       serves each file and until when, and the run's info
    .tmp-<key>-<random>/               an entry being written; renamed into place once complete
    .trash-<random>/                   an entry being deleted; renamed out of place first
An entry directory therefore only ever appears or disappears whole. Recency for least-recently-used
eviction is the mtime of entry.json; a hit sets it to now.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..client.logs import logger
from ..client.storage import ServedFile
from .durable import fsync_directory, write_synced
from .result_collection import EditResult

# Part of every key: bump it when the key payload or the entry layout changes meaning.
CACHE_FORMAT_VERSION = 1
MEBIBYTE = 1024 * 1024
DEFAULT_MAX_MB = 1024
DEFAULT_MAX_BYTES = DEFAULT_MAX_MB * MEBIBYTE

ENABLE_ENV = "FAL_KONTEXT_RESULT_CACHE"
DIRECTORY_ENV = "FAL_KONTEXT_RESULT_CACHE_DIR"
MAX_MB_ENV = "FAL_KONTEXT_RESULT_CACHE_MAX_MB"
DISABLED_VALUES = frozenset({"0", "off", "false", "no"})
CACHE_SUBDIRECTORY = Path("fal-kontext", "results")

# Keys of runs with a random seed start with this; they are unique per call and never stored.
UNSEEDED_KEY_PREFIX = "unseeded-"

ENTRY_FILE = "entry.json"
_TEMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
# A temp dir this old belongs to a writer that crashed; a live writer finishes in well under this.
_STALE_TEMP_SECONDS = 3600.0

_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
_SHARD_PATTERN = re.compile(r"[0-9a-f]{2}")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
# Names read back from entry.json must stay inside the entry directory.
_FILE_NAME_PATTERN = re.compile(r"[0-9]{1,4}\.[a-z0-9]{1,5}")
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class CachedResult:
    """A stored run: the image files with their content types, in order, and its info dict;
    `served` holds, per image, where fal serves that file and until when it may be handed back
    to fal (None when it may not: an inline result, or an entry stored before this was kept)."""

    images: list[tuple[bytes, str]]
    info: dict[str, Any]
    served: tuple[ServedFile | None, ...] = ()


def result_cache_key(endpoint_id: str, fields: Mapping[str, Any], reference_keys: Sequence[str],
                     *, reproducible: bool = True) -> str:
    """sha256 hex over the endpoint, every request field (checked, so 4 and 4.0 or 2 and "2"
    share a key), the reference content keys in order and the format version.

    A run that leaves fal to pick at random (no seed, `reproducible` False) gets a key starting
    with UNSEEDED_KEY_PREFIX that is unique per call, and ResultCache neither looks it up nor
    stores it.
    """
    if not reproducible:
        return f"{UNSEEDED_KEY_PREFIX}{uuid.uuid4().hex}"
    # Every field the request has, not a hand-kept list: a field added later changes the key.
    fields = {"model": endpoint_id, **fields}
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "request": fields,
        "references": [str(key) for key in reference_keys],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_cacheable_key(key: str) -> bool:
    """True for keys ResultCache stores: 64 lowercase hex digits (also safe as a directory name)."""
    return isinstance(key, str) and _KEY_PATTERN.fullmatch(key) is not None


class _CorruptEntry(Exception):
    """An entry on disk that cannot be trusted; it is removed and counts as a miss."""


class ResultCache:
    """Finished edits on disk, keyed by `result_cache_key`, evicted least-recently-used by bytes.

    Every failure degrades to a miss (get) or a no-op (put) with a logged warning: the cache is
    an optimisation and must never fail a run the user is paying for.
    """

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()  # one scan-and-evict at a time in this process

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r}, max_bytes={self.max_bytes})"

    def entry_directory(self, key: str) -> Path:
        """Where the entry for `key` lives (whether or not it exists)."""
        return self.directory / key[:2] / key

    def get(self, key: str) -> CachedResult | None:
        """The stored result for `key`, or None. A hit makes the entry the most recently used."""
        if not is_cacheable_key(key):
            return None
        entry_dir = self.entry_directory(key)
        try:
            cached = _read_entry(entry_dir, key)
        except _CorruptEntry as reason:
            logger.warning("removing a damaged result cache entry %s: %s", entry_dir, reason)
            self._remove_quietly(entry_dir)
            return None
        except OSError as error:
            logger.warning("could not read the result cache at %s (%s); running the job instead",
                           self.directory, error)
            return None
        if cached is not None:
            _touch(entry_dir / ENTRY_FILE)
        return cached

    def put(self, key: str, result: EditResult) -> bool:
        """Store `result` under `key` (atomically), then evict old entries down to max_bytes.
        True when the result is stored (by this call or an earlier one); False when it is not,
        so the caller keeps another way to reach it."""
        if not is_cacheable_key(key):
            return False
        try:
            return self._put(key, result)
        except Exception as error:  # noqa: BLE001 - the run is paid for already; lose only the copy
            logger.warning("could not store the result in the cache at %s (%s); continuing "
                           "without caching it", self.directory, error,
                           exc_info=not isinstance(error, OSError))
            return False

    def _put(self, key: str, result: EditResult) -> bool:
        images = [(bytes(image.data), str(image.content_type)) for image in result.images]
        if not images:
            return False
        try:
            info = json.loads(json.dumps(result.info, allow_nan=False))
        except (TypeError, ValueError) as error:
            logger.warning("result info is not JSON (%s); not caching this result", error)
            return False
        files = [{"name": f"{index}.{_extension(content_type)}", "content_type": content_type,
                  "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  **_served_fields(getattr(image, "served", None))}
                 for index, ((data, content_type), image) in enumerate(zip(images, result.images))]
        manifest = json.dumps({"format": CACHE_FORMAT_VERSION, "key": key, "files": files,
                               "info": info}, ensure_ascii=False, indent=1).encode("utf-8")
        size = sum(len(data) for data, _ in images) + len(manifest)
        if size > self.max_bytes:
            logger.info("result of %d bytes is larger than the result cache (%d bytes); not cached",
                        size, self.max_bytes)
            return False
        entry_dir = self.entry_directory(key)
        if (entry_dir / ENTRY_FILE).exists():
            return True  # another node or process stored the same result meanwhile
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f"{_TEMP_PREFIX}{key}-{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            for spec, (data, _) in zip(files, images):
                write_synced(temp / spec["name"], data)
            write_synced(temp / ENTRY_FILE, manifest)
            _touch(temp / ENTRY_FILE)
            fsync_directory(temp)
            entry_dir.parent.mkdir(exist_ok=True)
            if _rename_into_place(temp, entry_dir):
                fsync_directory(entry_dir.parent)
        finally:
            if temp.exists():  # renamed away on success; otherwise ours is surplus or partial
                shutil.rmtree(temp, ignore_errors=True)
        self._evict(keep=key)
        return True

    def _evict(self, keep: str) -> None:
        """Remove least-recently-used entries (never `keep`) until the total fits max_bytes."""
        with self._lock:
            self._remove_leftovers()
            entries = self._scan_entries()
            total = sum(size for _, size, _ in entries)
            for _, size, entry_dir in sorted(entries):
                if total <= self.max_bytes:
                    break
                if entry_dir.name == keep:
                    continue
                self._remove_quietly(entry_dir)
                total -= size  # gone either way: removed by us or by another process

    def _scan_entries(self) -> list[tuple[int, int, Path]]:
        """(recency ns, bytes, directory) of every complete entry."""
        entries = []
        with os.scandir(self.directory) as top:
            shards = [item.path for item in top
                      if _SHARD_PATTERN.fullmatch(item.name) and item.is_dir(follow_symlinks=False)]
        for shard in shards:
            try:
                with os.scandir(shard) as listing:
                    entry_dirs = [item.path for item in listing if _KEY_PATTERN.fullmatch(item.name)
                                  and item.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                continue
            for entry_dir in entry_dirs:
                usage = _entry_usage(entry_dir)
                if usage is not None:
                    entries.append((usage[0], usage[1], Path(entry_dir)))
        return entries

    def _remove_leftovers(self) -> None:
        """Delete trash and the temp dirs of writers that crashed; never a live writer's."""
        now = time.time()
        with os.scandir(self.directory) as top:
            items = list(top)
        for item in items:
            try:
                if item.name.startswith(_TRASH_PREFIX) or (
                        item.name.startswith(_TEMP_PREFIX)
                        and now - item.stat(follow_symlinks=False).st_mtime > _STALE_TEMP_SECONDS):
                    shutil.rmtree(item.path, ignore_errors=True)
            except OSError:
                continue

    def _remove_quietly(self, entry_dir: Path) -> None:
        # Rename out of place first, so no reader ever sees a half-deleted entry.
        trash = self.directory / f"{_TRASH_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(entry_dir, trash)
        except FileNotFoundError:
            return
        except OSError as error:
            logger.debug("could not remove result cache entry %s: %s", entry_dir, error)
            return
        shutil.rmtree(trash, ignore_errors=True)


def _read_entry(entry_dir: Path, key: str) -> CachedResult | None:
    try:
        raw = (entry_dir / ENTRY_FILE).read_bytes()
    except FileNotFoundError:
        if entry_dir.is_dir():
            raise _CorruptEntry(f"{ENTRY_FILE} is missing") from None
        return None
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise _CorruptEntry(f"{ENTRY_FILE} is not valid JSON") from None
    files, info = _parse_manifest(manifest, key)
    images = []
    for name, content_type, size, digest, _ in files:
        try:
            data = (entry_dir / name).read_bytes()
        except FileNotFoundError:
            raise _CorruptEntry(f"{name} is missing") from None
        if len(data) != size:
            raise _CorruptEntry(f"{name} has {len(data)} bytes, {size} were stored")
        if hashlib.sha256(data).hexdigest() != digest:
            raise _CorruptEntry(f"{name} does not match its stored sha256")
        images.append((data, content_type))
    return CachedResult(images=images, info=info, served=tuple(served for *_, served in files))


def _parse_manifest(manifest: Any,
                    key: str) -> tuple[list[tuple[str, str, int, str, ServedFile | None]], dict]:
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT_VERSION \
            or manifest.get("key") != key:
        raise _CorruptEntry(f"{ENTRY_FILE} is not an entry for this key in format "
                            f"{CACHE_FORMAT_VERSION}")
    files, info = manifest.get("files"), manifest.get("info")
    if not isinstance(files, list) or not files or not isinstance(info, dict):
        raise _CorruptEntry(f"{ENTRY_FILE} has no file list or no info")
    parsed = []
    for spec in files:
        if not isinstance(spec, dict):
            raise _CorruptEntry(f"{ENTRY_FILE} lists a file that is not an object")
        name, content_type = spec.get("name"), spec.get("content_type")
        size, digest = spec.get("size"), spec.get("sha256")
        if not (isinstance(name, str) and _FILE_NAME_PATTERN.fullmatch(name)
                and isinstance(content_type, str)
                and isinstance(size, int) and not isinstance(size, bool) and size >= 0
                and isinstance(digest, str) and _SHA256_PATTERN.fullmatch(digest)):
            raise _CorruptEntry(f"{ENTRY_FILE} lists a malformed file {spec!r}")
        parsed.append((name, content_type, size, digest, _served_file(spec)))
    return parsed, info


def _served_fields(served: ServedFile | None) -> dict[str, Any]:
    if served is None:
        return {}
    return {"served_url": served.url, "served_by": served.origin,
            "served_reuse_until": served.reuse_until}


def _served_file(spec: dict[str, Any]) -> ServedFile | None:
    """Where fal serves a stored file, if the entry says so; a malformed note is ignored (it
    only ever saves an upload), never a reason to distrust the entry."""
    url, origin, until = (spec.get("served_url"), spec.get("served_by"),
                          spec.get("served_reuse_until"))
    if (isinstance(url, str) and url.startswith(("https://", "http://"))
            and isinstance(origin, str) and isinstance(until, (int, float))
            and not isinstance(until, bool) and math.isfinite(until)):
        return ServedFile(url, origin, float(until))
    return None


def _entry_usage(entry_dir: str) -> tuple[int, int] | None:
    """(mtime ns of entry.json, total bytes of the entry's files), or None if it vanished."""
    size = 0
    recency = 0  # no entry.json: damaged, so evicted first
    try:
        with os.scandir(entry_dir) as listing:
            for item in listing:
                stat = item.stat(follow_symlinks=False)
                size += stat.st_size
                if item.name == ENTRY_FILE:
                    recency = stat.st_mtime_ns
    except FileNotFoundError:
        return None
    return recency, size


def _extension(content_type: str) -> str:
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "bin")


def _touch(path: Path) -> None:
    # time_ns, not the filesystem clock: kernel file times can be a jiffy coarse, and LRU order
    # between two quick runs must still be right.
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except OSError as error:  # read-only cache: still a hit, just no recency update
        logger.debug("could not update result cache recency of %s: %s", path, error)


def _rename_into_place(temp: Path, target: Path) -> bool:
    """Move a complete entry into place; False if another writer's entry is there already."""
    try:
        os.rename(temp, target)
    except OSError:
        if target.exists():
            return False
        raise
    return True


_SHARED_CACHES: dict[tuple[str, int], ResultCache] = {}
_SHARED_LOCK = threading.Lock()


def default_result_cache(environ: Mapping[str, str] = os.environ,
                         app_directory: Path | None = None) -> ResultCache | None:
    """The result cache configured by the environment, shared per directory in this process;
    None when FAL_KONTEXT_RESULT_CACHE is 0/off/false/no or FAL_KONTEXT_RESULT_CACHE_MAX_MB is 0.
    `app_directory` is the host application's data folder (ComfyUI's user folder), if any."""
    if environ.get(ENABLE_ENV, "").strip().lower() in DISABLED_VALUES:
        return None
    max_bytes = result_cache_max_bytes(environ)
    if max_bytes == 0:
        return None
    directory = result_cache_directory(environ, app_directory=app_directory)
    with _SHARED_LOCK:
        return _SHARED_CACHES.setdefault((os.path.abspath(directory), max_bytes),
                                         ResultCache(directory, max_bytes))


def result_cache_max_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The size cap from FAL_KONTEXT_RESULT_CACHE_MAX_MB (MiB), or the default on a bad value."""
    raw = environ.get(MAX_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes >= 0):
        # A typo in a cache setting should not stop a run; say so and use the default.
        logger.warning("%s=%r is not a size in megabytes; using %d", MAX_MB_ENV, raw, DEFAULT_MAX_MB)
        return DEFAULT_MAX_BYTES
    return int(megabytes * MEBIBYTE)


def result_cache_directory(environ: Mapping[str, str] = os.environ,
                           platform: str = sys.platform, app_directory: Path | None = None) -> Path:
    """FAL_KONTEXT_RESULT_CACHE_DIR, else the application's folder (ComfyUI's user folder),
    else the user cache folder of the platform; the last two with a fal-kontext/results
    subfolder."""
    configured = environ.get(DIRECTORY_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if app_directory is not None:
        return Path(app_directory) / CACHE_SUBDIRECTORY
    return _user_cache_directory(environ, platform) / CACHE_SUBDIRECTORY


def _user_cache_directory(environ: Mapping[str, str], platform: str) -> Path:
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    if platform.startswith("win"):
        local = environ.get("LOCALAPPDATA", "")
        return Path(local) if local else home / "AppData" / "Local"
    if platform == "darwin":
        return home / "Library" / "Caches"
    xdg = environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"


__all__ = [
    "CACHE_FORMAT_VERSION", "CachedResult", "DEFAULT_MAX_BYTES", "ResultCache",
    "UNSEEDED_KEY_PREFIX", "default_result_cache", "is_cacheable_key", "result_cache_directory",
    "result_cache_key", "result_cache_max_bytes",
]
