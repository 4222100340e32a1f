"""SSH probes of VMs over paramiko, bounded by one deadline, with host-key pinning.

:class:`ParamikoSshProber` implements :class:`azlin_lifecycle.ports.SshProber` on
paramiko's ``Transport`` directly (not fabric, not ``SSHClient``: see the README's
Performance section) because each step needs its own share of one deadline, and nothing
may read ``~/.ssh/config``, an agent or the user's ``~/.ssh/known_hosts``.

One probe: TCP connect, SSH banner and key exchange, host-key check, public-key auth
(``target.ssh_key``; no agent, no password, no other keys), then ``METRICS_COMMAND`` once.
Every step gets what is left of ``timeout``; a :class:`~.deadline.DeadlineWatchdog`
closes the connection at the deadline as a last resort.

A target with ``bastion`` set is reached through a tunnel from the ``tunnels`` opener
(:class:`~azlin_lifecycle.ports.TunnelOpener`; the real one is
:class:`azlin_lifecycle.adapters.bastion.tunnel.BastionTunnels`) instead of a TCP connect:
opening it is part of the connect step, within the same deadline, and the tunnel lives as
long as the SSH connection on it (kept for reuse like any other). When the tunnel itself
failed (Bastion down, refused, dropped), the probe's fault is the tunnel's, not the VM's;
its host key is recorded for the VM's resource id.

Connections are reused: one per (host, port, user, key), guarded by a per-target lock. A
cached connection that turns out to be broken is dropped and the probe retried once on a
fresh one while time remains. Any failed probe drops its connection; so does ``forget``.

Host keys: :mod:`.known_hosts` (accept-new, then pinned). Every failure is an
:class:`~azlin_lifecycle.models.SshFault` with a reason in words, as :mod:`.faults`
lists. A command that exits non-zero still means reachable, with ``metrics`` None.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...metrics_wire import METRICS_COMMAND, parse_metrics
from ...models import SshFault, SshProbeResult, VMTarget
from ...paths import expand, host_key_name, known_hosts_path
from ...ports import TunnelFailure, TunnelOpener, TunnelSocket
from .deadline import DeadlineWatchdog, seconds_left
from .faults import GENERIC_PREFIX, Phase, ProbeFailure, classify_failure
from .known_hosts import KnownHosts
from .transport import client_transport_class, prefer_aead_ciphers, prefer_key_types

if TYPE_CHECKING:
    import paramiko

DEFAULT_MAX_OPEN = 512  # connections kept open for reuse; see ParamikoSshProber._keep_bounded

_MAX_OUTPUT = 1 << 20
_WATCHDOG_GRACE = 0.05


@dataclass
class _Slot:
    """The cached connection of one target and the lock that serialises its probes."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    transport: paramiko.Transport | None = None


@dataclass
class _Attempt:
    """The sockets of one connection attempt, so the watchdog can abort them."""

    sock: socket.socket | TunnelSocket | None = None
    transport: paramiko.Transport | None = None
    channel: paramiko.Channel | None = None
    aborted: bool = False

    def abort(self) -> None:
        self.aborted = True
        if self.channel is not None:
            self.channel.close()
        if self.transport is not None:
            self.transport.close()
        elif self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


_TargetKey = tuple[str, int, str, str]


