"""Turn fal's HTTP answers into typed errors with one readable message each."""
from __future__ import annotations

import json
from typing import Any

import httpx

from .credentials import key_help
from .hosts import origin_of
from .errors import (AuthError, ContentPolicyError, FalError, FieldError, RateLimitError,
                     RequestRejectedError, ServerError, StartDeadlineError, ValidationError)
from .retry import is_start_deadline_answer, parse_retry_after

CONTENT_POLICY_TYPE = "content_policy_violation"
_MAX_TEXT = 300


def fal_request_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-fal-request-id")


def retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def start_deadline_sent(response: httpx.Response) -> float | None:
    """The start deadline the request carried (X-Fal-Request-Timeout), if any."""
    try:
        return float(response.request.headers["x-fal-request-timeout"])
    except (RuntimeError, KeyError, ValueError):  # no request attached, no header, not a number
        return None


def json_body(response: httpx.Response) -> Any:
    """The decoded body, or None when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _detail_text(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict) and body.get("detail") is not None:
        detail = body["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)[:_MAX_TEXT]
    text = " ".join(response.text.split())
    return text[:_MAX_TEXT] or response.reason_phrase


def error_for_response(response: httpx.Response, *, request_id: str | None = None,
                       action: str = "request", start_deadline: float | None = None) -> FalError:
    """The typed error for a non-2xx answer from fal. `start_deadline`: the deadline the job was
    submitted with, when the caller knows it (status and result requests do not carry it)."""
    status = response.status_code
    request_id = request_id or fal_request_id(response)
    body = json_body(response)
    detail = _detail_text(body, response)
    error_type = (body.get("error_type") if isinstance(body, dict) else None) \
        or response.headers.get("x-fal-error-type")
    kind = f" [{error_type}]" if error_type else ""
    common = {"request_id": request_id, "status_code": status}
    if is_start_deadline_answer(status, response.headers):
        return StartDeadlineError(start_deadline or start_deadline_sent(response), **common)
    if status == 401:
        return AuthError(f"fal rejected the API key (401: {detail}). {key_help()}", **common)
    if status == 403:
        return AuthError(f"fal refused access (403: {detail}); check that the key is active and "
                         "the account has balance at https://fal.ai/dashboard", **common)
    if status == 422 or (status == 400 and isinstance(body, dict) and isinstance(body.get("detail"), list)):
        return validation_error(body, **common)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        wait = f"wait {retry_after:g} s and " if retry_after is not None else "wait a little and "
        return RateLimitError(f"fal is rate-limiting this key (429: {detail}); {wait}try again",
                              retry_after=retry_after, **common)
    if 300 <= status < 400:
        location = origin_of(response.headers.get("location", "")) or "elsewhere"
        return RequestRejectedError(
            f"fal answered the {action} with a redirect ({status}) to {location}; API calls are "
            "not followed elsewhere because the key would go along: check FAL_KONTEXT_BASE_URL",
            **common)
    if status >= 500:
        if fal_request_id(response) is None and "<html" in response.text.lower():
            return ServerError(f"fal's gateway answered {status} during the {action} "
                               "(a temporary outage); try again in a minute", **common)
        return ServerError(f"fal answered {status} during the {action}{kind}: {detail}", **common)
    return RequestRejectedError(f"fal refused the {action} ({status}{kind}): {detail}", **common)


def validation_error(body: Any, *, request_id: str | None, status_code: int | None) -> ValidationError:
    """A 422 (or a failed job's stored 422) as ValidationError or ContentPolicyError."""
    detail = body.get("detail") if isinstance(body, dict) else body
    items = detail if isinstance(detail, list) else [{"msg": str(detail)}]
    fields = [FieldError.from_detail(item) for item in items]
    if any(f.type == CONTENT_POLICY_TYPE for f in fields):
        return ContentPolicyError(fields, request_id=request_id, status_code=status_code)
    return ValidationError(fields, request_id=request_id, status_code=status_code)
