"""How often to ask fal about a job: fast while it may finish soon, slower deep in a queue."""
from __future__ import annotations

from dataclasses import dataclass

from .queue_types import JobState, JobStatus


@dataclass
class PollSchedule:
    """Adaptive delays: start at `first`, grow by `growth` up to `cap_running` while the job runs
    (so completion is noticed within ~cap_running), and up to `cap_queued` while many jobs wait
    ahead of ours."""

    first: float = 0.05
    growth: float = 1.3
    cap_running: float = 0.1
    cap_queued: float = 1.0
    queued_fast_positions: int = 2
    _current: float = 0.0

    def next_delay(self, status: JobStatus) -> float:
        self._current = self.first if not self._current else self._current * self.growth
        deep_in_queue = (status.state is JobState.IN_QUEUE
                         and (status.queue_position or 0) > self.queued_fast_positions)
        return min(self._current, self.cap_queued if deep_in_queue else self.cap_running)
