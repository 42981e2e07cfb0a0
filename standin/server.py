"""StandInServer: three local origins (fal API, CDN, blocking run host) with a clean lifecycle."""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Iterable

from .billing import BilledJob, billed_job
from .faults import Fault, FaultBook, TransientFaults
from .handler import StandInHandler
from .jobs import Job
from .records import RecordedRequest
from .rng import SharedRandom
from .state import State
from .storage import FileStore
from .uplink import UplinkThrottle

ORIGINS = ("api", "cdn", "run")
START_TIMEOUT_ANSWERS = ("result", "status")
LIFECYCLE_HEADERS = ("x-fal-object-lifecycle", "x-fal-object-lifecycle-preference")
SERVE_POLL_SECONDS = 0.02  # how quickly serve_forever notices shutdown()
HANDLER_JOIN_SECONDS = 10.0


class _OriginServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so stop() can end keep-alives."""

    # Handler threads are daemons (a stuck client never blocks interpreter exit), and we track
    # them ourselves: socketserver only joins non-daemon threads, and stop() must leave none.
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[StandInHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._aborting: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a machine
        # with slow reverse DNS; the name is only cosmetic, so skip the lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address), daemon=True,
                                  name=f"standin-{self.RequestHandlerClass.origin}-connection")
        with self._connections_lock:
            self._connections.add(request)
            self._handlers = [handler for handler in self._handlers if handler.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._connections_lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))

    def abort_on_close(self, request: socket.socket) -> None:
        """Close this connection without shutdown(), so SO_LINGER 0 turns the close into RST."""
        with self._connections_lock:
            self._aborting.add(request)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
            aborting = request in self._aborting
            self._aborting.discard(request)
        if aborting:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes handlers blocked reading
            except OSError:
                pass


class StandInServer:
    """A fal-compatible server on 127.0.0.1 for tests and offline demos.

    Use as a context manager, or call start() and stop(). All ports are ephemeral unless
    `port` pins the API origin.

    fal behaviours, each settable here (and as an attribute while running):
    - `stream_keepalive`: seconds of silence after which the status stream sends a comment
      (fal: 15 s).
    - `ignore_cancel_in_progress`: a cancel of an IN_PROGRESS job answers 202
      CANCELLATION_REQUESTED but the app ignores it, so the job completes and bills (what fal
      allows); the default freezes it as cancelled. Queued jobs are always removed.
    - `start_timeout_answer`: how a job dropped at its X-Fal-Request-Timeout start deadline is
      reported: "result" (status says COMPLETED with error_type request_timeout and the result
      fetch answers 504 + X-Fal-Request-Timeout-Type: user) or "status" (the status call itself
      answers that 504).
    - `token_base_url`: the storage token's base_url: "cdn" (the CDN origin, like fal's
      v3.fal.media), "api", None (left out of the answer) or a literal URL.
    - `result_retention` / `large_result_retention` / `large_result_bytes`: a completed job is
      forgotten (404 on status, stream and result; NOT_FOUND on cancel) this long after it
      completed; results of `large_result_bytes` or more are kept the shorter time.
    """

    def __init__(self, processing_delay: float = 0.3, queue_delay: float = 0.0,
                 api_key: str | None = None, seed: int = 0, jitter: float = 0.0,
                 transient_fault_rate: float = 0.0, *, host: str = "127.0.0.1",
                 port: int = 0, stream_keepalive: float = 15.0,
                 ignore_cancel_in_progress: bool = False, start_timeout_answer: str = "result",
                 token_base_url: str | None = "cdn", result_retention: float = 3600.0,
                 large_result_retention: float = 360.0, large_result_bytes: int = 10_240,
                 uplink_bytes_per_second: float | None = None) -> None:
        if start_timeout_answer not in START_TIMEOUT_ANSWERS:
            raise ValueError(f"start_timeout_answer must be one of {START_TIMEOUT_ANSWERS}")
        if stream_keepalive <= 0:
            raise ValueError("stream_keepalive must be positive")
        rng = SharedRandom(seed)
        self._state = State(api_key, processing_delay, queue_delay, jitter, rng,
                            TransientFaults(transient_fault_rate, rng),
                            stream_keepalive=stream_keepalive,
                            ignore_cancel_in_progress=ignore_cancel_in_progress,
                            start_timeout_answer=start_timeout_answer,
                            token_base_url=token_base_url, result_retention=result_retention,
                            large_result_retention=large_result_retention,
                            large_result_bytes=large_result_bytes)
        self.uplink_bytes_per_second = uplink_bytes_per_second
        self._host, self._port = host, port
        self._servers: dict[str, _OriginServer] = {}
        self._threads: list[threading.Thread] = []
        self._serving: set[str] = set()  # shutdown() on a server that never served would hang
        self._started = self._stopped = False

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> "StandInServer":
        if self._started or self._stopped:
            raise RuntimeError("a StandInServer can be started only once")
        self._started = True
        try:
            for origin in ORIGINS:
                self._bind(origin, self._port if origin == "api" else 0)
        except BaseException:
            self.stop()
            raise
        for origin, server in self._servers.items():
            thread = threading.Thread(target=server.serve_forever, args=(SERVE_POLL_SECONDS,),
                                      name=f"standin-{origin}", daemon=True)
            thread.start()
            self._threads.append(thread)
            self._serving.add(origin)
        return self

    def _bind(self, origin: str, port: int) -> None:
        handler = type(f"StandInHandler_{origin}", (StandInHandler,),
                       {"state": self._state, "origin": origin})
        server = _OriginServer((self._host, port), handler)
        self._servers[origin] = server
        url = f"http://{self._host}:{server.server_address[1]}"
        setattr(self._state, f"{'base' if origin == 'api' else origin}_url", url)

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread the server started."""
        if self._stopped:
            return
        self._stopped = True
        self._state.stopping.set()  # wakes delays, event streams and blocking runs
        # shutdown() waits for a serve loop to notice; waiting for all three at once is faster.
        stoppers = [threading.Thread(target=server.shutdown, name="standin-stopper")
                    for origin, server in self._servers.items() if origin in self._serving]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers.values():
            server.close_connections()
            server.server_close()
        for server in self._servers.values():
            # A handler may be inside a reference download (5 s timeout) when we stop.
            server.join_handlers(HANDLER_JOIN_SECONDS)
        for thread in self._threads:
            thread.join()
        self._state.generator.join()

    def __enter__(self) -> "StandInServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._require_url(self._state.base_url)

    @property
    def cdn_url(self) -> str:
        return self._require_url(self._state.cdn_url)

    @property
    def run_url(self) -> str:
        return self._require_url(self._state.run_url)

    @staticmethod
    def _require_url(url: str) -> str:
        if not url:
            raise RuntimeError("the stand-in server has not been started")
        return url

    # --- knobs ---------------------------------------------------------------------------
    @property
    def processing_delay(self) -> float:
        return self._state.processing_delay

    @processing_delay.setter
    def processing_delay(self, seconds: float) -> None:
        self._state.processing_delay = seconds  # applies to jobs submitted afterwards

    @property
    def queue_delay(self) -> float:
        return self._state.queue_delay

    @queue_delay.setter
    def queue_delay(self, seconds: float) -> None:
        self._state.queue_delay = seconds

    @property
    def stream_keepalive(self) -> float:
        return self._state.stream_keepalive

    @stream_keepalive.setter
    def stream_keepalive(self, seconds: float) -> None:
        self._state.stream_keepalive = seconds  # applies to streams opened afterwards

    @property
    def ignore_cancel_in_progress(self) -> bool:
        return self._state.ignore_cancel_in_progress

    @ignore_cancel_in_progress.setter
    def ignore_cancel_in_progress(self, ignore: bool) -> None:
        self._state.ignore_cancel_in_progress = ignore

    @property
    def start_timeout_answer(self) -> str:
        return self._state.start_timeout_answer

    @start_timeout_answer.setter
    def start_timeout_answer(self, answer: str) -> None:
        if answer not in START_TIMEOUT_ANSWERS:
            raise ValueError(f"start_timeout_answer must be one of {START_TIMEOUT_ANSWERS}")
        self._state.start_timeout_answer = answer

    @property
    def token_base_url(self) -> str | None:
        return self._state.token_base_url

    @token_base_url.setter
    def token_base_url(self, value: str | None) -> None:
        self._state.token_base_url = value

    @property
    def result_retention(self) -> float:
        return self._state.result_retention

    @result_retention.setter
    def result_retention(self, seconds: float) -> None:
        self._state.result_retention = seconds

    @property
    def large_result_retention(self) -> float:
        return self._state.large_result_retention

    @large_result_retention.setter
    def large_result_retention(self, seconds: float) -> None:
        self._state.large_result_retention = seconds

    @property
    def uplink_bytes_per_second(self) -> float | None:
        """The client's simulated upload rate: every request body on every origin shares one
        token bucket of this many bytes per second. None (the default): loopback speed."""
        uplink = self._state.uplink
        return uplink.bytes_per_second if uplink else None

    @uplink_bytes_per_second.setter
    def uplink_bytes_per_second(self, rate: float | None) -> None:
        self._state.uplink = UplinkThrottle(rate) if rate else None  # applies to the next body

    @property
    def faults(self) -> FaultBook:
        return self._state.faults

    def fail_next_jobs(self, count: int = 1, status: int = 422, detail: Any = None,
                       error_type: str | None = None, retryable: bool | None = None) -> None:
        """The next `count` accepted queue jobs report COMPLETED, then answer the result fetch
        with this error (422: `detail` is the item list or a message; else a flat error).
        `retryable` sets X-Fal-Retryable on that answer (422s carry "false" unless told)."""
        self._state.failures.arm(count, status, detail, error_type, retryable)

    def outage(self, seconds: float, routes: Iterable[str] = ("status", "status_stream"),
               status: int = 503, **fault: Any) -> list[Fault]:
        """Every request to these routes fails for the next `seconds` (default: fal's status
        routes answer 503); extra keyword arguments are FaultBook.add's (e.g. retryable=True,
        drop_connection=True instead of a status)."""
        until = time.monotonic() + seconds
        if fault.get("drop_connection") or fault.get("ingress_502"):
            status = None  # type: ignore[assignment]
        return [self._state.faults.add(route, times=None, status=status, until=until, **fault)
                for route in routes]

    def reject_storage_tokens(self, times: int | None = 1) -> Fault:
        """The CDN answers the next `times` uploads (None: every one) with 401 "Invalid token",
        whatever token they carry, as fal's CDN does for a token it no longer accepts."""
        return self._state.faults.add("upload", times=times, status=401,
                                      body={"detail": "Invalid token"})

    def expire_file(self, url: str) -> None:
        """The CDN stops serving the file at `url` now, as when the lifecycle it was stored with
        ends (a job given it as a reference then fails with file_download_error); ValueError
        when it is not a file of this server."""
        file_id = FileStore.parse_path(url[len(self.cdn_url):]) if url.startswith(
            self.cdn_url + "/") else None
        if file_id is None or not self._state.store.expire(file_id):
            raise ValueError(f"{url!r} is not a file of this stand-in")

    def put_file(self, data: bytes, content_type: str, name: str | None = None) -> str:
        """Store bytes on the CDN origin; returns their URL."""
        file_id, stored_name = self._state.store.put(data, content_type, name)
        return self.cdn_url + FileStore.path_for(file_id, stored_name)

    # --- observation ---------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.log.snapshot()

    def count(self, route: str) -> int:
        return len(self._state.log.by_route(route))

    def submits(self) -> list[RecordedRequest]:
        return self._state.log.by_route("submit")

    def cancels(self) -> list[RecordedRequest]:
        return self._state.log.by_route("cancel")

    def clear_requests(self) -> None:
        self._state.log.clear()

    @property
    def jobs(self) -> dict[str, Job]:
        return self._state.jobs.snapshot()

    def status_requests(self) -> list[RecordedRequest]:
        """Status-type requests: status polls and status-stream connections."""
        return [r for r in self._state.log.snapshot() if r.route in ("status", "status_stream")]

    def requests_carrying(self, secret: str) -> list[RecordedRequest]:
        """Requests with `secret` anywhere in their path, query, headers or body (e.g. assert the
        API key never reached the CDN: no request to the `upload`/`file` routes carries it)."""
        needle = secret.encode()
        return [r for r in self._state.log.snapshot()
                if secret in r.path or any(secret in value for value in r.query.values())
                or any(secret in value for value in r.headers.values()) or needle in r.body]

    def lifecycle_headers(self, route: str) -> list[dict[str, Any]]:
        """Per request to `route`: its X-Fal-Object-Lifecycle and -Preference headers, parsed
        as JSON (a string if not JSON; absent names are left out)."""
        found = []
        for request in self._state.log.by_route(route):
            parsed: dict[str, Any] = {}
            for name in LIFECYCLE_HEADERS:
                if name in request.headers:
                    try:
                        parsed[name] = json.loads(request.headers[name])
                    except ValueError:
                        parsed[name] = request.headers[name]
            found.append(parsed)
        return found

    # --- billing -------------------------------------------------------------------------
    def billed_jobs(self) -> list[BilledJob]:
        """Every job fal would bill so far, in submit order, then blocking runs: queue jobs that
        completed with an output (including after an ignored cancel). Jobs refused at submit,
        cancelled before finishing, dropped at their start deadline or failed are not billed."""
        now = time.monotonic()
        jobs = sorted(self._state.jobs.snapshot().values(), key=lambda job: job.submitted_at)
        queued = [billed_job(job) for job in jobs if job.billed_at(now)]
        return queued + self._state.runs_billed.snapshot()

    def billed_request_ids(self) -> list[str]:
        return [entry.request_id for entry in self.billed_jobs()]

    def billed_usd(self) -> float:
        return round(sum(entry.usd for entry in self.billed_jobs()), 4)
