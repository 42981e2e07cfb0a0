"""StandInServer: three local origins (fal API, CDN, blocking run host) with a clean lifecycle."""
from __future__ import annotations

import socket
import socketserver
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from .faults import FaultBook, TransientFaults
from .handler import StandInHandler
from .jobs import Job
from .records import RecordedRequest
from .rng import SharedRandom
from .state import State
from .storage import FileStore
from .uplink import UplinkThrottle

ORIGINS = ("api", "cdn", "run")
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
    """

    def __init__(self, processing_delay: float = 0.3, queue_delay: float = 0.0,
                 api_key: str | None = None, seed: int = 0, jitter: float = 0.0,
                 transient_fault_rate: float = 0.0, *, host: str = "127.0.0.1",
                 port: int = 0, uplink_bytes_per_second: float | None = None) -> None:
        rng = SharedRandom(seed)
        self._state = State(api_key, processing_delay, queue_delay, jitter, rng,
                            TransientFaults(transient_fault_rate, rng))
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
                       error_type: str | None = None) -> None:
        """The next `count` accepted queue jobs report COMPLETED, then answer the result fetch
        with this error (422: `detail` is the item list or a message; else a flat error)."""
        self._state.failures.arm(count, status, detail, error_type)

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
