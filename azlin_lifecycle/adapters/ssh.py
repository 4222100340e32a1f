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

Every failure is an :class:`~azlin_lifecycle.models.SshFault` (``SshProbeResult.fault``)
with a reason in words (``reason``):

=============================== ===========================================================
guest-side (count toward a restart)
``connection refused``          nothing listens on the port (TCP RST)
``timed out``                   the TCP connect did not complete in time
``timed out (hung)``            TCP accepted, but no banner / key exchange / auth answer /
                                session in time (a hung sshd or VM)
``connection lost``             the server hung up or reset the connection mid-probe
``command timed out``           connected, but the metrics command did not finish in time
monitor-side or configuration (a restart cannot fix them)
``authentication failed``       the server refused the key for that user
``host key changed``            the server's key differs from the recorded one
``name resolution failed``      the host name does not resolve
``private key missing or        the key file is missing, unreadable, not a key, or needs a
unreadable``                    passphrase
``monitor's network             this machine has no route (ENETUNREACH, EHOSTUNREACH)
unreachable``
``ssh error: <text>``           anything else
=============================== ===========================================================

A command that exits non-zero still means reachable, with ``metrics`` None.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
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
from ..models import SshFault, SshProbeResult, VMTarget
from ..paths import expand, host_key_name, known_hosts_path

if TYPE_CHECKING:
    import paramiko

GENERIC_PREFIX = "ssh error: "
NO_ROUTE_ERRNOS = frozenset({101, 113})  # ENETUNREACH, EHOSTUNREACH: this side has no route
DEFAULT_MAX_OPEN = 512  # connections kept open for reuse; see FabricSshProber._keep_bounded

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
    """A probe step failed: its fault and the reason in words.

    ``lost``: the connection itself died before the deadline (worth one fresh retry
    when it was a cached one).
    """

    def __init__(self, fault: SshFault, reason: str | None = None, lost: bool = False) -> None:
        self.fault = fault
        self.reason = reason or fault.value
        super().__init__(self.reason)
        self.lost = lost

    def result(self, start: float) -> SshProbeResult:
        return SshProbeResult(False, self.reason, None, time.monotonic() - start, self.fault)


def classify_failure(exc: BaseException, phase: Phase,
                     deadline_passed: bool) -> tuple[SshFault, str]:
    """The fault and reason for ``exc`` raised during ``phase`` (pure: no I/O)."""
    import paramiko

    if isinstance(exc, HostKeyChanged | paramiko.BadHostKeyException):
        return _plain(SshFault.HOST_KEY_CHANGED)
    if isinstance(exc, socket.gaierror):
        return _plain(SshFault.NAME_RESOLUTION)
    if isinstance(exc, ConnectionRefusedError):
        return _plain(SshFault.REFUSED)
    if isinstance(exc, paramiko.PasswordRequiredException):
        return SshFault.KEY_UNREADABLE, f"{SshFault.KEY_UNREADABLE.value}: it needs a passphrase"
    if isinstance(exc, paramiko.AuthenticationException) and "timeout" not in str(exc).lower():
        return _plain(SshFault.AUTH_FAILED)
    if isinstance(exc, OSError) and exc.errno in NO_ROUTE_ERRNOS:
        return SshFault.NETWORK_DOWN, f"{SshFault.NETWORK_DOWN.value} ({exc.strerror})"
    timed_out = deadline_passed or _is_timeout(exc)
    if phase is Phase.CONNECT:
        if timed_out:
            return _plain(SshFault.CONNECT_TIMEOUT)
    elif phase is Phase.COMMAND:
        if timed_out:
            return _plain(SshFault.COMMAND_TIMEOUT)
    elif timed_out or _looks_hung(exc):
        return _plain(SshFault.HUNG)
    if _hung_up(exc):
        return _plain(SshFault.CONNECTION_LOST)
    text = str(exc).strip() or type(exc).__name__
    return SshFault.OTHER, GENERIC_PREFIX + text.splitlines()[0][:200]


def _plain(fault: SshFault) -> tuple[SshFault, str]:
    return fault, fault.value


