"""Lifecycle shared by the test servers: a threaded HTTP server on an ephemeral loopback port."""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Any


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1, no access log; every method goes to _serve()."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _serve(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()


class LoopbackServer:
    """Subclasses provide handler_class(); start/stop or use as a context manager. `host` and `port`
    choose where it listens (another loopback address such as 127.0.0.2; port 0: any free one)."""

    _server: http.server.ThreadingHTTPServer | None = None
    host = "127.0.0.1"
    port = 0
    tls: ssl.SSLContext | None = None  # a server context: HTTPS

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Any:
        server = http.server.ThreadingHTTPServer((self.host, self.port), self.handler_class())
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"{'https' if self.tls else 'http'}://{self.host}:{self._server.server_address[1]}"
