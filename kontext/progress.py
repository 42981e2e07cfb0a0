"""Progress of one edit as stages, overall fraction and a short status line.

The pipeline calls the stage methods; a sink (ComfyUI's progress bar and text, or the CLI's
progress bar) receives `ProgressEvent`s. fal's log lines go to the pack's logger.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..client.logs import logger
from ..client.queue_types import JobState, QueueUpdate
from ..jobs.lifecycle import JobEnding
from ..jobs.words import (SEPARATOR, cancelled_line, done_line, failed_line, following_line,
                          money, stopped_following_line)

_ENDINGS = frozenset({"done", "cancelled", "failed"})
# Share of the bar each stage fills; generating is open-ended, so it creeps towards its end.
_UPLOAD_END, _QUEUE_END, _GENERATE_END = 0.2, 0.3, 0.9
_GENERATE_HALF_LIFE_SECONDS = 10.0


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "upload", "queue", "generate", "download", then "done", "cancelled" or "failed"
    fraction: float  # 0..1 over the whole edit
    text: str


ProgressSink = Callable[[ProgressEvent], None]


class ProgressReporter:
    """Turns pipeline stages into ProgressEvents for `sink`; `log_prefix` tags fal's log lines."""

    def __init__(self, sink: ProgressSink | None = None, log_prefix: str = ""):
        self._sink = sink
        self._prefix = log_prefix
        self._cost_text = ""
        self.request_id: str | None = None
        self.ending: str | None = None  # the final words once the run ended (done/cancelled/failed)

    def _emit(self, stage: str, fraction: float, text: str) -> None:
        if stage in _ENDINGS:
            self.ending = text
        elif self.ending is not None:
            return  # a late event from the job's thread must not hide how the run ended
        if self._sink is not None:
            self._sink(ProgressEvent(stage, min(max(fraction, 0.0), 1.0), text + self._cost_text))

    def started(self, cost_usd: float, reference_count: int) -> None:
        self._cost_text = f"{SEPARATOR}{money(cost_usd)}"
        self._emit("upload", 0.0, f"Preparing {_references(reference_count)}")

    def uploaded(self, done: int, total: int) -> None:
        self._emit("upload", _UPLOAD_END * done / total, f"References {done}/{total} ready")

    def following(self, request_id: str) -> None:
        """A request fal already has is fetched by its id (nothing is uploaded or submitted)."""
        self.request_id = request_id
        self._emit("queue", _UPLOAD_END, following_line(request_id))

    def submitted(self, request_id: str) -> None:
        self.request_id = request_id
        logger.info("%sfal request %s submitted", self._prefix, request_id)
        self._emit("queue", _UPLOAD_END, "Submitted to fal")

    def queue_update(self, update: QueueUpdate) -> None:
        for line in update.new_logs:
            logger.info("%s[fal] %s", self._prefix, line)
        if update.state is JobState.IN_QUEUE:
            self._emit("queue", _UPLOAD_END + 0.05, f"Queued at fal{_place_in_line(update.queue_position)}")
        elif update.state is JobState.IN_PROGRESS:
            creep = 1 - 0.5 ** (update.elapsed / _GENERATE_HALF_LIFE_SECONDS)
            fraction = _QUEUE_END + (_GENERATE_END - _QUEUE_END) * creep
            self._emit("generate", fraction, f"Generating · {update.elapsed:.0f} s")
        else:
            self._emit("download", _GENERATE_END, "Fetching result")

    def downloaded(self, done: int, total: int) -> None:
        fraction = _GENERATE_END + (1 - _GENERATE_END) * done / max(total, 1)
        self._emit("download", fraction, f"Downloaded {done}/{total}")

    def cancelled(self, ending: JobEnding) -> None:
        """The run was cancelled: the final line says what became of the fal job."""
        self._cost_text = ""
        self._emit("cancelled", 1.0, cancelled_line(ending))

    def stopped_following(self, request_id: str) -> None:
        """The run fetching a request by its id stopped waiting; the job goes on at fal."""
        self._cost_text = ""
        self._emit("cancelled", 1.0, stopped_following_line(request_id))

    def failed(self, message: str) -> None:
        """The run failed: the final line is the error itself."""
        self._cost_text = ""
        self._emit("failed", 1.0, failed_line(message))

    def finished(self, info: dict[str, Any]) -> None:
        self._cost_text = ""
        self._emit("done", 1.0, info.get("summary") or done_line(info))


def _references(count: int) -> str:
    return "1 reference" if count == 1 else f"{count} references"


def _place_in_line(position: int | None) -> str:
    """fal counts the jobs ahead of ours (0 = next); say it the way people count."""
    if position is None:
        return ""
    if position <= 0:
        return " · next in line"
    return f" · {position} ahead"
