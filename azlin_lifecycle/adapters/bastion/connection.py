"""TLS connections to a Bastion's data plane, each step within one deadline.

Trust is the ARM adapter's: ``[azure] ca_bundle``, else ``REQUESTS_CA_BUNDLE`` (what
azure-core's requests transport honours), else the system's store. The TCP connect and the
TLS handshake each get what is left of the deadline as their timeout, and a watchdog shuts
the socket down at the deadline itself: a server that accepts TCP and then says nothing, or
trickles, cannot hold an opening past it (a WebSocket library's own open timeout does not
cover the TLS handshake of a socket it is handed). A request is an ``SSLSocket``; a tunnel,
used by two threads at once, a :class:`~.tlschannel.TlsChannel`.

Failures are :class:`~azlin_lifecycle.ports.TunnelFailure`: the Bastion unreachable (down,
refused, silent, no route) is the monitor's side; a certificate this machine does not trust
needs a person.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Protocol

from ...models import SshFault
from ...ports import TunnelFailure
from ..ssh.deadline import DeadlineWatchdog, seconds_left
from ..ssh.faults import NO_ROUTE_ERRNOS
from .tlschannel import TlsChannel

UNREACHABLE = SshFault.BASTION_UNREACHABLE.value
UNUSABLE = SshFault.BASTION_UNUSABLE.value


def trust_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The TLS client context for data planes: the same trust as for ARM."""
    cafile = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def split_host(dns_name: str) -> tuple[str, int]:
    """``host`` or ``host:port`` (the local stand-in's form) -> (host, port)."""
    host, _, port = dns_name.partition(":")
    return host, int(port) if port else 443


def unreachable(name: str, what: str) -> TunnelFailure:
    return TunnelFailure(SshFault.BASTION_UNREACHABLE, f"{UNREACHABLE}: {name} {what}")


def unusable(name: str, what: str) -> TunnelFailure:
    return TunnelFailure(SshFault.BASTION_UNUSABLE, f"{UNUSABLE}: {what}")


class Closable(Protocol):
    def shutdown(self, how: int) -> None: ...


@contextlib.contextmanager
def guarded(watchdog: DeadlineWatchdog, deadline: float, sock: Closable) -> Iterator[None]:
    """Shut ``sock`` down if the block is still running at ``deadline``."""
    def abort() -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    token = watchdog.watch(deadline, abort)
    try:
        yield
    finally:
        watchdog.cancel(token)


def _connect(name: str, host: str, port: int, deadline: float) -> socket.socket:
    try:
        raw = socket.create_connection((host, port), timeout=seconds_left(deadline))
    except OSError as exc:
        raise _failure(name, f"({host})", exc, deadline) from None
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return raw


def open_channel(name: str, dns_name: str, context: ssl.SSLContext, deadline: float,
                 watchdog: DeadlineWatchdog) -> TlsChannel:
    """A TLS connection for a tunnel (read and written by two threads at once), handshake
    done, before ``deadline``."""
    host, port = split_host(dns_name)
    raw = _connect(name, host, port, deadline)
    channel = TlsChannel(raw, context, server_hostname=host)
    try:
        with guarded(watchdog, deadline, raw):
            channel.handshake(deadline)
    except OSError as exc:
        channel.close()
        raise _failure(name, f"({host})", exc, deadline) from None
    return channel


def open_tls(name: str, dns_name: str, context: ssl.SSLContext, deadline: float,
             watchdog: DeadlineWatchdog) -> ssl.SSLSocket:
    """A TLS connection for one request at a time, handshake done, before ``deadline``."""
    host, port = split_host(dns_name)
    where = f"({host})"
    raw = _connect(name, host, port, deadline)
    try:
        tls = context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        raw.close()
        raise unreachable(name, f"{where}: TLS set-up failed ({type(exc).__name__})") from None
    try:
        with guarded(watchdog, deadline, raw):
            tls.settimeout(seconds_left(deadline))
            tls.do_handshake()
    except OSError as exc:
        tls.close()
        raise _failure(name, where, exc, deadline) from None
    return tls


def _failure(name: str, where: str, exc: OSError, deadline: float) -> TunnelFailure:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return unusable(name, f"the TLS certificate of {name} {where} is not trusted here "
                        f"({exc.verify_message}): if a proxy re-signs traffic, set [azure] "
                        "ca_bundle to its CA")
    if isinstance(exc, socket.gaierror):
        return unreachable(name, f"{where}: its name does not resolve from here")
    if isinstance(exc, ConnectionRefusedError):
        return unreachable(name, f"{where} refused the connection")
    if exc.errno in NO_ROUTE_ERRNOS:
        return unreachable(name, f"{where}: no route from here ({exc.strerror})")
    if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
        return unreachable(name, f"{where} did not answer in time")
    return unreachable(name, f"{where}: connection failed ({exc.strerror or type(exc).__name__})")
