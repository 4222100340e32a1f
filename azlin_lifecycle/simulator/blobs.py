"""The stand-in's Blob storage for boot diagnostics: HTTPS on 127.0.0.1, its own port.

:meth:`BlobServer.issue` hands out SAS URLs as Azure does
(``.../bootdiagnostics-<id>/<vm>.<vmId>.serialconsole.log?sv=...&se=...&sr=b&sp=r&sig=...``);
a ``GET`` or ``HEAD`` needs a ``sig`` it issued for that blob, unexpired (else 403
``AuthenticationFailed``, as Blob storage answers). ``Range: bytes=A-B`` (or ``x-ms-range``)
answers 206 with ``Content-Range``. A VM whose boot diagnostics are set to ``hang``
accepts the connection and never answers, until the server stops. ``requests`` records
each request without its query (so tests can see a Range was asked, and that no SAS token
leaked anywhere); ``issued`` holds the tokens handed out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .tls import HttpsServer

Content = Callable[[str, str], "bytes | None"]  # (vm, "serial" | "screenshot") -> the blob
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 60
    server: BlobServer

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        parts = urlsplit(self.path)
        sig = parse_qs(parts.query).get("sig", [""])[0]
        wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
        self.server.requests.append({"method": self.command, "path": parts.path,
                                     "range": wanted, "at": time.time()})
        grant = self.server.issued.get(sig)
        if grant is None or grant[2] != parts.path or grant[3] < time.time():
            return self._error(403, "AuthenticationFailed", "Server failed to authenticate "
                               "the request. Make sure the value of Authorization header is "
                               "formed correctly including the signature.", body)
        vm, kind = grant[0], grant[1]
        if self.server.hangs(vm):
            self.server.stopping.wait(600)  # never answers while the server runs
            self.close_connection = True
            return None
        data = self.server.content(vm, kind)
        if data is None:
            return self._error(404, "BlobNotFound", "The specified blob does not exist.", body)
        status, start, end = 200, 0, len(data) - 1
        if wanted:
            match = _RANGE.match(wanted.strip())
            first = match.group(1) if match else ""
            if match is None or not first or int(first) >= len(data):
                return self._error(416, "InvalidRange", "The range specified is invalid for "
                                   "the current size of the resource.", body)
            start = int(first)
            end = min(int(match.group(2)), end) if match.group(2) else end
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if kind == "serial" else "image/bmp")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("x-ms-blob-type", "BlockBlob")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            with contextlib.suppress(OSError):
                self.wfile.write(data[start:end + 1])
        return None

    def _error(self, status: int, code: str, message: str, body: bool) -> None:
        payload = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                   f"<Message>{message}</Message></Error>").encode()
        self.send_response(status)
        self.send_header("x-ms-error-code", code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line carries the SAS token: never logged


class BlobServer(HttpsServer):

    def __init__(self, context: ssl.SSLContext, content: Content,
                 hangs: Callable[[str], bool]) -> None:
        self.context = context
        self.content = content
        self.hangs = hangs
        self.stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.issued: dict[str, tuple[str, str, str, float]] = {}  # sig -> vm, kind, path, until
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self._thread: threading.Thread | None = None

    def issue(self, vm: str, vm_id: str, kind: str, minutes: int) -> str:
        """A SAS URL of VM ``vm``'s ``kind`` blob ("serial" or "screenshot")."""
        sig = secrets.token_urlsafe(24)
        until = time.time() + minutes * 60
        name = "serialconsole.log" if kind == "serial" else "screenshot.bmp"
        path = f"/bootdiagnostics-{vm_id[:8]}/{quote(vm, safe='')}.{vm_id}.{name}"
        self.issued[sig] = (vm, kind, path, until)
        expiry = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"https://127.0.0.1:{self.port}{path}?sv=2021-08-06&se={quote(expiry)}&sr=b"
                f"&sp=r&sig={quote(sig, safe='')}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sim-blobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
