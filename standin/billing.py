"""What fal would bill: one entry per job (or blocking run) that produced its output.

Kontext bills per output image; FLUX.2 per megapixel of output and references (1024 x 1024
pixels each, the total rounded up; the first at one price, every further one at another).

Queue jobs are billed by rule, read from the job's clock (see `Job.billed_at`), so a job that
completes after an ignored cancel is billed exactly when it completes; blocking runs are added
when they answer 200.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .jobs import Job


@dataclass(frozen=True)
class BilledJob:
    request_id: str
    endpoint_id: str
    images: int
    usd: float
    route: str  # "queue" or "run"
    cancel_was_requested: bool  # a 202 CANCELLATION_REQUESTED the app ignored
    megapixels: int = 0  # FLUX.2: output + reference megapixels billed (0: priced per image)


def billed_job(job: Job) -> BilledJob:
    """The job's bill: per image (Kontext) or per megapixel of output and references (FLUX.2),
    as priced at submit (`Prepared.usd`)."""
    return BilledJob(job.request_id, job.endpoint_id, job.num_images, job.usd, "queue",
                     bool(job.cancel_requests), job.megapixels)


class RunLedger:
    """Blocking runs that answered with an output (they have no job to derive billing from)."""

    def __init__(self) -> None:
        self._entries: list[BilledJob] = []
        self._lock = threading.Lock()

    def add(self, entry: BilledJob) -> None:
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[BilledJob]:
        with self._lock:
            return list(self._entries)
