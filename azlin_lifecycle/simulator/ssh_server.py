"""Real SSH endpoints for simulated VMs, all served from one process.

One accept thread watches every VM's listening socket (epoll), so an idle VM costs a
socket, not a thread. An accepted connection becomes a paramiko server Transport (one
thread per live connection, as paramiko works); HUNG connections are just held open.
A VM that is down keeps its port bound but not listening, so clients get "connection
refused" and the port stays the VM's. A VM with a public IP (see :mod:`.network`) is
served on that address too, same port (``set_alias``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import shlex
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko

from ..metrics_wire import METRICS_COMMAND, render_metrics
from ..models import VMMetrics
from .keys import HostKeys
from .scheduler import Scheduler
from .state import SshMode

log = logging.getLogger(__name__)
TRANSPORT_LOG = "azlin_lifecycle.simulator.ssh.transport"
CLOSE_AFTER_REPLY = 1.0  # seconds between the exit status and the server closing the channel
logging.getLogger(TRANSPORT_LOG).setLevel(logging.CRITICAL + 1)


class _Transport(paramiko.Transport):  # type: ignore[misc]
    # paramiko polls its socket to notice shutdown; 10 wake-ups a second per idle
    # connection is too many for 1,000 VMs. Drops do not wait for this (see _drop).
    _active_check_timeout = 1.0


@dataclass
class Endpoint:
    name: str
    sock: socket.socket
    port: int
    metrics: Callable[[], VMMetrics]
    mode: SshMode = SshMode.REFUSED
    slow_seconds: float = 5.0
    listening: bool = False
    transports: set[Any] = field(default_factory=set)
    hung: set[socket.socket] = field(default_factory=set)
    alias: socket.socket | None = None  # the same port on the VM's public IP, if it has one


class _VmServer(paramiko.ServerInterface):  # type: ignore[misc]
    def __init__(self, hub: SshHub, ep: Endpoint, mode: SshMode, slow: float) -> None:
        self.hub, self.ep, self.mode, self.slow = hub, ep, mode, slow

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: Any) -> int:
        if self.mode is SshMode.AUTH_FAIL or key.asbytes() != self.hub.client_blob:
            return int(paramiko.AUTH_FAILED)
        return int(paramiko.AUTH_SUCCESSFUL)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_env_request(self, channel: Any, name: bytes, value: bytes) -> bool:
        return True

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        text = command.decode("utf-8", "replace")
        runs = 0.0
        if text.strip() == METRICS_COMMAND:
            out, err, status = render_metrics(self.ep.metrics()), "", 0
            runs = self.hub.command_seconds
        else:
            words = shlex.split(text, posix=True) if text.strip() else [""]
            out, err, status = "", f"bash: {words[0]}: command not found\n", 127
        delay = runs + (self.slow if self.mode is SshMode.SLOW else 0.0)
        # The reply goes out from the scheduler thread, after paramiko has confirmed
        # the exec request; the channel is closed a moment later (see _reply).
        self.hub.scheduler.call_later(delay, lambda: self.hub.reply(channel, out, err, status))
        return True


class SshHub:
    def __init__(self, host_keys: HostKeys, client_blob: bytes, scheduler: Scheduler,
                 command_seconds: float = 0.0) -> None:
        self.host_keys = host_keys
        # How long the metrics command takes on the VM before it answers (a real VM runs
        # its `sleep CPU_SAMPLE_SECONDS`); 0 answers at once.
        self.command_seconds = command_seconds
        self.client_blob = client_blob
        self.scheduler = scheduler
        self._endpoints: dict[str, Endpoint] = {}
        self._selector = selectors.DefaultSelector()
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue())
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="sim-ssh-accept", daemon=True)
        self._stopping = False

    # ------------------------------------------------------------------ public
    def add(self, name: str, metrics: Callable[[], VMMetrics]) -> int:
        """Reserve a port for VM ``name`` (not listening yet); return the port."""
        sock = _bound_socket(0)
        ep = Endpoint(name=name, sock=sock, port=sock.getsockname()[1], metrics=metrics)
        self._call(lambda: self._endpoints.__setitem__(name, ep))
        return ep.port

    def apply(self, name: str, mode: SshMode, slow_seconds: float) -> None:
        """Make VM ``name`` behave as ``mode`` now; existing connections are dropped
        whenever the mode changes. Returns once the change is in effect."""
        self._call(lambda: self._apply(name, mode, slow_seconds))

    def set_alias(self, name: str, host: str | None) -> None:
        """Serve VM ``name`` also on ``host`` (its public IP), same port; None: stop that."""
        self._call(lambda: self._set_alias(self._endpoints[name], host))

    def port(self, name: str) -> int:
        return self._endpoints[name].port

    def connection_count(self) -> int:
        return sum(len(ep.transports) + len(ep.hung) for ep in list(self._endpoints.values()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._shutdown)
            self._thread.join(timeout=10)
        else:
            self._shutdown()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def reply(self, channel: Any, out: str, err: str, status: int) -> None:
        if channel.closed:
            return
        try:
            if out:
                channel.sendall(out.encode("utf-8"))
            if err:
                channel.sendall_stderr(err.encode("utf-8"))
            channel.send_exit_status(status)
            channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            return
        self.scheduler.call_later(CLOSE_AFTER_REPLY, lambda: _close_quietly(channel))

    # ------------------------------------------------------------------ accept thread
    def _call(self, func: Callable[[], None]) -> None:
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            func()
            return
        done = threading.Event()
        self._commands.put((func, done))
        self._wake_w.send(b"x")
        if not done.wait(timeout=10):
            raise RuntimeError("the simulator's SSH thread did not answer")

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select():
                if key.data is None:
                    self._drain_commands()
                else:
                    self._accept(key.data, key.fileobj)  # type: ignore[arg-type]

    def _drain_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        while True:
            try:
                func, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                func()
            except Exception:
                log.exception("simulator ssh: command failed")
            finally:
                done.set()

    def _apply(self, name: str, mode: SshMode, slow: float) -> None:
        ep = self._endpoints[name]
        changed = (mode, slow) != (ep.mode, ep.slow_seconds)
        ep.mode, ep.slow_seconds = mode, slow
        if changed:
            self._drop(ep)
        want = mode is not SshMode.REFUSED
        if want and not ep.listening:
            self._listen(ep, ep.sock)
            if ep.alias is not None:
                self._listen(ep, ep.alias)
            ep.listening = True
        elif not want and ep.listening:
            ep.sock = self._rebind(ep.sock)
            if ep.alias is not None:
                ep.alias = self._rebind(ep.alias)
            ep.listening = False

    def _listen(self, ep: Endpoint, sock: socket.socket) -> None:
        sock.listen(64)
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, ep)

    def _rebind(self, sock: socket.socket) -> socket.socket:
        """A listening socket cannot stop listening: close it, bind a fresh one."""
        host, port = sock.getsockname()[:2]
        self._selector.unregister(sock)
        sock.close()
        return _bound_socket(port, host)

    def _set_alias(self, ep: Endpoint, host: str | None) -> None:
        if ep.alias is not None:
            if ep.listening:
                self._selector.unregister(ep.alias)
            ep.alias.close()
            ep.alias = None
        if host is None:
            return
        ep.alias = _bound_socket(ep.port, host)
        if ep.listening:
            self._listen(ep, ep.alias)

    def _accept(self, ep: Endpoint, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.debug("simulator ssh: accept on %s failed", ep.name, exc_info=True)
                return
            conn.setblocking(True)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.mode is SshMode.HUNG:
                ep.hung.add(conn)
                continue
            self._serve(ep, conn)

    def _serve(self, ep: Endpoint, conn: socket.socket) -> None:
        ep.transports = {t for t in ep.transports if t.is_active()}
        try:
            transport = _Transport(conn)
            transport.set_log_channel(TRANSPORT_LOG)
            transport.add_server_key(
                self.host_keys.key(ep.name, changed=ep.mode is SshMode.HOST_KEY_CHANGED))
            transport.start_server(event=threading.Event(),
                                   server=_VmServer(self, ep, ep.mode, ep.slow_seconds))
        except Exception:
            log.debug("simulator ssh: could not serve %s", ep.name, exc_info=True)
            conn.close()
            return
        ep.transports.add(transport)

    def _drop(self, ep: Endpoint) -> None:
        """Cut every connection to ``ep`` now (the client sees the connection closed)."""
        for transport in ep.transports:
            with contextlib.suppress(OSError):
                transport.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                transport.close()
        ep.transports = set()
        for conn in ep.hung:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        ep.hung = set()

    def _shutdown(self) -> None:
        self._stopping = True
        for ep in self._endpoints.values():
            self._drop(ep)
            for sock in (ep.sock, ep.alias):
                if sock is None:
                    continue
                if ep.listening:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)
                sock.close()


def _close_quietly(channel: Any) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        channel.close()


def _bound_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