def _hung_up(exc: BaseException) -> bool:
    """The server closed or reset the connection (EOF, RST) before the probe was done."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, EOFError | ConnectionResetError | ConnectionAbortedError
                      | BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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


# --------------------------------------------------------------------------- host keys
class KnownHosts:
    """``known_hosts`` with accept-new semantics, safe across threads and processes.

    Lookups use an in-memory index of the file (plain names in a dict; hashed ``|1|``
    names checked one by one), re-read only when the file's inode, mtime or size
    changes. First-seen keys are written in groups: a thread that finds the writer busy
    queues its key, and the next writer records every queued key in one atomic rewrite
    (one fsync for a whole sweep's worth of new hosts instead of one per host).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # the in-memory view
        self._write_lock = threading.Lock()  # one writer of this process at a time
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False
        self._text = ""
        self._plain: dict[str, dict[str, paramiko.PKey]] = {}
        self._hashed: list[tuple[str, paramiko.PKey]] = []
        self._pending: list[tuple[str, paramiko.PKey]] = []
        self._writing = False  # this process holds the file lock and is replacing the file
        self._generation = 0  # bumped by every change of the in-memory view made here

    def _refresh(self) -> None:
        """Re-read the file if it changed since it was last read (or written) here."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if self._writing or (self._loaded and stamp == self._stamp):
                return  # (while this process writes, the in-memory view is the newer one)
            generation = self._generation
        try:
            with self.path.open("rb") as handle:
                st = os.fstat(handle.fileno())  # the stamp of exactly what is read
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            stamp, text = None, ""
        plain, hashed = _parse_known_hosts(text)
        with self._lock:
            if self._generation != generation:
                return  # recorded here while this read ran: that view is the newer one
            self._text, self._plain, self._hashed = text, plain, hashed
            self._stamp, self._loaded = stamp, True

    def _lookup(self, name: str) -> dict[str, paramiko.PKey]:
        import paramiko

        with self._lock:
            found = dict(self._plain.get(name, {}))
            hashed = list(self._hashed)
        for hashed_name, key in hashed:
            if paramiko.HostKeys.hash_host(name, hashed_name) == hashed_name:
                found.setdefault(key.get_name(), key)
        return found

    def known(self, name: str) -> dict[str, paramiko.PKey]:
        self._refresh()
        return self._lookup(name)

    def verify(self, name: str, key: paramiko.PKey) -> None:
        """Accept a matching or a first-seen key (recording it); raise HostKeyChanged."""
        recorded = self.known(name)
        if not _matches(recorded, key):
            if recorded:
                raise _changed(name, key)
            with self._lock:
                self._pending.append((name, key))
            with self._write_lock:
                self._flush()
            recorded = self._lookup(name)
        if _matches(recorded, key):
            return
        if recorded:
            raise _changed(name, key)
        raise OSError(f"the host key of {name} could not be recorded in {self.path}")

    def _flush(self) -> None:
        """Record every queued first-seen key (under the file lock); the caller holds
        ``_write_lock``. A queued key that meets a different recorded one is dropped:
        its ``verify`` then raises HostKeyChanged."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return  # an earlier writer recorded ours
        with fsio.locked(self.path):
            self._refresh()  # another process may have written meanwhile
            added: list[str] = []
            with self._lock:
                text = self._text
                for name, key in batch:
                    if self._plain.get(name) or any(
                            _hashed_match(name, h) for h, _ in self._hashed):
                        continue  # recorded already (same key: fine; else: verify says so)
                    self._plain[name] = {key.get_name(): key}
                    added.append(f"{name} {key.get_name()} {key.get_base64()}\n")
                self._generation += 1
            if not added:
                return
            if text and not text.endswith("\n"):
                text += "\n"
            text += "".join(added)
            with self._lock:
                self._writing = True
            try:
                fsio.atomic_write(self.path, text.encode("utf-8"), mode=0o600)
                st = self.path.stat()
            except OSError:
                with self._lock:
                    self._loaded = False  # re-read: the additions above may not be on disk
                raise
            finally:
                with self._lock:
                    self._writing = False
            with self._lock:
                self._text = text
                self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                self._generation += 1


def _hashed_match(name: str, hashed_name: str) -> bool:
    import paramiko

    return bool(paramiko.HostKeys.hash_host(name, hashed_name) == hashed_name)


def _changed(name: str, key: paramiko.PKey) -> HostKeyChanged:
    return HostKeyChanged(f"{name}: server key {key.get_name()} {key.fingerprint} "
                          "is not the recorded one")


def _parse_known_hosts(
    text: str,
) -> tuple[dict[str, dict[str, paramiko.PKey]], list[tuple[str, paramiko.PKey]]]:
    """Plain names -> {key type: key} and (hashed name, key) pairs; the first entry of a
    name and key type wins, unreadable lines are skipped (as paramiko's HostKeys.load)."""
    import paramiko
    from paramiko.hostkeys import HostKeyEntry

    plain: dict[str, dict[str, paramiko.PKey]] = {}
    hashed: list[tuple[str, paramiko.PKey]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except paramiko.SSHException:
            continue
        if entry is None or entry.key is None:
            continue
        for host in entry.hostnames:
            if host.startswith("|1|"):
                hashed.append((host, entry.key))
            else:
                plain.setdefault(host, {}).setdefault(entry.key.get_name(), entry.key)
    return plain, hashed


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

    def __init__(self, known_hosts: Path | None = None, connect_timeout: float = 10.0,
                 max_open: int = DEFAULT_MAX_OPEN) -> None:
        self._known_hosts_path = known_hosts
        self._known_hosts: KnownHosts | None = None
        self.connect_timeout = connect_timeout
        self.max_open = max_open
        self._lock = threading.Lock()
        self._slots: dict[_TargetKey, _Slot] = {}
        self._open: set[_TargetKey] = set()  # targets whose connection is kept open
        self._keys: dict[str, tuple[tuple[int, int], paramiko.PKey]] = {}
        self._watchdog = _Watchdog()
        self.connections_opened = 0  # fresh connections made; for tests and benchmarks

    # ----------------------------------------------------------------- public API
    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult:
        start = time.monotonic()
        deadline = start + timeout
        if not target.ssh_resolved:
            return _Failure(SshFault.OTHER, GENERIC_PREFIX + "no SSH address, user or key "
                            "resolved for this VM").result(start)
        slot = self._slot(target)
        if not slot.lock.acquire(timeout=max(0.0, timeout)):
            # The earlier probe is stuck past its own deadline: as good as hung.
            return _Failure(SshFault.HUNG, SshFault.HUNG.value + ": an earlier probe of "
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
                    return failure.result(start)
        attempt = _Attempt()
        try:
            slot.transport = self._connect(target, attempt, deadline)
            output, status = self._run(attempt, deadline, Phase.SESSION)
            return _result(output, status, start)
        except _Failure as failure:
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
            attempt.sock = socket.create_connection(
                (host, target.ssh_port), timeout=_left(connect_deadline)
            )
            attempt.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections_opened += 1
            phase = Phase.HANDSHAKE
            transport = attempt.transport = _transport_class()(attempt.sock)
            name = host_key_name(host, target.ssh_port)
            known = self._hosts().known(name)
            _prefer_key_types(transport, known)
            _prefer_aead_ciphers(transport)
            transport.banner_timeout = _left(connect_deadline)
            transport.start_client(timeout=_left(connect_deadline))
            server_key = transport.get_remote_server_key()
            self._hosts().verify(name, server_key)
            phase = Phase.AUTH
            transport.auth_timeout = _left(deadline)
            transport.auth_publickey(user, pkey)
            if not transport.is_authenticated():
                raise paramiko.AuthenticationException("partial authentication only")
            return transport
        except _Failure:
            raise
        except Exception as exc:
            passed = attempt.aborted or time.monotonic() >= deadline
            raise _Failure(*classify_failure(exc, phase, passed)) from exc
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
            fault, reason = classify_failure(exc, phase, passed)
            lost = not passed and not transport.is_active()
            if lost and fault is SshFault.OTHER:
                fault, reason = _plain(SshFault.CONNECTION_LOST)
            raise _Failure(fault, reason, lost=lost) from exc
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
            raise _Failure(SshFault.KEY_UNREADABLE,
                           f"{SshFault.KEY_UNREADABLE.value}: {path} needs a passphrase") from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise _Failure(SshFault.KEY_UNREADABLE,
                           f"{SshFault.KEY_UNREADABLE.value}: {path}: {detail}") from exc
        with self._lock:
            self._keys[str(path)] = (stamp, pkey)
        return pkey


_TRANSPORT_CLASS: type[paramiko.Transport] | None = None
IDLE_POLL_SECONDS = 5.0


def _transport_class() -> type[paramiko.Transport]:
    """paramiko's client Transport, made cheap to keep open by the hundred.

    Every Transport has a thread that wakes up every ``_active_check_timeout`` (0.1 s)
    only to see whether it was closed: 1,000 cached connections cost 10,000 wake-ups a
    second of the GIL. Here it waits ``IDLE_POLL_SECONDS``, and ``close`` shuts the
    socket down first, so the thread sees EOF at once instead of at its next wake-up.
    """
    global _TRANSPORT_CLASS
    if _TRANSPORT_CLASS is None:
        import paramiko

        class _ClientTransport(paramiko.Transport):  # type: ignore[misc]
            _active_check_timeout = IDLE_POLL_SECONDS

            def close(self) -> None:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                super().close()
                with contextlib.suppress(OSError):
                    self.sock.close()

        _TRANSPORT_CLASS = _ClientTransport
    return _TRANSPORT_CLASS


def _key(target: VMTarget) -> _TargetKey:
    host, user, key = _endpoint(target)
    return (host, target.ssh_port, user, key)


def _endpoint(target: VMTarget) -> tuple[str, str, str]:
    """Host, user and key of a resolved target (``probe`` checks ``ssh_resolved`` first)."""
    return (target.ssh_host or "", target.ssh_user or "", target.ssh_key or "")


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


AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer_aead_ciphers(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first (OpenSSH serves it by default): its integrity check runs in
    OpenSSL, where paramiko's default (CTR + HMAC) compares every packet's MAC in Python
    (a third of the CPU of a reused connection's probe). The others stay as fallbacks."""
    options = transport.get_security_options()
    offered = list(options.ciphers)
    options.ciphers = [c for c in AEAD_CIPHERS if c in offered] + [
        c for c in offered if c not in AEAD_CIPHERS]


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
