"""A host that is not fal: it records every request (to prove the key never reaches it) and
mirrors files from the stand-in's CDN, like a storage bucket a CDN redirects to."""
from __future__ import annotations

import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are expected here


class ForeignHost:
    """`with ForeignHost(mirror_of=cdn_url) as host:` serves GET /files/... from `mirror_of`."""

    def __init__(self, mirror_of: str | None = None) -> None:
        self.mirror_of = mirror_of
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ForeignHost":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with host._lock:
                    host.seen.append(SeenRequest(self.command, self.path,
                                                 {k.lower(): v for k, v in self.headers.items()}, body))
                status, content_type, data = 404, "text/plain", b"not here"
                if host.mirror_of and self.command == "GET" and self.path.startswith("/files/"):
                    with urllib.request.urlopen(host.mirror_of + self.path, timeout=5) as upstream:
                        status, content_type = 200, upstream.headers.get("Content-Type", "")
                        data = upstream.read()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = do_GET

        return Handler
