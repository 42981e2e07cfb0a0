"""`data:` URIs: references sent inline instead of uploaded, and sync-mode results."""
from __future__ import annotations

import base64
import binascii
import re

from .errors import DownloadError

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w-]+=[^;,]*)*)"
                       r"(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


def encode_data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def is_data_uri(url: str) -> bool:
    return url[:5].lower() == "data:"


def decode_data_uri(uri: str, *, max_bytes: int) -> tuple[bytes, str]:
    """(bytes, content type) of a data URI; the size cap is checked before decoding."""
    match = _DATA_URI.match(uri)
    if not match:
        raise DownloadError("A result came back as a malformed data: URI")
    payload = match.group("data")
    if len(payload) * 3 // 4 > max_bytes:
        raise DownloadError(f"An inline result is larger than the {max_bytes // 2**20} MiB download cap")
    content_type = match.group("mime") or "application/octet-stream"
    if not match.group("b64"):
        from urllib.parse import unquote_to_bytes
        return unquote_to_bytes(payload), content_type
    try:
        return base64.b64decode(payload, validate=False), content_type
    except (binascii.Error, ValueError):
        raise DownloadError("A result came back as a data: URI with broken base64") from None
