"""Servers that misbehave, for the tests of where the operator connects and what it repeats:

- RecordingListener: records every connection and request (with its Authorization header), answers
  a fixed status; it stands where nothing should ever arrive (the target of a redirect, a refused
  destination);
- RedirectingServer: answers 3xx to another address for the requests it is told to, and proxies the
  others to a real server (so git can get its refs and be redirected only on the POST that carries the
  pack, as a hostile server would do it);
- HostileForge: answers by path from a script: error bodies holding a secret, redirects, bodies of any
  size, control characters in check names.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .loopback import LoopbackServer, QuietHandler

SECRET = "INTERNAL-SECRET-42"


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        data = b""
        while size := int(handler.rfile.readline().strip() or b"0", 16):
            data += handler.rfile.read(size)
            handler.rfile.readline()
        handler.rfile.readline()
        return data
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class _Recorder(LoopbackServer):
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, **entry: Any) -> None:
        with self._lock:
            self.requests.append(entry)

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    def authorized_requests(self) -> list[dict[str, Any]]:
        """Requests that carried an Authorization header (a token, whatever its form)."""
        return [r for r in self.requests if r.get("authorization")]


class _CountingHandler(QuietHandler):
    recorder: _Recorder

    def setup(self) -> None:  # once per connection, before any request is read
        self.recorder.connected()
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # a client that gives up on a hostile answer is no failure of the server
            self.close_connection = True


class RecordingListener(_Recorder):
    def __init__(self, host: str = "127.0.0.2", port: int = 0, status: int = 200) -> None:
        super().__init__()
        self.host, self.port, self.status = host, port, status

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        listener = self

        class Handler(_CountingHandler):
            recorder = listener

            def _serve(self) -> None:
                _read_body(self)
                listener.record(method=self.command, path=self.path, host=self.headers.get("Host"),
                                authorization=self.headers.get("Authorization"))
                body = b"{}"
                self.send_response(listener.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class RedirectingServer(_Recorder):
    """3xx to `location` + the request's path for the requests `redirects(method, path)` picks; the
    others go to `upstream` (a base URL) when given, else 404, with `upstream_headers` added where the
    client sent none (a server that serves its refs to anyone, as an attacker's would)."""

    def __init__(self, location: str, code: int = 302, upstream: str | None = None,
                 redirects: Callable[[str, str], bool] = lambda method, path: True,
                 upstream_headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.location, self.code, self.upstream, self.redirects = location.rstrip("/"), code, upstream, redirects
        self.upstream_headers = upstream_headers or {}

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(_CountingHandler):
            recorder = server

            def _serve(self) -> None:
                body = _read_body(self)
                redirected = server.redirects(self.command, self.path)
                server.record(method=self.command, path=self.path, redirected=redirected,
                              authorization=self.headers.get("Authorization"))
                if redirected:
                    return self._answer(server.code, b"", [("Location", f"{server.location}{self.path}")])
                if server.upstream is None:
                    return self._answer(404, b"", [])
                return self._proxy(body)

            def _proxy(self, body: bytes) -> None:
                assert server.upstream is not None
                up = urlsplit(server.upstream)
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=30)
                skip = {"host", "content-length", "transfer-encoding", "connection"}
                headers = {**server.upstream_headers,
                           **{k: v for k, v in self.headers.items() if k.lower() not in skip}}
                conn.request(self.command, self.path, body=body, headers=headers)
                got = conn.getresponse()
                data = got.read()
                conn.close()
                self._answer(got.status, data, [(k, v) for k, v in got.getheaders() if k.lower() not in skip])

            def _answer(self, status: int, data: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0  # > 0: a body of this many bytes, streamed in chunks (body ignored)
    reason: str | None = None  # the reason phrase on the status line


class HostileForge(_Recorder):
    """Answers every request from a script of (method, path pattern) -> Answer; unscripted requests get
    a 404 whose JSON message is a secret."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[str, str, Answer]] = []
        self.sent = 0  # bytes of streamed bodies written before the client went away

    @property
    def api_url(self) -> str:
        return self.base_url

    def answer(self, method: str, pattern: str, answer: Answer) -> None:
        self.script.insert(0, (method, pattern, answer))

    def _find(self, method: str, path: str) -> Answer:
        for verb, pattern, answer in self.script:
            if verb == method and re.fullmatch(pattern, path):
                return answer
        return Answer(404, {"message": SECRET, "documentation_url": SECRET}, reason=SECRET)

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        forge = self

        class Handler(_CountingHandler):
            recorder = forge

            def _serve(self) -> None:
                _read_body(self)
                path = urlsplit(self.path).path
                forge.record(method=self.command, path=path, authorization=self.headers.get("Authorization"))
                answer = forge._find(self.command, path)
                self.send_response(answer.status, answer.reason)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if answer.size:
                    self._stream(answer.size)
                    return
                data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, size: int) -> None:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"[" + b" " * 65535
                try:
                    while forge.sent < size:
                        self.wfile.write(chunk)
                        forge.sent += len(chunk)
                        chunk = b" " * 65536
                except OSError:  # the client stopped reading: what a bounded reader does
                    self.close_connection = True

        return Handler
