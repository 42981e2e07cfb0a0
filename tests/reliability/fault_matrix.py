"""The fault matrix: every fault at every stage where it can happen, one edit per cell, over real
HTTP against the stand-in. `run_cell` runs one cell and returns what happened; the test asserts
the invariants and `render_matrix` turns the outcomes into the RESULTS.md table."""
from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from fal_kontext.client import JobCancelledError, FalError, SubmitUncertainError
from fal_kontext.client.queue_types import JobState, QueueUpdate
from fal_kontext.kontext import models as m
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.pipeline import EditOptions, EditResult, Reference, run_edit
from fal_kontext.kontext.progress import ProgressReporter
from fal_kontext.kontext.spending import SpendTracker
from results_book import table
from support import TEST_KEY, png_bytes

# Stage -> the stand-in route where its fault is injected.
STAGES: dict[str, str] = {
    "token": "token", "upload": "upload", "submit": "submit", "status": "status",
    "result": "result", "download": "file", "cancel": "cancel",
}
HTTP_STAGES = tuple(STAGES)
API_STAGES = tuple(s for s in STAGES if s != "download")
MODES = ("once", "every attempt")
PERSISTENT_TIMES = 20  # more than any retry budget
STOP_AFTER_SUBMIT_SECONDS = 0.15  # the cancel stage: the user stops this long after the submit
NORMAL_PROCESSING = 0.05
LONG_PROCESSING = 5.0  # cancel cases: the job is still running when the user stops


@dataclass(frozen=True)
class FaultKind:
    name: str
    fault: dict[str, Any] = field(default_factory=dict)  # server.faults.add keyword arguments
    stages: tuple[str, ...] = HTTP_STAGES
    job_failure: dict[str, Any] | None = None  # server.fail_next_jobs keyword arguments

    def applies_to(self, stage: str) -> bool:
        return stage in self.stages


def fault_kinds(foreign_url: str, read_timeout_delay: float) -> list[FaultKind]:
    return [
        FaultKind("429 without Retry-After", {"status": 429}),
        FaultKind("429 with Retry-After: 0.1", {"status": 429, "retry_after": 0.1}),
        FaultKind("500", {"status": 500}),
        FaultKind("502 ingress page, no x-fal-request-id", {"ingress_502": True}),
        FaultKind("503", {"status": 503}),
        FaultKind("504", {"status": 504}),
        FaultKind("connection dropped before the answer", {"drop_connection": True}),
        FaultKind("connection reset mid-response", {"reset_mid_response": True}),
        FaultKind("read timeout", {"delay": read_timeout_delay}),
        FaultKind("malformed JSON", {"malformed_json": True}, API_STAGES),
        FaultKind("truncated body", {"truncate": True}),
        FaultKind("wrong content type (text/html)", {"content_type": "text/html"}),
        FaultKind("redirect to a foreign host", {"redirect_to": foreign_url + "{path}"}),
        FaultKind("job fails: 500 on the result fetch", stages=("result",),
                  job_failure={"status": 500, "detail": "CUDA out of memory",
                               "error_type": "runner_server_error"}),
        FaultKind("job fails: 422 on the result fetch", stages=("result",),
                  job_failure={"status": 422, "detail": [{"loc": ["body", "prompt"],
                                                          "msg": "Prompt too vague",
                                                          "type": "value_error"}]}),
    ]


class RecordingProgress(ProgressReporter):
    """Remembers the request id and whether the client saw the job COMPLETED."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted_at: float | None = None
        self.completed_seen = False
        self.ending = ""

    def submitted(self, request_id: str) -> None:
        super().submitted(request_id)
        self.submitted_at = time.monotonic()

    def queue_update(self, update: QueueUpdate) -> None:
        super().queue_update(update)
        if update.state is JobState.COMPLETED:
            self.completed_seen = True

    def user_pressed_stop(self) -> bool:
        return (self.submitted_at is not None
                and time.monotonic() - self.submitted_at > STOP_AFTER_SUBMIT_SECONDS)


@dataclass
class CellOutcome:
    fault: str
    stage: str
    mode: str
    result: EditResult | None
    error: FalError | None
    request_id: str | None  # the job the client knew about, if any
    completed_seen: bool
    submits: int
    cancels_for_job: int
    jobs_created: list[str]
    seconds: float

    @property
    def label(self) -> str:
        if self.error is None:
            return "recovered"
        if isinstance(self.error, JobCancelledError):
            return "cancel confirmed" if self.error.cancel_confirmed else "JobCancelledError (unconfirmed)"
        return type(self.error).__name__

    @property
    def orphaned_jobs(self) -> list[str]:
        """Jobs created at fal that the client never learned about (a lost submit answer)."""
        return [job for job in self.jobs_created if job != self.request_id]


def reference(seed: int) -> Reference:
    data = png_bytes((seed * 37 % 256, 90, 160))
    return Reference(f"image {seed}", f"matrix-reference-{seed}", lambda: (data, "image/png"))


def install_fault(server, kind: FaultKind, stage: str, mode: str) -> None:
    if kind.job_failure is not None:
        server.fail_next_jobs(1, **kind.job_failure)
    else:
        times = 1 if mode == "once" else PERSISTENT_TIMES
        server.faults.add(STAGES[stage], times=times, **kind.fault)


async def run_cell(server, make_client: Callable[[], Any], kind: FaultKind, stage: str, mode: str,
                   seed: int) -> CellOutcome:
    """One edit through `run_edit` with the fault in place; never raises a FalError."""
    server.faults.clear()
    server.clear_requests()
    jobs_before = set(server.jobs)
    stopping = stage == "cancel"
    server.processing_delay = LONG_PROCESSING if stopping else NORMAL_PROCESSING
    install_fault(server, kind, stage, mode)
    progress = RecordingProgress()
    request = EditRequest(model=m.MULTI_MODELS["pro"], prompt=f"matrix cell {seed}", seed=seed)
    started = time.monotonic()
    result = error = None
    async with make_client(key=TEST_KEY, base_url=server.base_url) as client:
        try:
            result = await _run_until_stopped(
                run_edit(client, request, [reference(seed)], options=EditOptions(),
                         progress=progress, spending=SpendTracker()),
                progress.user_pressed_stop if stopping else lambda: False)
        except asyncio.CancelledError:
            # The user's stop (ComfyUI's Cancel): the run says in words what became of the job.
            error = JobCancelledError(cancel_confirmed="did not confirm" not in progress.ending,
                                   request_id=progress.request_id, ending=progress.ending)
        except FalError as caught:
            error = caught
    seconds = time.monotonic() - started
    if stage == "submit" and kind.fault.get("delay"):
        await asyncio.sleep(kind.fault["delay"])  # a delayed submit lands late: count it here
    server.faults.clear()
    request_id = progress.request_id
    cancels = [r for r in server.cancels() if request_id and request_id in r.path]
    return CellOutcome(kind.name, stage, mode, result, error, request_id, progress.completed_seen,
                       len(server.submits()), len(cancels),
                       sorted(set(server.jobs) - jobs_before), seconds)


async def _run_until_stopped(work, user_pressed_stop: Callable[[], bool]) -> Any:
    """Await `work`, cancelling it (as the node bridge does on Cancel) once the user stops."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.02)
        if done:
            return task.result()
        if user_pressed_stop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise asyncio.CancelledError


