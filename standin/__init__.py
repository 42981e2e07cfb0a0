"""A fal-compatible stand-in server for the Kontext endpoints (tests, demos, offline work).

    with StandInServer(processing_delay=0.2) as server:
        ...  # queue + storage at server.base_url, files at server.cdn_url, blocking run at run_url

Protocol choices where fal's behaviour is undocumented or the stand-in simplifies:
- A cancelled job freezes: status says COMPLETED with error "Request was cancelled" and
  error_type "client_cancelled"; its result fetch answers 499 {"detail": "Request was
  cancelled", "error_type": "client_cancelled"} (fal's documented code for a cancelled request).
  Cancelling it again answers 202 CANCELLATION_REQUESTED (idempotent); only a job that really
  finished answers 400 ALREADY_COMPLETED (the pack reads that as "ran and was billed").
- Failed jobs (fail_next_jobs, the `[policy]` prompt tag) report COMPLETED with `error` and
  `error_type`; the result fetch returns the stored error. fail_next_jobs applies to queue
  submits only, never to the blocking run route.
- queue_position = earlier jobs still queued + a virtual queue draining 2, 1, 0 over queue_delay.
- Types are checked strictly (no "3.5" for 3.5, no true for 1, no 2.0 for 2).
- A fault that sets status/ingress_502/redirect_to/drop_connection replaces the answer and the
  route does not run; delay/malformed_json/truncate/reset_mid_response/headers/content_type
  damage the real answer, so e.g. a submit still creates its job.
- truncate sends half the body and closes (FIN); reset_mid_response does the same with a RST.
"""
from .faults import RETRY_SAFE_ROUTES, ROUTES, Fault, FaultBook
from .jobs import COMPLETED, IN_PROGRESS, IN_QUEUE, Job, JobFailure
from .records import RecordedRequest
from .server import StandInServer

__all__ = [
    "COMPLETED", "IN_PROGRESS", "IN_QUEUE", "RETRY_SAFE_ROUTES", "ROUTES", "Fault", "FaultBook",
    "Job", "JobFailure", "RecordedRequest", "StandInServer",
]
