"""Fetching and decoding reference images at submit time, as fal's input downloader does.

Failures become 422 items with fal's type names: `file_download_error` when the bytes cannot be
had, `image_load_error` when they are not an image.
"""
from __future__ import annotations

import base64
import binascii
import io
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote_to_bytes

from PIL import Image, UnidentifiedImageError

from .responses import field_error
from .storage import FileStore

FETCH_TIMEOUT_SECONDS = 5.0
DOWNLOAD_MSG = "Failed to download the file. Please check if the URL is accessible and try again."
LOAD_MSG = "Failed to load the image. Please ensure the image file is not corrupted and is in a supported format."


class ReferenceFailure(Exception):
    def __init__(self, type_: str, msg: str) -> None:
        super().__init__(msg)
        self.type = type_
        self.msg = msg


def load_references(urls: list[str], locs: list[list[Any]], store: FileStore,
                    cdn_url: str) -> tuple[list[Image.Image], list[dict[str, Any]]]:
    """Decoded RGB references in order, plus one 422 item per reference that failed."""
    images: list[Image.Image] = []
    errors: list[dict[str, Any]] = []
    for url, loc in zip(urls, locs):
        try:
            images.append(_decode(_fetch(url, store, cdn_url)))
        except ReferenceFailure as exc:
            errors.append(field_error(loc, exc.msg, exc.type, _short(url)))
    return images, errors


def _short(url: str) -> str:
    # Echo the input like pydantic does, but not a megabyte of base64.
    return url if len(url) <= 200 else url[:200] + "..."


def _fetch(url: str, store: FileStore, cdn_url: str) -> bytes:
    if url.startswith("data:"):
        return _decode_data_uri(url)
    own = store.resolve_url(url, cdn_url)
    if own is not False:  # our CDN: read storage directly, no HTTP round trip
        if own is None:
            raise ReferenceFailure("file_download_error", DOWNLOAD_MSG)
        return own.data
    if not url.startswith(("http://", "https://")):
        raise ReferenceFailure("file_download_error", DOWNLOAD_MSG)
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ReferenceFailure("file_download_error", DOWNLOAD_MSG) from exc


def _decode_data_uri(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise ReferenceFailure("file_download_error", DOWNLOAD_MSG)
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ReferenceFailure("file_download_error", DOWNLOAD_MSG) from exc
    return unquote_to_bytes(payload)


def _decode(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ReferenceFailure("image_load_error", LOAD_MSG) from exc
