"""A scripted fal queue on httpx.MockTransport, for the job state machine's unit tests: the test
moves each job (IN_QUEUE -> IN_PROGRESS -> COMPLETED) and decides how a cancel is answered.
Timing, sockets and streams are the stand-in's business (tests/reliability, tests/client)."""
from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from fal_kontext.client import FalClient, RetryPolicy
from fal_kontext.client.status_watch import PollGaps
from support import png_bytes

BASE = "https://queue.example.test"
ENDPOINT = "fal-ai/flux-pro/kontext/multi"
REQUESTS = "/fal-ai/flux-pro/requests/"
RESULT_PNG = png_bytes((10, 200, 30), size=(8, 8))


@dataclass
class ScriptedJob:
    request_id: str
    arguments: dict[str, Any]
    state: str = "IN_QUEUE"
    result: dict[str, Any] | None = None  # None: a normal output; else this body, answered 422
    cancelled: bool = False


@dataclass
class ScriptedFal:
    cancel_answer: int = 202  # 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED, 404, 500
    submit_gate: asyncio.Event | None = None  # the submit waits for it (a slow submit)
    jobs: dict[str, ScriptedJob] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submits(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] == "POST"]

    def cancels(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] == "PUT"]

    def move_all(self, state: str) -> None:
        for job in self.jobs.values():
            job.state = state

    def client(self) -> FalClient:
        return FalClient(key="k-id:k-secret", base_url=BASE, transport=httpx.MockTransport(self._handle),
                         retry=RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0),
                         use_status_stream=False, storage_lifetime=None,
                         poll_gaps=_fast_gaps)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls.append((request.method, path))
        if request.method == "POST":
            if self.submit_gate is not None:
                await self.submit_gate.wait()
            with self._lock:
                request_id = f"req-{next(self._ids)}"
                self.jobs[request_id] = ScriptedJob(request_id, _json(request))
            return httpx.Response(200, json={"request_id": request_id})
        request_id = path[len(REQUESTS):].split("/")[0]
        job = self.jobs.get(request_id)
        if job is None:
            return httpx.Response(404, json={"detail": "Request not found"})
        if request.method == "PUT":
            return self._cancel(job)
        if path.endswith("/status"):
            return httpx.Response(200, json={"status": job.state, "queue_position": 0, "logs": []})
        if job.state != "COMPLETED":
            return httpx.Response(400, json={"detail": "Request is still in progress"})
        if job.result is not None:
            return httpx.Response(422, json=job.result)
        return httpx.Response(200, json={"images": [{"url": _data_uri(RESULT_PNG),
                                                     "content_type": "image/png"}],
                                         "seed": 7, "has_nsfw_concepts": [False]})

    def _cancel(self, job: ScriptedJob) -> httpx.Response:
        if self.cancel_answer == 202:
            job.cancelled = True
            return httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"})
        if self.cancel_answer == 400:
            return httpx.Response(400, json={"status": "ALREADY_COMPLETED"})
        return httpx.Response(self.cancel_answer, json={"detail": "no"})


def _fast_gaps() -> PollGaps:
    return PollGaps(first=0.01, growth=1.0, cap=0.01)


def _json(request: httpx.Request) -> dict[str, Any]:
    import json
    return json.loads(request.content or b"{}")


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()
