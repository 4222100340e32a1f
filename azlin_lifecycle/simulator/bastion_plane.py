"""The stand-in Bastion's data plane: a TLS server on 127.0.0.1 that answers the token
exchange and its DELETE (through :class:`~.bastion.SimBastion`, which keeps the sessions and
the faults) and turns a WebSocket upgrade into a tunnel piped to the VM's real SSH server.

Frames are read and written with websocket-client's own frame code (no framing of ours);
TLS is the client's :class:`~azlin_lifecycle.adapters.bastion.tlschannel.TlsChannel`, since
a tunnel is read and written by two threads at once. Nothing here logs a token or a path
that carries one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..adapters.bastion.tlschannel import TlsChannel
from .bastion import (
    DROP_AFTER_BYTES,
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    WS_GUID,
    BastionMode,
    SimBastion,
    _Session,
)

log = logging.getLogger(__name__)


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class _Tunnel:
    """One WebSocket piped to a VM's SSH server (this thread: client -> VM; a second one:
    VM -> client)."""

    def __init__(self, bastion: SimBastion, session: _Session, client: TlsChannel,
                 read: Callable[[int], bytes], vm: socket.socket | None) -> None:
        self.bastion = bastion
        self.session = session
        self.client = client
        self.read = read  # the client's bytes, through the HTTP handler's buffer
        self.vm = vm
        self._send_lock = threading.Lock()
        self._done = threading.Event()
        self.drop_after = DROP_AFTER_BYTES if bastion.mode is BastionMode.DROP else None

    def run(self) -> None:
        from websocket import ABNF

        self.bastion._track(self, True)
        try:
            if self.vm is None:  # the VM refused: its end is closed
                self.close_normally()
                return
            threading.Thread(target=self._from_vm, name="sim-bastion-pipe", daemon=True).start()
            self._from_client(ABNF)
        finally:
            self.bastion._track(self, False)
            self._finish()

    def _from_client(self, abnf: Any) -> None:
        from websocket import WebSocketException
        from websocket._abnf import frame_buffer

        def recv(size: int) -> bytes:
            data = self.read(size)
            if not data:
                raise ConnectionResetError("client closed")
            return data

        frames = frame_buffer(recv, True)
        try:
            while not self._done.is_set():
                frame = frames.recv_frame()
                data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                if frame.opcode in (abnf.OPCODE_BINARY, abnf.OPCODE_TEXT, abnf.OPCODE_CONT):
                    assert self.vm is not None
                    self.vm.sendall(data)
                elif frame.opcode == abnf.OPCODE_PING:
                    self._send(abnf.OPCODE_PONG, data)
                elif frame.opcode == abnf.OPCODE_CLOSE:
                    self._send(abnf.OPCODE_CLOSE, data[:2] or (1000).to_bytes(2, "big"))
                    return
        except (OSError, WebSocketException, ValueError):
            return

    def _from_vm(self) -> None:
        from websocket import ABNF

        sent = 0
        assert self.vm is not None
        try:
            while not self._done.is_set():
                data = self.vm.recv(65536)
                if not data:
                    self.close_normally()  # the VM closed its end
                    return
                if self.drop_after is not None and sent + len(data) > self.drop_after:
                    self.cut()
                    return
                self._send(ABNF.OPCODE_BINARY, data)
                sent += len(data)
        except OSError:
            self.cut()

    def _send(self, opcode: int, data: bytes) -> None:
        from websocket import ABNF

        frame = ABNF(1, 0, 0, 0, opcode, 0, data).format()  # servers send unmasked
        with self._send_lock:
            self.client.sendall(frame)

    def close_normally(self) -> None:
        """Close frame 1000, then the connection: the VM's end is closed."""
        with contextlib.suppress(OSError):
            from websocket import ABNF

            self._send(ABNF.OPCODE_CLOSE, (1000).to_bytes(2, "big"))
        self._finish()

    def cut(self) -> None:
        """Drop the tunnel without a close frame, as a failing Bastion would."""
        self._finish()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        for sock in (self.client, self.vm):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azlin-lifecycle-simulator-bastion"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    bastion: SimBastion  # set on the class made per data plane

    def setup(self) -> None:
        """The connection is a TlsChannel (a tunnel is read and written by two threads)."""
        self.connection = self.request
        self.connection.settimeout(self.timeout)
        self.rfile, self.wfile = self.connection.makefile()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path != "/api/tokens":
            return self._json(404, {"message": "Not found."})
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.headers.get("Authorization") or content_type != "application/x-www-form-urlencoded":
            # What the real service answers to an Authorization header or a JSON body.
            self.bastion._refused()
            return self._json(500, {"message": "An error occurred while processing the "
                                                "request."})
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        status, answer = self.bastion.exchange(form, self.headers.get("X-Node-Id"))
        self._json(status, answer)

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/api/tokens/"):
            return self._json(404, {"message": "Not found."})
        status = self.bastion.delete(unquote(path[len("/api/tokens/"):]),
                                     self.headers.get("X-Node-Id"))
        self._json(status, {} if status == 200 else {"message": "Session not found."})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if self.bastion.mode is BastionMode.REFUSE:
            return self._json(503, {"message": "The service is unavailable."})
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade", "").lower() != "websocket" or not key):
            return self._json(400, {"message": "A WebSocket upgrade was expected."})
        session = self.bastion.session_for_websocket(parts.path, parts.query)
        if session is None:
            return self._json(404, {"message": "Not found."})
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", websocket_accept(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.connection.settimeout(None)  # a kept tunnel may idle between checks
        port = self.bastion.vm_port(session.vm)
        valid = port is not None and session.port in (22, port)
        vm: socket.socket | None = None
        if valid and port is not None:
            try:
                vm = socket.create_connection(("127.0.0.1", port), timeout=5)
                vm.settimeout(None)
                vm.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                vm = None
        _Tunnel(self.bastion, session, self.connection, self.rfile.read1, vm).run()

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry tokens: never logged


