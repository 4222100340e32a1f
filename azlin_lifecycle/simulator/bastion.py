"""A stand-in Azure Bastion: its ARM resource and its data plane, on 127.0.0.1 over TLS.

The ARM side (``Microsoft.Network/bastionHosts``, listed and read through
:mod:`.arm_api`) shows one Bastion in the fleet's resource group, ``azlin-bastion-<region>``,
Standard SKU with native client support, its ``dnsName`` being this data plane
(``127.0.0.1:PORT``: real ones are host names on 443).

The data plane speaks the protocol the Azure CLI's ``bastion`` extension speaks:

* ``POST /api/tokens`` (form-encoded; 500 to a JSON body or an ``Authorization`` header, as
  the real service answers): ``aztoken`` must be a token the fleet's stand-in ``az`` issued
  (its tenant, an ARM audience, not expired), ``resourceId`` a VM of the fleet,
  ``protocol=tcptunnel``; ``token`` (+ ``X-Node-Id``) re-exchanges a session issued for the
  same VM. Answer: ``authToken``, ``nodeId``, ``websocketToken``.
* ``GET /webtunnelv2/{websocketToken}?X-Node-Id={nodeId}`` (Standard, Premium) or
  ``/omni/webtunnel/{websocketToken}`` (Developer): a WebSocket (each token once) whose
  binary frames are piped to the VM's real SSH server and back. The VM closing its end
  closes the WebSocket with code 1000; a VM that refuses closes it at once, likewise.
* ``DELETE /api/tokens/{authToken}`` with ``X-Node-Id``: the session ends (404 if unknown).

Frames are read and written with websocket-client's own frame code (no framing of ours);
TLS is the client's :class:`~azlin_lifecycle.adapters.bastion.tlschannel.TlsChannel`, since a
tunnel is read and written by two threads at once.
Faults (:class:`BastionMode`) come through ``azlin lifecycle simulate bastion MODE``. Nothing
here logs a token or a path that carries one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..adapters.bastion.tlschannel import TlsChannel
from .azcli import TENANT_ID
from .state import FleetState

log = logging.getLogger(__name__)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's
DROP_AFTER_BYTES = 1500  # in the drop mode, a new tunnel is cut after this much from the VM
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
ELSEWHERE = "westus2"


class BastionMode(StrEnum):
    """How the stand-in Bastion behaves."""

    UP = "up"
    TUNNELING_DISABLED = "tunneling_disabled"  # enableTunneling false in ARM
    BASIC = "basic"  # sku Basic in ARM
    DEVELOPER = "developer"  # sku Developer: tunnels on /omni/webtunnel
    MISSING = "missing"  # no Bastion in the resource group
    ELSEWHERE = "elsewhere"  # the resource group's Bastion is in another region
    EXCHANGE_401 = "exchange_401"
    EXCHANGE_403 = "exchange_403"
    EXCHANGE_500 = "exchange_500"
    DROP = "drop"  # open tunnels are cut now, new ones mid-session (no close frame)
    REFUSE = "refuse"  # the WebSocket upgrade is answered 503
    DOWN = "down"  # the data plane refuses connections
    HANG = "hang"  # the data plane accepts TCP and then says nothing (not even TLS)


@dataclass
class _Session:
    vm: str
    port: int
    auth_token: str
    node_id: str
    websocket_token: str
    used: bool = False
    ended: bool = False


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class SimBastion:
    """The stand-in Bastion of one fleet. ``audiences``: the ARM audiences an ``aztoken``
    may have; ``vm_port(name)``: the SSH port of a VM of the fleet (None if there is none)."""

    def __init__(self, state: FleetState, *, subscription_id: str, location: str,
                 context: ssl.SSLContext, audiences: tuple[str, ...],
                 vm_port: Callable[[str], int | None]) -> None:
        self.state = state
        self.subscription_id = subscription_id
        self.location = location
        self.audiences = tuple(a.rstrip("/") for a in audiences)
        self.vm_port = vm_port
        self.mode = BastionMode.UP
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}  # authToken -> session
        self._tunnels: set[_Tunnel] = set()
        self.secrets_seen: list[str] = []  # every token issued or received (tests look for leaks)
        self.counts: dict[str, int] = {"exchanges": 0, "reexchanges": 0, "deletes": 0,
                                       "tunnels": 0, "refused": 0}
        self.plane = DataPlane(self, context)

    # ------------------------------------------------------------------ ARM's view
    @property
    def dns_name(self) -> str:
        return f"127.0.0.1:{self.plane.port}"

    @property
    def region(self) -> str:
        return ELSEWHERE if self.mode is BastionMode.ELSEWHERE else self.location

    @property
    def name(self) -> str:
        return f"azlin-bastion-{self.region}"

    def exists(self) -> bool:
        return self.mode is not BastionMode.MISSING

    def sku(self) -> str:
        return {BastionMode.BASIC: "Basic", BastionMode.DEVELOPER: "Developer"}.get(
            self.mode, "Standard")

    def tunneling(self) -> bool:
        return self.mode is not BastionMode.TUNNELING_DISABLED and self.sku() == "Standard"

    def describe(self) -> dict[str, Any]:
        """What ``simulate status`` shows (no secrets)."""
        with self._lock:
            return {"name": self.name, "mode": self.mode.value, "dns_name": self.dns_name,
                    "sku": self.sku(), "location": self.region,
                    "open_tunnels": len(self._tunnels), **self.counts}

    # ------------------------------------------------------------------ faults
    def set_mode(self, mode: BastionMode) -> None:
        with self._lock:
            self.mode = BastionMode(mode)
            tunnels = list(self._tunnels) if self.mode is BastionMode.DROP else []
        self.plane.set_listening(self.mode is not BastionMode.DOWN)
        for tunnel in tunnels:
            tunnel.cut()

    # ------------------------------------------------------------------ the data plane's API
    def exchange(self, form: dict[str, str], node_header: str | None) -> tuple[int, Any]:
        """POST /api/tokens, checked as the real service would; (status, JSON)."""
        self._saw(form.get("aztoken"), form.get("token"), node_header)
        mode = self.mode
        if mode is BastionMode.EXCHANGE_401:
            return 401, {"message": "The access token is invalid or has expired."}
        if mode is BastionMode.EXCHANGE_403:
            return 403, {"message": "The client does not have authorization to access the "
                                    "target resource."}
        if mode is BastionMode.EXCHANGE_500:
            return 500, {"message": "An error occurred while processing the request."}
        if form.get("protocol") != "tcptunnel":
            return 400, {"message": "Unsupported protocol."}
        if not self._valid_aztoken(form.get("aztoken", "")):
            return 401, {"message": "The access token is invalid or has expired."}
        vm = self._vm_of(form.get("resourceId", ""))
        if vm is None:
            return 404, {"message": "The target resource was not found."}
        try:
            port = int(form.get("workloadHostPort", "22"))
        except ValueError:
            return 400, {"message": "Invalid workloadHostPort."}
        with self._lock:
            previous = form.get("token")
            if previous:
                old = self._sessions.get(previous)
                if old is None or old.ended or old.vm != vm or old.node_id != node_header:
                    return 401, {"message": "The session token is invalid."}
                old.ended = True
                self.counts["reexchanges"] += 1
            session = _Session(vm, port, secrets.token_urlsafe(32), uuid.uuid4().hex,
                               secrets.token_urlsafe(48))
            self._sessions[session.auth_token] = session
            self.counts["exchanges"] += 1
            self.secrets_seen.extend((session.auth_token, session.node_id,
                                      session.websocket_token))
        return 200, {"authToken": session.auth_token, "nodeId": session.node_id,
                     "websocketToken": session.websocket_token}

    def delete(self, auth_token: str, node_header: str | None) -> int:
        with self._lock:
            session = self._sessions.get(auth_token)
            if session is None or session.ended or session.node_id != node_header:
                return 404
            session.ended = True
            self.counts["deletes"] += 1
            tunnels = [t for t in self._tunnels if t.session is session]
        for tunnel in tunnels:
            tunnel.close_normally()
        return 200

    def session_for_websocket(self, path: str, query: str) -> _Session | None:
        """The unused session a WebSocket path names, on the path the SKU serves."""
        developer = self.sku() == "Developer"
        prefix = "/omni/webtunnel/" if developer else "/webtunnelv2/"
        if not path.startswith(prefix):
            return None
        token = unquote(path[len(prefix):])
        node = parse_qs(query).get("X-Node-Id", [None])[0]
        with self._lock:
            for session in self._sessions.values():
                if (session.websocket_token == token and not session.used and not session.ended
                        and (developer or node == session.node_id)):
                    session.used = True
                    return session
        return None

    # ------------------------------------------------------------------ helpers
    def _saw(self, *values: str | None) -> None:
        with self._lock:
            self.secrets_seen.extend(v for v in values if v)

    def _valid_aztoken(self, token: str) -> bool:
        """A JWT as the fleet's stand-in ``az`` issues them (see :mod:`.azcli`)."""
        parts = token.split(".")
        if len(parts) != 3 or parts[2] != "simulator":
            return False
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return False
        if not isinstance(claims, dict):
            return False
        return (claims.get("tid") == TENANT_ID
                and str(claims.get("aud", "")).rstrip("/") in self.audiences
                and isinstance(claims.get("exp"), int) and claims["exp"] > time.time())

    def _vm_of(self, resource_id: str) -> str | None:
        parts = resource_id.strip("/").split("/")
        if (len(parts) != 8 or parts[0].lower() != "subscriptions"
                or parts[1].lower() != self.subscription_id.lower()
                or parts[3].lower() != self.state.resource_group.lower()
                or "/".join(parts[4:7]).lower() != "providers/microsoft.compute/virtualmachines"):
            return None
        vm = self.state.find(parts[7])
        return None if vm is None else vm.name

    def _track(self, tunnel: _Tunnel, add: bool) -> None:
        with self._lock:
            if add:
                self._tunnels.add(tunnel)
                self.counts["tunnels"] += 1
            else:
                self._tunnels.discard(tunnel)

    def _refused(self) -> None:
        with self._lock:
            self.counts["refused"] += 1

    def stop(self) -> None:
        with self._lock:
            tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.cut()
        self.plane.stop()


# --------------------------------------------------------------------------- the tunnel
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
