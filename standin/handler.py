"""The HTTP handler: read, record, apply faults, run the route, write the (maybe damaged) reply."""
from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from .faults import Fault
from .records import RecordedRequest
from .responses import NGINX_502_PAGE, JSON_TYPE, Reply, StreamReply, default_error, not_found
from .routes import REQUEST_ID_HEADER, match
from .state import State
from .uplink import read_throttled

FAL_ORIGINS = ("api", "run")  # the CDN is not fal's API and sends no request id
MALFORMED_FALLBACK = b'{"status": "IN_QU'


class StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real hosts; clients pool connections
    timeout = 15  # idle keep-alive connections end on their own; stop() closes them sooner
    # Headers and body go out as separate writes; with Nagle on, delayed ACKs add ~40 ms each.
    disable_nagle_algorithm = True
    state: ClassVar[State]
    origin: ClassVar[str]

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests, not stderr noise

    # --- request side --------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._serve_one()
        except OSError:  # the client went away (or stop() closed the socket): nothing to answer
            self.close_connection = True

    def _serve_one(self) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
        name, route, params = match(self.origin, self.command, split.path)
        request = RecordedRequest(self.origin, self.command, split.path,
                                  dict(parse_qsl(split.query, keep_blank_values=True)),
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  time.monotonic(), name)
        self.state.log.add(request)
        fault = self.state.faults.take(name)
        transient = None if fault else self.state.transient.draw(name)
        jitter = self.state.rng.uniform(0, self.state.jitter) if self.state.jitter > 0 else 0.0
        if self.state.pause(jitter) or (fault and self.state.pause(fault.delay)):
            self.close_connection = True  # stopping: leave without an answer
            return
        if fault and fault.replaces_response:
            self._send_replacement(fault)
        elif transient:
            self._send(default_error(transient))
        else:
            reply = route(self.state, request, params) if route else not_found()
            self._send(reply, fault)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0 and self.state.uplink is not None:
            return read_throttled(self.rfile.read, length, self.state.uplink, self.state.pause)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            if self.state.uplink is not None:
                parts.append(read_throttled(self.rfile.read, size, self.state.uplink, self.state.pause))
            else:
                parts.append(self.rfile.read(size))
            self.rfile.readline()

    # --- response side -------------------------------------------------------------------
    def _send_replacement(self, fault: Fault) -> None:
        if fault.drop_connection:
            self.close_connection = True  # FIN without a status line
            return
        if fault.ingress_502:
            self._send(Reply(502, NGINX_502_PAGE, "text/html"), fault, fal_origin=False)
        elif fault.redirect_to is not None:
            # "{path}" keeps the request's path and query, so a mirror origin can serve the same file.
            location = fault.redirect_to.replace("{path}", self.path)
            self._send(Reply(302, b"", None, {"Location": location}), fault)
        elif fault.body is None:
            self._send(default_error(int(fault.status or 500)), fault)
        else:
            self._send(_custom_reply(int(fault.status or 500), fault.body), fault)

    def _send(self, reply: Reply | StreamReply, fault: Fault | None = None,
              fal_origin: bool | None = None) -> None:
        headers = self._headers_for(reply, fault, fal_origin)
        if isinstance(reply, StreamReply):
            self._send_stream(reply, headers, fault)
            return
        body = reply.body
        status = reply.status
        if fault and fault.malformed_json:
            status, body = 200, (body[: max(2, len(body) // 2)] if body else MALFORMED_FALLBACK)
            headers["content-type"] = ("Content-Type", fault.content_type or JSON_TYPE)
        cut = fault is not None and (fault.truncate or fault.reset_mid_response)
        sent = body[: len(body) // 2] if cut else body
        self.send_response(status)
        headers["content-length"] = ("Content-Length", str(max(len(body), len(sent) + 1) if cut
                                                           else len(body)))
        if cut:
            headers["connection"] = ("Connection", "close")
        for header, value in headers.values():
            self.send_header(header, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(sent)
        if cut:
            self._end_abruptly(reset=fault.reset_mid_response)

    def _send_stream(self, reply: StreamReply, headers: dict[str, tuple[str, str]],
                     fault: Fault | None) -> None:
        # No length and no chunking: the event stream ends when we close the connection.
        headers["connection"] = ("Connection", "close")
        self.close_connection = True
        self.send_response(200)
        for header, value in headers.values():
            self.send_header(header, value)
        self.end_headers()
        breaks = fault is not None and (fault.truncate or fault.reset_mid_response
                                        or fault.malformed_json or fault.stall)
        if breaks and fault.stream_events == 0 and not fault.stall:
            self._end_abruptly(reset=fault.reset_mid_response)  # a proxy that cuts every stream
            return
        for sent, event in enumerate(reply.events, start=1):
            if fault and fault.malformed_json:
                event = b"data: " + MALFORMED_FALLBACK + b"\n\n"
            self.wfile.write(event)
            self.wfile.flush()
            if breaks and sent >= fault.stream_events:
                if fault.stall:  # a half-open stream: nothing more, not even keep-alives
                    self.state.stopping.wait()
                    return
                self._end_abruptly(reset=fault.reset_mid_response)
                return

    def _headers_for(self, reply: Reply | StreamReply, fault: Fault | None,
                     fal_origin: bool | None) -> dict[str, tuple[str, str]]:
        """Headers keyed by lower-case name (HTTP names are case-insensitive) to merge safely."""
        merged: dict[str, tuple[str, str]] = {}
        if fal_origin if fal_origin is not None else self.origin in FAL_ORIGINS:
            merged[REQUEST_ID_HEADER] = ("x-fal-request-id", str(uuid.uuid4()))
        if reply.content_type:
            merged["content-type"] = ("Content-Type", reply.content_type)
        for header, value in reply.headers.items():
            merged[header.lower()] = (header, value)
        if fault:
            for header, value in fault.headers.items():
                merged[header.lower()] = (header, value)
            if fault.retry_after is not None:
                merged["retry-after"] = ("Retry-After", _seconds(fault.retry_after))
            if fault.retryable is not None:
                merged["x-fal-retryable"] = ("X-Fal-Retryable", str(fault.retryable).lower())
            if fault.content_type:
                merged["content-type"] = ("Content-Type", fault.content_type)
        return merged

    def _end_abruptly(self, reset: bool) -> None:
        """Close after a partial answer; with reset, abort with RST instead of a FIN."""
        self.close_connection = True
        self.wfile.flush()
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.abort_on_close(self.connection)  # type: ignore[attr-defined]


def _custom_reply(status: int, body: Any) -> Reply:
    if isinstance(body, (bytes, str)):
        raw = body.encode() if isinstance(body, str) else body
        try:
            json.loads(raw)
            return Reply(status, raw, JSON_TYPE)
        except ValueError:
            return Reply(status, raw, "text/plain; charset=utf-8")
    return Reply(status, json.dumps(body).encode(), JSON_TYPE)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
