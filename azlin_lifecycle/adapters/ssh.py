"""SSH probes of VMs over paramiko, bounded by one deadline, with host-key pinning.

:class:`FabricSshProber` implements :class:`azlin_lifecycle.ports.SshProber`. It works on
paramiko's ``Transport`` (the layer under fabric's ``Connection``) because each step needs
its own share of one deadline, and nothing may read ``~/.ssh/config``, an agent or the
user's ``~/.ssh/known_hosts``.

One probe: TCP connect, SSH banner and key exchange, host-key check, public-key auth
(``target.ssh_key``; no agent, no password, no other keys), then ``METRICS_COMMAND`` once.
Every step gets what is left of ``timeout``; a watchdog thread closes the connection at
the deadline as a last resort, so a server that stops answering mid-step cannot hold a
probe longer than ``timeout`` (plus a few milliseconds).

Connections are reused: one per (host, port, user, key), guarded by a per-target lock. A
cached connection that turns out to be broken is dropped and the probe retried once on a
fresh one while time remains. Any failed probe drops its connection; so does ``forget``.

Host keys live in ``known_hosts_path()`` (OpenSSH format, ``[host]:port`` for ports other
than 22). A host never seen is recorded on first contact (accept-new; written under an
``fsio`` lock with an atomic rename, so concurrent probes never corrupt the file). A key
that differs from the recorded one is refused and never written.

Reasons (``SshProbeResult.reason`` when ``reachable`` is False):

=========================== ==========================================================
``connection refused``      nothing listens on the port (TCP RST)
``timed out``               the TCP connect did not complete in time
``timed out (hung)``        TCP accepted, but no banner / key exchange / auth answer /
                            session in time (a hung sshd or VM)
``authentication failed``   the server refused the key (or the key needs a passphrase)
``host key changed``        the server's key differs from the recorded one
``name resolution failed``  the host name does not resolve
``command timed out``       connected, but the metrics command did not finish in time
``ssh error: <text>``       anything else (unreadable key, unreachable network, ...)
=========================== ==========================================================

A command that exits non-zero still means reachable, with ``metrics`` None.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fsio
from ..metrics_wire import METRICS_COMMAND, parse_metrics
from ..models import SshProbeResult, VMTarget
from ..paths import expand, known_hosts_path

if TYPE_CHECKING:
    import paramiko

REFUSED = "connection refused"
CONNECT_TIMEOUT = "timed out"
HUNG = "timed out (hung)"
AUTH_FAILED = "authentication failed"
HOST_KEY_CHANGED = "host key changed"
NAME_RESOLUTION = "name resolution failed"
COMMAND_TIMEOUT = "command timed out"
GENERIC_PREFIX = "ssh error: "

_MAX_OUTPUT = 1 << 20
_WATCHDOG_GRACE = 0.05


class Phase(Enum):
    """Where in a probe a failure happened; decides what a timeout means."""

    CONNECT = "connect"
    HANDSHAKE = "handshake"
    AUTH = "auth"
    SESSION = "session"
    COMMAND = "command"


class HostKeyChanged(Exception):
    """The server presented a key other than the one recorded for it."""


class _Failure(Exception):
    """A probe step failed; ``reason`` is the final reason string.

    ``lost``: the connection itself died before the deadline (worth one fresh retry
    when it was a cached one).
    """

    def __init__(self, reason: str, lost: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lost = lost


def classify_failure(exc: BaseException, phase: Phase, deadline_passed: bool) -> str:
    """The reason string for ``exc`` raised during ``phase`` (pure: no I/O)."""
    import paramiko

    if isinstance(exc, HostKeyChanged | paramiko.BadHostKeyException):
        return HOST_KEY_CHANGED
    if isinstance(exc, socket.gaierror):
        return NAME_RESOLUTION
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, paramiko.AuthenticationException) and "timeout" not in str(exc).lower():
        return AUTH_FAILED
    if isinstance(exc, paramiko.PasswordRequiredException):
        return AUTH_FAILED
    timed_out = deadline_passed or _is_timeout(exc)
    if phase is Phase.CONNECT:
        if timed_out:
            return CONNECT_TIMEOUT
    elif phase is Phase.COMMAND:
        if timed_out:
            return COMMAND_TIMEOUT
    elif timed_out or _looks_hung(exc):
        return HUNG
    text = str(exc).strip() or type(exc).__name__
    return GENERIC_PREFIX + text.splitlines()[0][:200]


def _is_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):  # socket.timeout is TimeoutError
            return True
        if "timeout" in str(seen).lower() or "timed out" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _looks_hung(exc: BaseException) -> bool:
    """paramiko's words for a peer that accepted TCP but never spoke SSH in time."""
    text = str(exc)
    if "Error reading SSH protocol banner" in text:
        cause = exc.__cause__ or exc.__context__
        return not isinstance(cause, EOFError)  # EOF: the server hung up, not hung
    return "No existing session" in text