class ParamikoSshProber:
    """:class:`~azlin_lifecycle.ports.SshProber` over paramiko's ``Transport``.

    ``known_hosts`` defaults to ``paths.known_hosts_path()`` (read when first needed);
    ``connect_timeout`` caps the TCP connect (or the tunnel's opening) and the handshake of
    a fresh connection (the probe's own ``timeout`` caps the whole probe); ``tunnels``
    opens the tunnels of targets reached through a Bastion (None: such targets fail).
    """

    def __init__(self, known_hosts: Path | None = None, connect_timeout: float = 10.0,
                 max_open: int = DEFAULT_MAX_OPEN, tunnels: TunnelOpener | None = None) -> None:
        self.tunnels = tunnels
        self._known_hosts_path = known_hosts
        self._known_hosts: KnownHosts | None = None
        self.connect_timeout = connect_timeout
        self.max_open = max_open
        self._lock = threading.Lock()
        self._slots: dict[_TargetKey, _Slot] = {}
        self._open: set[_TargetKey] = set()  # targets whose connection is kept open
        self._keys: dict[str, tuple[tuple[int, int], paramiko.PKey]] = {}
        self._watchdog = DeadlineWatchdog()
        self.connections_opened = 0  # fresh connections made; for tests and benchmarks

    # ----------------------------------------------------------------- public API
    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult:
        start = time.monotonic()
        deadline = start + timeout
        if not target.ssh_resolved:
            return ProbeFailure(SshFault.OTHER, GENERIC_PREFIX + "no SSH address, user or key "
                                "resolved for this VM").result(start)
        slot = self._slot(target)
        if not slot.lock.acquire(timeout=max(0.0, timeout)):
            # The earlier probe is stuck past its own deadline: as good as hung.
            return ProbeFailure(SshFault.HUNG, SshFault.HUNG.value + ": an earlier probe of "
                                "this VM is still running").result(start)
        try:
            result = self._probe_locked(target, slot, start, deadline)
            self._keep_bounded(_key(target), slot)
        finally:
            slot.lock.release()
        return result

    def _keep_bounded(self, key: _TargetKey, slot: _Slot) -> None:
        """Keep at most ``max_open`` connections open; beyond that, close this one.

        Each kept connection costs a thread and ~72 KB; a fresh one ~6 ms of CPU. Sweeps
        visit the VMs in turn, so evicting an older connection for a newer one (LRU)
        would make every check reconnect; a fixed set of kept connections does not.
        """
        with self._lock:
            if slot.transport is None:
                self._open.discard(key)
                return
            if key in self._open:
                return
            if len(self._open) < self.max_open:
                self._open.add(key)
                return
        _drop(slot)

    def forget(self, target: VMTarget) -> None:
        with self._lock:
            slot = self._slots.get(_key(target))
            self._open.discard(_key(target))
        if slot is None:
            return
        with slot.lock:
            _drop(slot)

    def close(self) -> None:
        """Drop every idle connection now, never waiting for a probe that is running:
        that probe keeps its own deadline (the watchdog stays on for it)."""
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
            self._open.clear()
        busy = False
        for slot in slots:
            if slot.lock.acquire(blocking=False):
                try:
                    _drop(slot)
                finally:
                    slot.lock.release()
            else:
                busy = True
        if not busy:
            self._watchdog.stop()
        if self.tunnels is not None:
            self.tunnels.close()

    def cached_transport(self, target: VMTarget) -> paramiko.Transport | None:
        """The open connection kept for ``target`` (None when there is none)."""
        with self._lock:
            slot = self._slots.get(_key(target))
        return None if slot is None else slot.transport

    # ----------------------------------------------------------------- internals
    def _slot(self, target: VMTarget) -> _Slot:
        key = _key(target)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            return slot

    def _probe_locked(
        self, target: VMTarget, slot: _Slot, start: float, deadline: float
    ) -> SshProbeResult:
        reused = slot.transport
        if reused is not None and not reused.is_active():
            _drop(slot)
            reused = None
        if reused is not None:
            attempt = _Attempt(transport=reused)
            try:
                output, status = self._run(attempt, deadline, Phase.SESSION)
                return _result(output, status, start)
            except ProbeFailure as failure:
                _drop(slot)
                if not failure.lost or time.monotonic() >= deadline:
                    return failure.result(start)
        attempt = _Attempt()
        try:
            slot.transport = self._connect(target, attempt, deadline)
            output, status = self._run(attempt, deadline, Phase.SESSION)
            return _result(output, status, start)
        except ProbeFailure as failure:
            _drop(slot)
            if attempt.transport is not None:
                attempt.transport.close()
            return failure.result(start)

    def _connect(
        self, target: VMTarget, attempt: _Attempt, deadline: float
    ) -> paramiko.Transport:
        import paramiko

        token = self._watchdog.watch(deadline + _WATCHDOG_GRACE, attempt.abort)
        phase = Phase.CONNECT
        try:
            host, user, key_path = _endpoint(target)
            pkey = self._load_key(key_path)
            connect_deadline = min(deadline, time.monotonic() + self.connect_timeout)
            attempt.sock = self._socket(target, host, connect_deadline)
            with self._lock:
                self.connections_opened += 1
            phase = Phase.HANDSHAKE
            transport = attempt.transport = client_transport_class()(attempt.sock)
            name = host_key_name(target.bastion.host_key_name if target.bastion else host,
                                 target.ssh_port)
            known = self._hosts().known(name)
            prefer_key_types(transport, known)
            prefer_aead_ciphers(transport)
            transport.banner_timeout = seconds_left(connect_deadline)
            transport.start_client(timeout=seconds_left(connect_deadline))
            server_key = transport.get_remote_server_key()
            self._hosts().verify(name, server_key)
            phase = Phase.AUTH
            transport.auth_timeout = seconds_left(deadline)
            transport.auth_publickey(user, pkey)
            if not transport.is_authenticated():
                raise paramiko.AuthenticationException("partial authentication only")
            return transport
        except ProbeFailure:
            raise
        except TunnelFailure as exc:
            raise ProbeFailure(exc.fault, str(exc)) from None
        except Exception as exc:
            broken = _tunnel_failure(attempt.sock)
            if broken is not None:
                raise ProbeFailure(broken.fault, str(broken)) from None
            passed = attempt.aborted or time.monotonic() >= deadline
            raise ProbeFailure(*classify_failure(exc, phase, passed)) from exc
        finally:
            self._watchdog.cancel(token)

    def _socket(self, target: VMTarget, host: str,
                deadline: float) -> socket.socket | TunnelSocket:
        """A TCP connection to the target, or its tunnel when it is behind a Bastion."""
        if target.bastion is not None:
            if self.tunnels is None:
                raise ProbeFailure(SshFault.OTHER, GENERIC_PREFIX + "this VM is reached "
                                   "through a Bastion, and this prober opens no tunnels")
            return self.tunnels.open(target.bastion, target.ssh_port, deadline)
        sock = socket.create_connection((host, target.ssh_port), timeout=seconds_left(deadline))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _run(self, attempt: _Attempt, deadline: float, phase: Phase) -> tuple[bytes, int]:
        """Run METRICS_COMMAND on ``attempt.transport``: (stdout, exit status)."""
        assert attempt.transport is not None
        transport = attempt.transport
        token = self._watchdog.watch(deadline + _WATCHDOG_GRACE, attempt.abort)
        try:
            channel = attempt.channel = transport.open_session(timeout=seconds_left(deadline))
            phase = Phase.COMMAND
            try:
                channel.settimeout(seconds_left(deadline))
                channel.exec_command(METRICS_COMMAND)
                chunks: list[bytes] = []
                size = 0
                while size < _MAX_OUTPUT:
                    channel.settimeout(seconds_left(deadline))
                    data = channel.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                    size += len(data)
                if not channel.status_event.wait(seconds_left(deadline)):
                    raise TimeoutError("no exit status before the deadline")
                status = channel.recv_exit_status()
                if status == -1 and not transport.is_active():
                    raise EOFError("connection closed while the command ran")
                return b"".join(chunks), status
            finally:
                channel.close()
                attempt.channel = None
        except Exception as exc:
            broken = _tunnel_failure(transport.sock)
            if broken is not None:  # the tunnel failed, not the VM: a fresh one may do
                raise ProbeFailure(broken.fault, str(broken), lost=True) from None
            passed = attempt.aborted or time.monotonic() >= deadline
            fault, reason = classify_failure(exc, phase, passed)
            lost = not passed and not transport.is_active()
            if lost and fault is SshFault.OTHER:
                fault, reason = SshFault.CONNECTION_LOST, SshFault.CONNECTION_LOST.value
            raise ProbeFailure(fault, reason, lost=lost) from exc
        finally:
            self._watchdog.cancel(token)

    def _hosts(self) -> KnownHosts:
        with self._lock:
            if self._known_hosts is None:
                self._known_hosts = KnownHosts(self._known_hosts_path or known_hosts_path())
            return self._known_hosts

    def _load_key(self, path_text: str) -> paramiko.PKey:
        import paramiko

        path = expand(path_text)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            with self._lock:
                cached = self._keys.get(str(path))
            if cached is not None and cached[0] == stamp:
                return cached[1]
            pkey = paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException as exc:
            raise ProbeFailure(SshFault.KEY_UNREADABLE, f"{SshFault.KEY_UNREADABLE.value}: "
                               f"{path} needs a passphrase") from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ProbeFailure(SshFault.KEY_UNREADABLE,
                               f"{SshFault.KEY_UNREADABLE.value}: {path}: {detail}") from exc
        with self._lock:
            self._keys[str(path)] = (stamp, pkey)
        return pkey


