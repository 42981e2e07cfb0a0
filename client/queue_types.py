"""Shapes of fal's queue protocol: endpoint ids, request handles, status snapshots, updates."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

_NAMESPACES = ("workflows", "comfy")


@dataclass(frozen=True)
class EndpointId:
    """`owner/alias[/path]`: submit keeps the path, request URLs drop it (fal's rule)."""

    owner: str
    alias: str
    path: str = ""
    namespace: str = ""

    @classmethod
    def parse(cls, endpoint_id: str) -> "EndpointId":
        parts = [p for p in endpoint_id.strip("/").split("/") if p]
        namespace = parts.pop(0) if parts and parts[0] in _NAMESPACES else ""
        if len(parts) < 2:
            raise ValueError(f"fal endpoint id {endpoint_id!r} must look like 'owner/app[/path]'")
        return cls(parts[0], parts[1], "/".join(parts[2:]), namespace)

    @property
    def submit_path(self) -> str:
        return "/".join(p for p in (self.namespace, self.owner, self.alias, self.path) if p)

    @property
    def requests_path(self) -> str:
        return "/".join(p for p in (self.namespace, self.owner, self.alias) if p) + "/requests"


@dataclass(frozen=True)
class RequestHandle:
    """A submitted job: its id and the URLs fal gave us for it."""

    endpoint_id: str
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class JobState(str, enum.Enum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


# Not part of fal's protocol, but if a server says so, the job is over: go fetch its outcome.
_TERMINAL_ALIASES = {"FAILED", "ERROR", "CANCELLED", "CANCELED", "OK", "SUCCEEDED"}


@dataclass(frozen=True)
class JobStatus:
    """One status answer; `error` is set when a COMPLETED job ended in failure."""

    state: JobState
    queue_position: int | None = None
    logs: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    error_type: str | None = None
    inference_time: float | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "JobStatus":
        raw = str(body.get("status", "")).upper()
        if raw in JobState.__members__:
            state = JobState(raw)
        else:
            state = JobState.COMPLETED if raw in _TERMINAL_ALIASES else JobState.IN_PROGRESS
        logs = body.get("logs") or ()
        metrics = body.get("metrics") or {}
        position = body.get("queue_position")
        error = body.get("error")
        return cls(
            state=state,
            queue_position=position if isinstance(position, int) else None,
            logs=tuple(entry for entry in logs if isinstance(entry, dict)),
            error=str(error) if error else None,
            error_type=body.get("error_type") or None,
            inference_time=metrics.get("inference_time") if isinstance(metrics, dict) else None,
        )


@dataclass(frozen=True)
class QueueUpdate:
    """What `run` tells its `on_update` callback after each status answer."""

    request_id: str
    state: JobState
    queue_position: int | None
    new_logs: tuple[str, ...] = field(default=())
    elapsed: float = 0.0


class CancelOutcome(str, enum.Enum):
    """How fal answered a cancel request."""

    REQUESTED = "CANCELLATION_REQUESTED"  # 202: queued job removed, running job signalled
    ALREADY_COMPLETED = "ALREADY_COMPLETED"  # 400: it finished; it ran and was billed
    NOT_FOUND = "NOT_FOUND"  # 404
    UNCONFIRMED = "UNCONFIRMED"  # no usable answer (network, 5xx)

    @property
    def confirmed(self) -> bool:
        return self is CancelOutcome.REQUESTED