def host_key_name(host: str, port: int) -> str:
    """The known_hosts name OpenSSH uses for ``host``:``port``."""
    return host if port == 22 else f"[{host}]:{port}"


# --------------------------------------------------------------------------- host keys
class KnownHosts:
    """``known_hosts`` with accept-new semantics, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: paramiko.HostKeys | None = None

    def _current(self) -> paramiko.HostKeys:
        import paramiko

        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if self._keys is None or stamp != self._stamp:
                keys = paramiko.HostKeys()
                if stamp is not None:
                    keys.load(str(self.path))
                self._keys, self._stamp = keys, stamp
            return self._keys

    def known(self, name: str) -> dict[str, paramiko.PKey]:
        entry = self._current().lookup(name)
        return {} if entry is None else {kt: entry[kt] for kt in entry}

    def verify(self, name: str, key: paramiko.PKey) -> None:
        """Accept a matching or a first-seen key (recording it); raise HostKeyChanged."""
        if _matches(self.known(name), key):
            return
        with fsio.locked(self.path):
            import paramiko

            keys = paramiko.HostKeys()
            try:
                text = self.path.read_text(encoding="utf-8")
                keys.load(str(self.path))
            except FileNotFoundError:
                text = ""
            entry = keys.lookup(name)
            recorded = {} if entry is None else {kt: entry[kt] for kt in entry}
            if _matches(recorded, key):
                return
            if recorded:
                raise HostKeyChanged(f"{name}: server key {key.get_name()} "
                                     f"{key.fingerprint} is not the recorded one")
            if text and not text.endswith("\n"):
                text += "\n"
            text += f"{name} {key.get_name()} {key.get_base64()}\n"
            fsio.atomic_write(self.path, text.encode("utf-8"), mode=0o600)
        with self._lock:
            self._stamp = None  # reload on next use


def _matches(recorded: dict[str, paramiko.PKey], key: paramiko.PKey) -> bool:
    if not recorded:
        return False
    same_type = recorded.get(key.get_name())
    return same_type is not None and same_type == key


# --------------------------------------------------------------------------- watchdog
class _Watchdog:
    """One thread that runs an abort action for every probe still running at its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, deadline: float, action: Callable[[], None]) -> int:
        with self._cond:
            token = next(self._ids)
            self._actions[token] = action
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._run, name="ssh-probe-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][1] == token:
                self._cond.notify()
            return token

    def cancel(self, token: int) -> None:
        with self._cond:
            self._actions.pop(token, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None:
            thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    while self._heap and self._heap[0][1] not in self._actions:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, token = heapq.heappop(self._heap)
                        action = self._actions.pop(token)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            with contextlib.suppress(Exception):  # closing an already broken socket
                action()


# --------------------------------------------------------------------------- connections
@dataclass
class _Slot:
    """The cached connection of one target and the lock that serialises its probes."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    transport: paramiko.Transport | None = None


@dataclass
class _Attempt:
    """The sockets of one connection attempt, so the watchdog can abort them."""

    sock: socket.socket | None = None
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


class FabricSshProber:
    """:class:`~azlin_lifecycle.ports.SshProber` over paramiko (fabric's transport layer).

    ``known_hosts`` defaults to ``paths.known_hosts_path()`` (read when first needed);
    ``connect_timeout`` caps the TCP connect and the handshake of a fresh connection
    (the probe's own ``timeout`` caps the whole probe).
    """

    def __init__(self, known_hosts: Path | None = None, connect_timeout: float = 10.0) -> None:
        self._known_hosts_path = known_hosts
        self._known_hosts: KnownHosts | None = None
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._slots: dict[_TargetKey, _Slot] = {}
        self._keys: dict[str, tuple[tuple[int, int], paramiko.PKey]] = {}
        self._watchdog = _Watchdog()
        self.connections_opened = 0  # fresh connections made; for tests and benchmarks

    # ----------------------------------------------------------------- public API
    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult:
        start = time.monotonic()
        deadline = start + timeout
        slot = self._slot(target)
        if not slot.lock.acquire(timeout=max(0.0, timeout)):
            busy = GENERIC_PREFIX + "an earlier probe of this VM is still running"
            return SshProbeResult(False, busy, None, time.monotonic() - start)
        try:
            return self._probe_locked(target, slot, start, deadline)
        finally:
            slot.lock.release()

    def forget(self, target: VMTarget) -> None:
        with self._lock:
            slot = self._slots.get(_key(target))
        if slot is None:
            return
        with slot.lock:
            _drop(slot)

    def close(self) -> None:
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            with slot.lock:
                _drop(slot)
        self._watchdog.stop()

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
            except _Failure as failure:
                _drop(slot)
                if not failure.lost or time.monotonic() >= deadline:
                    return SshProbeResult(False, failure.reason, None, time.monotonic() - start)
        attempt = _Attempt()
        try:
            slot.transport = self._connect(target, attempt, deadline)
            output, status = self._run(attempt, deadline, Phase.SESSION)
            return _result(output, status, start)
        except _Failure as failure:
            _drop(slot)
            if attempt.transport is not None:
                attempt.transport.close()
            return SshProbeResult(False, failure.reason, None, time.monotonic() - start)

    def _connect(
        self, target: VMTarget, attempt: _Attempt, deadline: float
    ) -> paramiko.Transport:
        import paramiko

        token = self._watchdog.watch(deadline + _WATCHDOG_GRACE, attempt.abort)
        phase = Phase.CONNECT
        try:
            pkey = self._load_key(target.ssh_key)
            connect_deadline = min(deadline, time.monotonic() + self.connect_timeout)
            attempt.sock = socket.create_connection(
                (target.ssh_host, target.ssh_port), timeout=_left(connect_deadline)
            )
            attempt.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections_opened += 1
            phase = Phase.HANDSHAKE
            transport = attempt.transport = paramiko.Transport(attempt.sock)
            name = host_key_name(target.ssh_host, target.ssh_port)
            known = self._hosts().known(name)
            _prefer_key_types(transport, known)
            transport.banner_timeout = _left(connect_deadline)
            transport.start_client(timeout=_left(connect_deadline))
            server_key = transport.get_remote_server_key()
            self._hosts().verify(name, server_key)
            phase = Phase.AUTH
            transport.auth_timeout = _left(deadline)
            transport.auth_publickey(target.ssh_user, pkey)
            if not transport.is_authenticated():
                raise paramiko.AuthenticationException("partial authentication only")
            return transport
        except _Failure:
            raise
        except Exception as exc:
            passed = attempt.aborted or time.monotonic() >= deadline
            raise _Failure(classify_failure(exc, phase, passed)) from exc
        finally:
            self._watchdog.cancel(token)

    def _run(self, attempt: _Attempt, deadline: float, phase: Phase) -> tuple[bytes, int]:
        """Run METRICS_COMMAND on ``attempt.transport``: (stdout, exit status)."""
        assert attempt.transport is not None
        transport = attempt.transport
        token = self._watchdog.watch(deadline + _WATCHDOG_GRACE, attempt.abort)
        try:
            channel = attempt.channel = transport.open_session(timeout=_left(deadline))
            phase = Phase.COMMAND
            try:
                channel.settimeout(_left(deadline))
                channel.exec_command(METRICS_COMMAND)
                chunks: list[bytes] = []
                size = 0
                while size < _MAX_OUTPUT:
                    channel.settimeout(_left(deadline))
                    data = channel.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                    size += len(data)
                if not channel.status_event.wait(_left(deadline)):
                    raise TimeoutError("no exit status before the deadline")
                status = channel.recv_exit_status()
                if status == -1 and not transport.is_active():
                    raise EOFError("connection closed while the command ran")
                return b"".join(chunks), status
            finally:
                channel.close()
                attempt.channel = None
        except Exception as exc:
            passed = attempt.aborted or time.monotonic() >= deadline
            reason = classify_failure(exc, phase, passed)
            lost = not passed and not transport.is_active()
            if lost and reason.startswith(GENERIC_PREFIX):
                reason = GENERIC_PREFIX + "connection lost"
            raise _Failure(reason, lost=lost) from exc
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
            raise _Failure(AUTH_FAILED) from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise _Failure(f"{GENERIC_PREFIX}cannot read private key {path}: {exc}") from exc
        with self._lock:
            self._keys[str(path)] = (stamp, pkey)
        return pkey


def _key(target: VMTarget) -> _TargetKey:
    return (target.ssh_host, target.ssh_port, target.ssh_user, target.ssh_key)


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; a tiny positive value once it has passed."""
    return max(deadline - time.monotonic(), 0.001)


def _drop(slot: _Slot) -> None:
    transport, slot.transport = slot.transport, None
    if transport is not None:
        transport.close()


def _result(output: bytes, status: int, start: float) -> SshProbeResult:
    metrics = parse_metrics(output.decode("utf-8", "replace")) if status == 0 else None
    return SshProbeResult(True, None, metrics, time.monotonic() - start)


def _prefer_key_types(transport: paramiko.Transport, known: dict[str, Any]) -> None:
    """Ask the server for the key type on record, so a known host is checked, not re-added."""
    if not known:
        return
    options = transport.get_security_options()
    offered = list(options.key_types)
    wanted = next(iter(known))
    if wanted == "ssh-rsa":
        wanted = next((t for t in ("rsa-sha2-512", "rsa-sha2-256") if t in offered), wanted)
    if wanted in offered:
        options.key_types = [wanted, *(t for t in offered if t != wanted)]



if TYPE_CHECKING:
    from ..ports import SshProber

    def _conforms(prober: FabricSshProber) -> SshProber:  # mypy checks the protocol
        return prober
