"""The fal client's errors: one class per thing a caller does differently about it.

A small tree under `FalError`: `FalConnectionError` (fal could not be reached or its answer never
arrived whole), `FalStatusError` (fal answered with an error status), `FalJobError` (the job
itself failed, was cancelled, or ran out of time). Messages are one readable line: what happened,
what to do, and the fal request id when there is one. Secrets are redacted from every message
(see `redaction`). The Kontext pack's own errors (bad inputs, spend cap, undecodable results)
live with its pipeline, in `kontext/errors.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .redaction import redact

KEY_HELP = (
    "Set the FAL_KEY environment variable (or FAL_KEY_ID and FAL_KEY_SECRET), "
    "or put the key in the config file {config_path}; create keys at https://fal.ai/dashboard/keys"
)


# ComfyUI imports a pack by its folder path, so there this module is called
# `<ComfyUI>/custom_nodes/fal-kontext.client.errors`, and ComfyUI's error report ("Show Report",
# `exception_type` in /history) names a class by `__module__` + `__qualname__`: the user read a
# file path. Every error class of the pack is therefore named by the pack's import name,
# `fal_kontext.<module>`, the same wherever the pack is loaded from.
_LOADED_AS = __name__.rsplit(".client.errors", 1)[0]  # "fal_kontext", or the folder's path
IMPORT_NAME = "fal_kontext"


def name_by_import_name(module: str) -> str:
    """`module` as `fal_kontext.<...>` when it is one of the pack's modules, else unchanged."""
    if module == _LOADED_AS or module.startswith(_LOADED_AS + "."):
        return IMPORT_NAME + module[len(_LOADED_AS):]
    return module


class FalError(Exception):
    """Base of every error raised by the fal client (and, through subclasses, by the pack)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__module__ = name_by_import_name(cls.__module__)  # see above: ComfyUI's report

    def __init__(self, message: str, *, request_id: str | None = None, status_code: int | None = None):
        self.request_id = request_id
        self.status_code = status_code
        if request_id and request_id not in message:
            message = f"{message} (fal request id: {request_id})"
        self.message = redact(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


FalError.__module__ = name_by_import_name(FalError.__module__)




class FalConnectionError(FalError):
    """fal could not be reached, or its answer never arrived whole."""


class FalStatusError(FalError):
    """fal (or something in front of it) answered with an error status."""


class FalJobError(FalError):
    """The job at fal failed, was cancelled, was dropped, or took too long."""


class ConfigurationError(FalError):
    """The client is configured in a way that would be unsafe or cannot work."""


class AuthError(FalStatusError):
    """fal refused the key (401/403) or no key could be found."""


class MissingKeyError(AuthError):
    """No fal key was found in any of the places we look."""




@dataclass(frozen=True)
class FieldError:
    """One entry of fal's 422 `detail` list."""

    location: tuple[str | int, ...]
    message: str
    type: str = ""

    @property
    def field(self) -> str:
        """The input name, e.g. `image_urls[1]`, without fal's leading `body`."""
        parts = [p for p in self.location if p != "body"]
        text = ""
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "request"

    @classmethod
    def from_detail(cls, item: Any) -> "FieldError":
        if not isinstance(item, dict):
            return cls((), str(item))
        location = item.get("loc") or ()
        return cls(tuple(location) if isinstance(location, (list, tuple)) else (str(location),),
                   str(item.get("msg", "")), str(item.get("type", "")))


class ValidationError(FalStatusError):
    """fal rejected the inputs (422); `fields` lists each offending field and fal's reason."""

    def __init__(self, fields: Sequence[FieldError], *, request_id: str | None = None,
                 status_code: int | None = 422, prefix: str = "fal rejected the inputs"):
        self.fields = tuple(fields)
        listed = "; ".join(f"{f.field}: {f.message}" for f in self.fields) or "no details given"
        super().__init__(f"{prefix}: {listed}", request_id=request_id, status_code=status_code)


class ContentPolicyError(ValidationError):
    """fal's content checker flagged the prompt or a reference image; change it and retry."""

    def __init__(self, fields: Sequence[FieldError], *, request_id: str | None = None,
                 status_code: int | None = 422):
        super().__init__(fields, request_id=request_id, status_code=status_code,
                         prefix="fal's content checker refused this request (edit the prompt or "
                                "the flagged image; raising safety_tolerance may help)")


class RateLimitError(FalStatusError):
    """fal is limiting our request rate or concurrency (429)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(FalStatusError):
    """fal (or something in front of it) failed with a 5xx or an unreadable answer."""


class ConnectionFailedError(FalConnectionError):
    """fal could not be reached at all (DNS, refused connection, network down)."""


class SubmitUncertainError(FalConnectionError):
    """A submit may have reached fal but we got no answer; it is not re-sent to avoid paying twice."""


class JobFailedError(FalJobError):
    """The job ran at fal and ended with an error."""

    def __init__(self, message: str, *, logs_tail: Sequence[str] = (), **kwargs: Any):
        self.logs_tail = tuple(logs_tail)
        if self.logs_tail:
            message = f"{message}; last log lines: {' | '.join(self.logs_tail)}"
        super().__init__(message, **kwargs)


class FalTimeoutError(FalJobError):
    """The run took longer than its timeout; the fal job was cancelled (or its result is still
    being collected in the background, when it had already finished)."""

    def __init__(self, timeout: float, *, cancel_confirmed: bool, request_id: str | None = None,
                 ending: str = ""):
        self.timeout = timeout
        self.cancel_confirmed = cancel_confirmed
        outcome = ending or ("fal confirmed the cancel" if cancel_confirmed
                             else "fal did not confirm the cancel, so check the job in your fal dashboard")
        super().__init__(f"The run did not finish within {timeout:g} s ({outcome}); "
                         "raise timeout_seconds for large jobs or busy hours", request_id=request_id)


class JobCancelledError(FalJobError):
    """The caller stopped the run; the fal job was cancelled (or kept, if it had finished).

    `ending` says in words what happened to the job: stopped, billed, result kept or not."""

    def __init__(self, *, cancel_confirmed: bool, finished_and_billed: bool = False,
                 request_id: str | None = None, ending: str = ""):
        self.cancel_confirmed = cancel_confirmed
        self.finished_and_billed = finished_and_billed
        if ending:
            text = f"Cancelled; {ending}"
        elif finished_and_billed:
            text = "Cancelled, but the job had already finished at fal and was billed"
        elif cancel_confirmed:
            text = "Cancelled; fal confirmed the job was stopped"
        else:
            text = "Cancelled; fal did not confirm the cancel, so check the job in your fal dashboard"
        self.ending = ending or text
        super().__init__(text, request_id=request_id)


class StartDeadlineError(FalJobError):
    """fal dropped the job because no runner started it before its start deadline; not billed."""

    def __init__(self, deadline_seconds: float | None, *, request_id: str | None = None,
                 status_code: int | None = 504):
        self.deadline_seconds = deadline_seconds
        within = f" within {deadline_seconds:g} s" if deadline_seconds else " in time"
        super().__init__(f"fal could not start the job{within}; nothing was billed. fal is busy: "
                         "try again later or raise timeout_seconds", request_id=request_id,
                         status_code=status_code)


class JobNotFoundError(FalJobError):
    """fal does not know the request (never created, or its result is past fal's retention)."""


class DownloadError(FalError):
    """A result or reference could not be downloaded (network, size cap, bad content)."""




class RequestRejectedError(FalStatusError):
    """fal refused a request for a reason not covered above (an unexpected 4xx)."""
