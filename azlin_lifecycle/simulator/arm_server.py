"""HTTPS plumbing for :class:`~.arm_api.ArmApi`: a threaded server on 127.0.0.1.

Each connection gets a thread (TLS handshake included, so a slow client never stalls
the accept loop); HTTP/1.1 keep-alive, as the SDK's connection pool expects.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from .arm_api import ArmApi
from .tls import HttpsServer

log = logging.getLogger(__name__)
IDLE_TIMEOUT = 120.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azlin-lifecycle-simulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True  # else headers and body meet a 40 ms delayed-ACK stall
    server: ArmHttpsServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            response = self.server.api.handle(self.command, self.path, headers, body)
        except Exception:
            log.exception("simulator: %s %s failed", self.command, self.path)
            from .response import Response

            response = Response.error(500, "InternalServerError", "simulator error")
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator arm: " + format, *args)


class ArmHttpsServer(HttpsServer):
    request_queue_size = 512

    def __init__(self, api: ArmApi, context: ssl.SSLContext) -> None:
        self.api = api
        self.context = context
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        api.base_url = f"https://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[Any, Any]:
        tls, addr = super().get_request()
        with self._conns_lock:
            self._conns.add(tls)
        return tls, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sim-arm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