def check_right_result(outcome: CellOutcome, server) -> None:
    """The edit returned the image of the job the server ran for it."""
    result = outcome.result
    assert result is not None and len(result.images) == 1
    job = server.jobs[outcome.request_id]
    assert result.info["request_id"] == job.request_id
    expected = job.result["images"][0]
    with Image.open(io.BytesIO(result.images[0].data)) as image:
        image.load()
        assert image.size == (expected["width"], expected["height"])


def check_message(outcome: CellOutcome) -> None:
    """Typed, one line, names the job when there is one, never carries the key."""
    error = outcome.error
    text = str(error)
    assert text and "\n" not in text and len(text) < 600, text
    for secret in (TEST_KEY, *TEST_KEY.split(":")):
        assert secret not in text and secret not in repr(error)
    if outcome.request_id is not None:
        assert error.request_id == outcome.request_id, text
        assert outcome.request_id in text, text
    if isinstance(error, SubmitUncertainError):
        assert "not re-sent" in text and "dashboard" in text, text


def render_matrix(outcomes: dict[tuple[str, str, str], CellOutcome], kinds: list[FaultKind]) -> str:
    """Fault x stage table, plus the exact message of every typed error when the fault persists."""
    cells = len(outcomes)
    submits = max(o.submits for o in outcomes.values())
    jobs = max(len(o.jobs_created) for o in outcomes.values())
    stopped = [o for o in outcomes.values() if o.request_id and not o.completed_seen]
    cancelled = sum(1 for o in stopped if o.cancels_for_job)
    orphaned = sum(1 for o in outcomes.values() if o.orphaned_jobs)
    lines = [
        "## Fault matrix\n",
        f"{cells} edits over real HTTP against the stand-in, one per cell and mode, each with one "
        "reference (token, upload, submit, status polling, result fetch, result download). "
        "Cell: outcome when the fault hits **once** / on **every attempt**. `recovered` = the right "
        "image came back; otherwise the typed `FalError` subclass raised (one line, naming the fal "
        "request id when a job exists). The cancel column stops the run 0.15 s after the submit "
        "(like ComfyUI's Cancel) while the fault hits the cancel request.\n",
        f"- Most jobs created at fal by one edit: **{jobs}** (most submit requests: {submits}; a "
        "submit is sent again only after a 429, which means fal took nothing).",
        f"- Edits that stopped waiting for a job that had not finished: {len(stopped)}; "
        f"cancel sent for **{cancelled}** of them.",
        f"- Edits whose submit answer was lost after fal created the job (no request id to "
        f"cancel; the error says so and points to the dashboard): {orphaned}.\n",
    ]
    header = ["fault \\ stage", *HTTP_STAGES]
    rows = []
    for kind in kinds:
        row: list[object] = [kind.name]
        for stage in HTTP_STAGES:
            if not kind.applies_to(stage):
                row.append("—")
                continue
            labels = [outcomes[(kind.name, stage, mode)].label for mode in MODES
                      if (kind.name, stage, mode) in outcomes]
            row.append(labels[0] if len(set(labels)) == 1 else " / ".join(labels))
        rows.append(row)
    lines.append(table(header, rows))
    lines.append("<details><summary>Messages when the fault hits every attempt</summary>\n")
    details = [[o.fault, o.stage, f"{type(o.error).__name__}: {o.error}"]
               for o in outcomes.values()
               if o.error is not None and o.mode == MODES[-1]]
    lines.append(table(["fault", "stage", "message"], details))
    lines.append("</details>\n")
    return "\n".join(lines)
