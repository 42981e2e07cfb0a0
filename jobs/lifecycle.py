"""The states of one fal job, the moves allowed between them, and the typed ways a job ends.

A job is in exactly one `JobPhase`; `check_transition` is the one place a move is allowed or
refused. How a job ended (or stood when its last caller stopped waiting) is a `JobEnding`;
`jobs/words.py` turns it into words for every surface.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..client.errors import StartDeadlineError, SubmitUncertainError


class JobPhase(enum.Enum):
    PREPARING = "preparing"  # the leader is sending the references; nothing exists at fal
    AWAITING_NAME = "awaiting_name"  # another process is submitting it; we wait for its id
    SUBMITTING = "submitting"  # the submit is on its way: fal may or may not have the job
    QUEUED = "queued"
    RUNNING = "running"
    COLLECTING = "collecting"  # fal finished it: downloading and storing the result
    ENDED = "ended"


_ = JobPhase
TRANSITIONS: dict[JobPhase, frozenset[JobPhase]] = {
    _.PREPARING: frozenset({_.SUBMITTING, _.ENDED}),
    _.AWAITING_NAME: frozenset({_.QUEUED, _.ENDED}),
    # Back to SUBMITTING: fal could not fetch a reused reference upload, which is sent again once.
    _.SUBMITTING: frozenset({_.QUEUED, _.RUNNING, _.COLLECTING, _.ENDED}),
    _.QUEUED: frozenset({_.RUNNING, _.COLLECTING, _.SUBMITTING, _.ENDED}),
    _.RUNNING: frozenset({_.QUEUED, _.COLLECTING, _.SUBMITTING, _.ENDED}),
    _.COLLECTING: frozenset({_.ENDED}),
    _.ENDED: frozenset(),
}
del _


class TransitionError(RuntimeError):
    """A move the table does not allow: a bug in the job's owner, never a user's problem."""


def check_transition(current: JobPhase, new: JobPhase) -> None:
    if new is not current and new not in TRANSITIONS[current]:
        raise TransitionError(f"a job cannot go from {current.value} to {new.value}")


class EndingKind(enum.Enum):
    NEVER_SUBMITTED = "never_submitted"  # nothing reached fal; nothing billed
    CANCELLED_BEFORE_START = "cancelled_before_start"  # fal stopped it in the queue; not billed
    CANCEL_REQUESTED = "cancel_requested"  # it was running: fal may finish and bill it anyway
    LEFT_RUNNING = "left_running"  # not ours to cancel (or the cancel was not confirmed)
    COMPLETED_DELIVERED = "completed_delivered"  # finished, billed, handed to a waiting run
    COMPLETED_KEPT = "completed_kept"  # finished, billed, kept for a later run
    FAILED = "failed"


# Endings after which fal bills nothing for the job.
UNBILLED = frozenset({EndingKind.NEVER_SUBMITTED, EndingKind.CANCELLED_BEFORE_START})


@dataclass(frozen=True)
class JobEnding:
    """How a job ended, or stood when the last run waiting for it stopped waiting.

    `kept` says where its result is or will be kept: "cache" (the result cache), "fal" (the job
    ledger remembers it while fal keeps the result), or "" (nowhere). `shared`: the run that
    reads this followed a job it did not submit, so it was not billed for it. `still_wanted`:
    another run still waits for the job, so it goes on for that one."""

    kind: EndingKind
    request_id: str | None = None
    cost_usd: float = 0.0
    kept: str = ""
    shared: bool = False
    error: BaseException | None = None
    still_wanted: bool = False  # another run still waits for the job, so it goes on

    @property
    def nothing_billed(self) -> bool:
        """True when fal provably bills nothing for this job: it never reached fal, was refused
        without creating a job, or was dropped or cancelled before it started."""
        if self.kind in UNBILLED or isinstance(self.error, StartDeadlineError):
            return True
        return (self.kind is EndingKind.FAILED and self.request_id is None
                and not isinstance(self.error, SubmitUncertainError))


__all__ = ["EndingKind", "JobEnding", "JobPhase", "TRANSITIONS", "TransitionError",
           "UNBILLED", "check_transition"]