class DataPlane:
    """The data plane's listener on 127.0.0.1: a thread per connection."""

    def __init__(self, bastion: SimBastion, context: ssl.SSLContext) -> None:
        self.bastion = bastion
        self.context = context
        self.handler = type("BastionHandler", (_Handler,), {"bastion": bastion})
        self._sock = _bound(0)
        self.port: int = self._sock.getsockname()[1]
        self._sock.listen(256)
        self._listening = True
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="sim-bastion",
                                        daemon=True)
        self._thread.start()

    def set_listening(self, on: bool) -> None:
        """Down: connections are refused (the port stays ours); up: served again."""
        with self._lock:
            if on == self._listening:
                return
            with contextlib.suppress(OSError):  # wakes the accept loop's wait on it
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()  # a listening socket cannot stop listening: bind anew
            self._sock = _bound(self.port, wait=2.0)
            if on:
                self._sock.listen(256)
            self._listening = on

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                sock, listening = self._sock, self._listening
            if not listening:
                self._stopping.wait(0.05)
                continue
            sock.settimeout(0.2)
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), name="sim-bastion-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            if self.bastion.mode is BastionMode.HANG:
                conn.settimeout(0.2)
                while not self._stopping.is_set():  # says nothing, not even TLS
                    with contextlib.suppress(TimeoutError):
                        if not conn.recv(4096):
                            return
                return
            channel = TlsChannel(conn, self.context, server_side=True)
            with contextlib.suppress(OSError):  # no TCP_NODELAY: not fatal
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel.handshake(time.monotonic() + HANDSHAKE_TIMEOUT)
            self.handler(channel, ("127.0.0.1", 0), self)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            conns = list(self._conns)
            self._sock.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def _bound(port: int, wait: float = 0.0) -> socket.socket:
    """A socket bound to 127.0.0.1:``port``, retried for ``wait`` s while the port's
    previous listener is still being let go of (a thread's poll on it)."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
