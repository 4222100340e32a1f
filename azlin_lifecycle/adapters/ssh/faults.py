"""How an SSH probe's failure maps to an :class:`~azlin_lifecycle.models.SshFault` and a
reason in words (pure logic: no I/O).

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
"""

from __future__ import annotations

import socket
import time
from enum import Enum

from ...models import SshFault, SshProbeResult
from .known_hosts import HostKeyChanged

GENERIC_PREFIX = "ssh error: "
NO_ROUTE_ERRNOS = frozenset({101, 113})  # ENETUNREACH, EHOSTUNREACH: this side has no route


class Phase(Enum):
    """Where in a probe a failure happened; decides what a timeout means."""

    CONNECT = "connect"
    HANDSHAKE = "handshake"
    AUTH = "auth"
    SESSION = "session"
    COMMAND = "command"


class ProbeFailure(Exception):
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
