"""A fal-compatible stand-in server for the Kontext and FLUX.2 edit endpoints (tests, demos,
offline work).

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
- X-Fal-Request-Timeout on submit is a start deadline: a job still queued when it passes is
  dropped (never billed); status then says COMPLETED with error_type request_timeout and the
  result answers 504 + X-Fal-Request-Timeout-Type: user (start_timeout_answer="status" moves
  that 504 onto the status call). A malformed value is a 400 bad_request at submit.
- Billing (billed_jobs): a job is billed when it completes with an output; failed, refused,
  dropped and cancelled-before-finishing jobs are not. Kontext per output image; FLUX.2 per
  megapixel of output and references (standin/flux2_schema.py, with the guesses it follows
  where fal states nothing). With ignore_cancel_in_progress a cancel
  of a running job is only a signal: 202, then the job completes and bills.
- Results are forgotten result_retention (3600 s) after completion, large_result_retention
  (360 s) for results of 10 KiB or more; then status, stream and result answer 404.
- Lifecycle headers set lifetimes: X-Fal-Object-Lifecycle (CDN upload, -Preference accepted
  too), -Preference on initiate and on submit (the outputs). Expired files answer 404, and a
  job given one as a reference is refused with file_download_error; expire_file(url) ends a
  file's life at once (fal's storage dropped it).
- The storage token's base_url is the CDN origin, which takes POST /files/upload (so does the
  API origin, for clients that upload to a fixed host).
- 422 job failures carry X-Fal-Retryable: false, as fal's toolkit errors do.
"""
from .billing import BilledJob
from .faults import RETRY_SAFE_ROUTES, ROUTES, Fault, FaultBook
from .jobs import COMPLETED, IN_PROGRESS, IN_QUEUE, Job, JobFailure
from .records import RecordedRequest
from .server import StandInServer

__all__ = [
    "COMPLETED", "IN_PROGRESS", "IN_QUEUE", "RETRY_SAFE_ROUTES", "ROUTES", "BilledJob", "Fault",
    "FaultBook", "Job", "JobFailure", "RecordedRequest", "StandInServer",
]
