"""Reply objects and fal's error body shapes.

Routes return a `Reply` (or a `StreamReply` for server-sent events) instead of writing to the
socket themselves, so the handler can record, delay or damage any answer in one place (faults).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Iterator

JSON_TYPE = "application/json"

# fal's flat infrastructure errors carry an error_type; these are the documented codes per status.
ERROR_TYPE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    499: "client_cancelled",
    500: "internal_error",
    502: "runner_incomplete_response",
    503: "runner_scheduling_failure",
    504: "request_timeout",
}

# What an nginx ingress answers when the upstream is gone: HTML, and no x-fal-request-id.
NGINX_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

_MISSING = object()


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """A response written incrementally; each item of `events` is flushed as soon as produced."""

    events: Iterator[bytes]
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), JSON_TYPE, dict(headers or {}))


def flat_error(status: int, detail: str, error_type: str | None = None) -> Reply:
    """fal's infrastructure error: {"detail", "error_type"} plus the X-Fal-Error-Type header."""
    payload: dict[str, Any] = {"detail": detail}
    headers: dict[str, str] = {}
    if error_type:
        payload["error_type"] = error_type
        headers["X-Fal-Error-Type"] = error_type
    return json_reply(status, payload, headers)


def field_error(loc: list[Any], msg: str, type_: str, input_: Any = _MISSING,
                ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """One pydantic-style item of a 422 `detail` list."""
    item: dict[str, Any] = {"loc": loc, "msg": msg, "type": type_}
    if input_ is not _MISSING:
        item["input"] = input_
    if ctx:
        item["ctx"] = ctx
    return item


def validation_error(items: list[dict[str, Any]]) -> Reply:
    return json_reply(422, {"detail": items})


def not_found(detail: str = "Not Found") -> Reply:
    return json_reply(404, {"detail": detail})


def default_error(status: int) -> Reply:
    """The body a status-only fault answers with: fal's shape for that kind of status."""
    if status == 401:
        return json_reply(401, {"detail": "Invalid key"})
    if status == 422:
        return validation_error([field_error(["body"], "Simulated validation error", "value_error")])
    phrase = _phrase(status)
    return flat_error(status, f"Simulated {phrase}", ERROR_TYPE_BY_STATUS.get(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"error {status}"
