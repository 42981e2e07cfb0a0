"""How a run ended, in the words every surface shows: the node's status line, the CLI, `info`,
and the timeout and cancel errors. The only place these sentences are written."""
from __future__ import annotations

from typing import Any, Mapping

from .lifecycle import EndingKind, JobEnding

SEPARATOR = " · "


def money(usd: float) -> str:
    """$0.04, $0.075, $0 - as many decimals as the amount needs (at least two unless zero)."""
    if not usd:
        return "$0"
    text = f"{usd:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def done_line(info: Mapping[str, Any]) -> str:
    """The final line of a run that delivered images."""
    saved_usd = float(info.get("cost_saved_usd") or 0.0)
    saved = f"$0 (saved {money(saved_usd)})" if saved_usd else "$0"
    if info.get("cached"):
        return SEPARATOR.join(("Done", "from cache", saved))
    count = images(int(info.get("num_images") or 0))
    request = str(info.get("request_id") or "")[:8]
    if info.get("fetched_by_id"):
        return SEPARATOR.join(("Done", count, f"fetched from fal request {request}", saved))
    if info.get("shared_job"):
        return SEPARATOR.join(("Done", count, f"from fal request {request}, already paid", saved))
    return SEPARATOR.join(("Done", count, money(float(info.get("estimated_cost_usd") or 0.0))))


def _kept(ending: JobEnding, *, finished: bool = False) -> str:
    """Where the result is (`finished`) or will be kept."""
    tense = "is" if finished else "will be"
    if ending.kept == "cache":
        return f"the result {tense} kept"
    if ending.kept == "fal":
        return "the result stays collectable for about an hour"
    return f"the result {tense} not kept"


def ending_text(ending: JobEnding) -> str:
    """What became of the fal job when a run stopped waiting for it (cancel or timeout)."""
    kind, cost = ending.kind, money(ending.cost_usd)
    if ending.still_wanted:
        return "another run waits for the same job, so it goes on"
    if kind is EndingKind.NEVER_SUBMITTED:
        return "nothing billed"
    if kind is EndingKind.CANCELLED_BEFORE_START:
        return "stopped in fal's queue, nothing billed"
    if kind is EndingKind.CANCEL_REQUESTED:
        if ending.request_id is None:
            return f"the submit was on its way; fal is asked to stop it at once, it may bill {cost}"
        return f"fal may still bill {cost}; {_kept(ending)}"
    if kind is EndingKind.LEFT_RUNNING:
        if ending.shared:
            return f"the job belongs to an earlier run and goes on; {_kept(ending)}"
        return f"fal did not confirm the cancel, it may bill {cost}; {_kept(ending)}"
    if kind is EndingKind.COMPLETED_KEPT:
        if ending.shared:
            return f"the job had finished already; {_kept(ending, finished=True)}"
        return f"it had finished already: {cost} billed; {_kept(ending, finished=True)}"
    if kind is EndingKind.COMPLETED_DELIVERED:
        return "it had finished already"
    return f"the job ended without a result ({ending.error})" if ending.error else \
        "the job ended without a result"


def timeout_text(ending: JobEnding) -> str:
    """What became of the job when the run's timeout ended the wait."""
    if ending.kind in (EndingKind.CANCEL_REQUESTED, EndingKind.CANCELLED_BEFORE_START):
        return f"the job was cancelled at fal: {ending_text(ending)}"
    return ending_text(ending)


def cancelled_line(ending: JobEnding) -> str:
    return SEPARATOR.join(("Cancelled", ending_text(ending)))


def following_line(request_id: str) -> str:
    """The first line of a run that fetches a request fal already has, by its id."""
    return f"Asking fal for request {request_id[:8]}"


def stopped_following_line(request_id: str) -> str:
    """A run fetching a request by its id stopped waiting: the job was never its to cancel."""
    return SEPARATOR.join(("Stopped waiting", f"fal request {request_id[:8]} goes on (it is not "
                                              "cancelled from here); run again to fetch it, free"))


def failed_line(message: str) -> str:
    return SEPARATOR.join(("Failed", message))


__all__ = ["cancelled_line", "done_line", "ending_text", "failed_line", "following_line", "images",
           "money", "stopped_following_line", "timeout_text"]
