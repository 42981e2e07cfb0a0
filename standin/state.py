"""Everything the three origins share, in one object handed to every request handler."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .billing import RunLedger
from .faults import FaultBook, TransientFaults
from .generation import Generator
from .jobs import FailurePlan, Job, JobBook
from .records import RequestLog
from .rng import SharedRandom
from .storage import FileStore
from .uplink import UplinkThrottle


@dataclass
class State:
    api_key: str | None
    processing_delay: float
    queue_delay: float
    jitter: float
    rng: SharedRandom
    transient: TransientFaults
    store: FileStore = field(default_factory=FileStore)
    jobs: JobBook = field(default_factory=JobBook)
    faults: FaultBook = field(default_factory=FaultBook)
    failures: FailurePlan = field(default_factory=FailurePlan)
    log: RequestLog = field(default_factory=RequestLog)
    runs_billed: RunLedger = field(default_factory=RunLedger)
    # fal-like behaviours a test may change (see StandInServer for what each means)
    stream_keepalive: float = 15.0
    ignore_cancel_in_progress: bool = False
    start_timeout_answer: str = "result"  # "result" or "status"
    token_base_url: str | None = "cdn"  # "cdn", "api", None (omitted) or a literal URL
    result_retention: float = 3600.0
    large_result_retention: float = 360.0
    large_result_bytes: int = 10_240
    stopping: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""
    cdn_url: str = ""
    run_url: str = ""
    uplink: UplinkThrottle | None = None  # None: request bodies arrive at loopback speed
    generator: Generator = field(init=False)

    def __post_init__(self) -> None:
        # The generator reads cdn_url lazily: it is only known once the CDN socket is bound.
        self.generator = Generator(self.store, lambda: self.cdn_url, self.rng)

    def forgotten(self, job: Job, now: float) -> bool:
        """True once fal's retention window for this job's result has passed."""
        return job.forgotten_at(now, self.result_retention, self.large_result_retention,
                                self.large_result_bytes)

    def pause(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True when it is stopping."""
        return self.stopping.wait(seconds) if seconds > 0 else self.stopping.is_set()