def _key(target: VMTarget) -> _TargetKey:
    host, user, key = _endpoint(target)
    if target.bastion is not None:  # a private IP may repeat in another network
        host = "bastion:" + target.bastion.host_key_name
    return (host, target.ssh_port, user, key)


def _tunnel_failure(sock: object) -> TunnelFailure | None:
    """Why ``sock``'s tunnel ended, if it is a tunnel and ended by its own fault."""
    failure = getattr(sock, "failure", None)
    return failure if isinstance(failure, TunnelFailure) else None


def _endpoint(target: VMTarget) -> tuple[str, str, str]:
    """Host, user and key of a resolved target (``probe`` checks ``ssh_resolved`` first)."""
    return (target.ssh_host or "", target.ssh_user or "", target.ssh_key or "")


def _drop(slot: _Slot) -> None:
    transport, slot.transport = slot.transport, None
    if transport is not None:
        transport.close()


def _result(output: bytes, status: int, start: float) -> SshProbeResult:
    metrics = parse_metrics(output.decode("utf-8", "replace")) if status == 0 else None
    return SshProbeResult(True, None, metrics, time.monotonic() - start)


if TYPE_CHECKING:
    from ...ports import SshProber

    def _conforms(prober: ParamikoSshProber) -> SshProber:  # mypy checks the protocol
        return prober
