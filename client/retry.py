"""The one retry policy for requests that are safe to repeat."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Mapping

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# fal says whether an error is worth repeating in one of these headers (docs: errors).
RETRYABLE_HEADERS = ("x-fal-retryable", "x-fal-needs-retry")
START_DEADLINE_TYPE_HEADER = "x-fal-request-timeout-type"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After up to `max_retry_after`."""

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return backoff * random.uniform(0.5, 1.0)


class Backoff:
    """The one retry mechanism: counts the consecutive failures of one thing (a request, a
    job's status) and waits the policy's delay, or the server's Retry-After, before the next
    try; `exhausted` says when the policy allows no further attempt."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.failures = 0

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self, retry_after: float | None = None) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return self.policy.delay(self.failures, retry_after)

    @property
    def exhausted(self) -> bool:
        return self.failures >= self.policy.attempts

    async def wait(self, retry_after: float | None = None) -> None:
        await asyncio.sleep(self.failed(retry_after))


NO_RETRY = RetryPolicy(attempts=1)
# While a job is alive its status is worth waiting for: fal's own clients ride out tens of
# seconds of errors. The run's deadline, not an attempt count, ends the waiting.
STATUS_RETRY = RetryPolicy(attempts=1_000_000, base_delay=0.5, max_delay=8.0)


def server_retry_hint(headers: Mapping[str, str]) -> bool | None:
    """fal's own verdict on repeating a failed request: True, False, or None (no hint)."""
    for name in RETRYABLE_HEADERS:
        value = headers.get(name)
        if value is not None:
            return value.strip().lower() in ("1", "true", "yes")
    return None


def is_start_deadline_answer(status_code: int, headers: Mapping[str, str]) -> bool:
    """fal's answer for a job whose start deadline (X-Fal-Request-Timeout) passed: never retry."""
    return status_code == 504 and headers.get(START_DEADLINE_TYPE_HEADER, "").strip().lower() == "user"


def should_retry(status_code: int, headers: Mapping[str, str], *, idempotent: bool) -> bool:
    """Whether a failed answer may be repeated. A submit (not idempotent) only when fal provably
    did not take the job: a 429 (rate limit, nothing queued) or fal saying it is retryable."""
    if is_start_deadline_answer(status_code, headers):
        return False
    hint = server_retry_hint(headers)
    if hint is not None:
        return hint
    if not idempotent:
        return status_code == 429
    return status_code in RETRYABLE_STATUS


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
