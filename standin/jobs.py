"""Queue jobs: their clock-driven status, cumulative logs, stored outcome and the failure plan.

A job's status is a pure function of the clock (queue_delay, then processing_delay, a start
deadline, a cancel) and of when its outputs finished rendering, so polling, streaming, billing and
`server.jobs` always agree.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .responses import ERROR_TYPE_BY_STATUS, Reply, field_error, json_reply

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
# A lone job still shows a queue that moves: positions 2, 1, 0 over its queue_delay.
VIRTUAL_QUEUE_SLOTS = 3
CANCELLED_MESSAGE = "Request was cancelled"
START_TIMEOUT_MESSAGE = "Request timed out before a runner started processing it"
TIMEOUT_TYPE_HEADER = "X-Fal-Request-Timeout-Type"
RETRYABLE_HEADER = "X-Fal-Retryable"


@dataclass(frozen=True)
class JobFailure:
    """How a failed job answers the result fetch, and what its COMPLETED status says."""

    status_code: int
    body: dict[str, Any]
    message: str
    error_type: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def reply(self) -> Reply:
        headers = {"X-Fal-Error-Type": self.error_type} if self.error_type else {}
        return json_reply(self.status_code, self.body, {**headers, **self.headers})

    @classmethod
    def flat(cls, status_code: int, detail: str, error_type: str | None,
             headers: dict[str, str] | None = None) -> "JobFailure":
        body: dict[str, Any] = {"detail": detail}
        if error_type:
            body["error_type"] = error_type
        return cls(status_code, body, detail, error_type, dict(headers or {}))

    @classmethod
    def items(cls, items: list[dict[str, Any]], status_code: int = 422,
              retryable: bool = False) -> "JobFailure":
        """A model error (fal's toolkit errors: a `detail` list and an X-Fal-Retryable verdict)."""
        first = items[0] if items else {}
        return cls(status_code, {"detail": items}, str(first.get("msg", "Validation error")),
                   first.get("type"), {RETRYABLE_HEADER: "true" if retryable else "false"})


CANCELLED = JobFailure.flat(499, CANCELLED_MESSAGE, "client_cancelled")
# fal drops a request whose X-Fal-Request-Timeout passed before a runner started it: 504, marked
# as the caller's own deadline so that no client retries it (docs: common-parameters, retries).
START_TIMEOUT = JobFailure.flat(504, START_TIMEOUT_MESSAGE, "request_timeout",
                                {TIMEOUT_TYPE_HEADER: "user"})
POLICY_VIOLATION = JobFailure.items([field_error(
    ["body", "prompt"], "The content was flagged by a content checker.",
    "content_policy_violation")])


@dataclass(eq=False)
class Job:
    request_id: str
    endpoint_id: str
    arguments: dict[str, Any]
    submitted_at: float  # time.monotonic()
    submitted_wall: float  # time.time(), for log timestamps
    queue_delay: float
    processing_delay: float
    num_images: int
    reference_sizes: list[tuple[int, int]] = field(default_factory=list)
    start_deadline: float | None = None  # monotonic; from X-Fal-Request-Timeout
    usd: float = 0.0  # what fal bills if the job produces its output
    megapixels: int = 0  # billed megapixels (FLUX.2); 0 for endpoints priced per image
    result: dict[str, Any] | None = field(default=None, repr=False)
    result_bytes: int = 0  # size of the stored result JSON (decides how long fal keeps it)
    failure: JobFailure | None = None
    cancelled_at: float | None = None
    cancel_requests: list[float] = field(default_factory=list)  # every 202 answer, honoured or not
    rendered_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- clock -------------------------------------------------------------------------
    @property
    def queue_ends_at(self) -> float:
        return self.submitted_at + self.queue_delay

    @property
    def timer_ends_at(self) -> float:
        return self.queue_ends_at + self.processing_delay

    @property
    def dropped_at(self) -> float | None:
        """When fal drops the job because no runner started it before its start deadline."""
        if self.start_deadline is not None and self.queue_ends_at > self.start_deadline:
            return self.start_deadline
        return None

    def finish_time(self) -> float | None:
        """When status can first say COMPLETED (may lie in the future); None while rendering."""
        with self._lock:
            if self.cancelled_at is not None:
                return self.cancelled_at
            dropped = self.dropped_at
            if dropped is not None:
                return dropped
            if self.rendered_at is None:
                return None
            return max(self.timer_ends_at, self.rendered_at)

    def status_at(self, now: float) -> str:
        finish = self.finish_time()
        if finish is not None and now >= finish:
            return COMPLETED
        return IN_QUEUE if now < self.queue_ends_at else IN_PROGRESS

    @property
    def status(self) -> str:
        return self.status_at(_now())

    @property
    def completed_at(self) -> float | None:
        finish = self.finish_time()
        return finish if finish is not None and finish <= _now() else None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def dropped(self) -> bool:
        """True once the start deadline has passed with no runner started (never billed)."""
        dropped = self.dropped_at
        return dropped is not None and not self.cancelled and _now() >= dropped

    # --- outcome -----------------------------------------------------------------------
    def finish_rendering(self, now: float, result: dict[str, Any] | None,
                         failure: JobFailure | None = None) -> None:
        size = len(json.dumps(result).encode()) if result is not None else 0
        with self._lock:
            self.result, self.failure, self.rendered_at = result, failure, now
            self.result_bytes = size

    def cancel(self, now: float, honour_in_progress: bool = True) -> bool:
        """Ask the job to stop; False when it had already completed.

        A queued job is removed (frozen as cancelled). A running one is frozen only when
        `honour_in_progress`; otherwise the request is just a signal the app ignores, and the
        job goes on to complete (and bill) as if nothing had happened.
        """
        current = self.status_at(now)
        if current == COMPLETED and not self.cancelled:
            return False
        with self._lock:
            self.cancel_requests.append(now)
            if self.cancelled_at is None and (current == IN_QUEUE or honour_in_progress):
                self.cancelled_at = now
        return True

    def outcome(self) -> JobFailure | dict[str, Any] | None:
        """The failure (cancel, then a passed start deadline, win) or the output; None if
        rendering has not finished."""
        if self.cancelled:
            return CANCELLED
        if self.dropped_at is not None:
            return START_TIMEOUT
        with self._lock:
            return self.failure or self.result

    def billed_at(self, now: float) -> bool:
        """fal bills a job that produced its output; not one that was refused, dropped at its
        start deadline, cancelled before it finished or failed (fal does not bill 5xx, and the
        stand-in bills no failed job)."""
        return self.status_at(now) == COMPLETED and isinstance(self.outcome(), dict)

    def forgotten_at(self, now: float, retention: float, large_retention: float,
                     large_bytes: int) -> bool:
        """True once fal no longer keeps the job: its result is kept `retention` seconds after
        completion, `large_retention` when the stored result is `large_bytes` or more."""
        completed = self.completed_at
        if completed is None:
            return False
        keep = large_retention if self.result_bytes >= large_bytes else retention
        return now >= completed + keep

    # --- logs & metrics ----------------------------------------------------------------
    def logs_at(self, now: float) -> list[dict[str, Any]]:
        cutoff = min(now, self.cancelled_at) if self.cancelled_at is not None else now
        entries = [entry for entry in self._log_schedule() if entry[0] <= cutoff]
        return [{"message": message, "level": level, "source": "USER",
                 "timestamp": self._iso(at)} for at, level, message in entries]

    def _log_schedule(self) -> list[tuple[float, str, str]]:
        start, count = self.queue_ends_at, self.num_images
        if self.dropped_at is not None and self.cancelled_at is None:
            return []  # no runner ever saw it
        schedule = [(start, "INFO", f"Loading {len(self.reference_sizes) or 1} reference image(s)")]
        for index in range(1, count + 1):
            at = start + self.processing_delay * index / (count + 1)
            schedule.append((at, "INFO", f"Generating image {index}/{count}"))
        if self.cancelled_at is not None:
            schedule.append((self.cancelled_at, "INFO", "Cancellation requested"))
            return schedule
        finish = self.finish_time()
        if finish is not None:
            failure = self.failure
            schedule.append((finish, "ERROR", failure.message) if failure
                            else (finish, "INFO", f"Generated {count} image(s)"))
        return schedule

    def _iso(self, at: float) -> str:
        wall = self.submitted_wall + (at - self.submitted_at)
        return datetime.fromtimestamp(wall, tz=timezone.utc).isoformat()

    def inference_time(self) -> float | None:
        finish = self.finish_time()
        if finish is None or finish <= self.queue_ends_at:
            return None
        return round(finish - self.queue_ends_at, 4)


def _now() -> float:
    return time.monotonic()


class JobBook:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.request_id] = job

    def get(self, request_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(request_id)

    def snapshot(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._jobs)

    def queue_position(self, job: Job, now: float) -> int:
        """Earlier jobs still queued, plus a virtual queue that drains over queue_delay."""
        if job.queue_delay <= 0:
            virtual = 0
        else:
            remaining = min(1.0, max(0.0, job.queue_ends_at - now) / job.queue_delay)
            virtual = max(0, math.ceil(remaining * VIRTUAL_QUEUE_SLOTS) - 1)
        ahead = sum(1 for other in self.snapshot().values()
                    if other.submitted_at < job.submitted_at and other.status_at(now) == IN_QUEUE)
        return virtual + ahead


class FailurePlan:
    """Failures armed by `fail_next_jobs`, handed to the next accepted queue submits."""

    def __init__(self) -> None:
        self._pending: deque[JobFailure] = deque()
        self._lock = threading.Lock()

    def arm(self, count: int, status: int, detail: Any, error_type: str | None,
            retryable: bool | None = None) -> None:
        failure = _planned_failure(status, detail, error_type, retryable)
        with self._lock:
            self._pending.extend([failure] * count)

    def take(self) -> JobFailure | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None


def _planned_failure(status: int, detail: Any, error_type: str | None,
                     retryable: bool | None) -> JobFailure:
    if status == 422:
        items = detail if isinstance(detail, list) else [field_error(
            ["body"], str(detail or "Simulated validation failure"), error_type or "value_error")]
        return JobFailure.items(items, retryable=bool(retryable))
    error_type = error_type or ERROR_TYPE_BY_STATUS.get(status, "runner_server_error")
    if status == 500 and error_type == "internal_error":
        error_type = "runner_server_error"  # a job failing at 500 is the runner's fault
    headers = {} if retryable is None else {RETRYABLE_HEADER: str(retryable).lower()}
    return JobFailure.flat(status, str(detail or "Simulated job failure"), error_type, headers)
