"""paramiko's client ``Transport``, tuned for probes: cheap to keep open by the hundred,
AES-GCM offered first, and the host-key type on record asked for."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

_TRANSPORT_CLASS: type[paramiko.Transport] | None = None
IDLE_POLL_SECONDS = 5.0


def client_transport_class() -> type[paramiko.Transport]:
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


AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def prefer_aead_ciphers(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first (OpenSSH serves it by default): its integrity check runs in
    OpenSSL, where paramiko's default (CTR + HMAC) compares every packet's MAC in Python
    (a third of the CPU of a reused connection's probe). The others stay as fallbacks."""
    options = transport.get_security_options()
    offered = list(options.ciphers)
    options.ciphers = [c for c in AEAD_CIPHERS if c in offered] + [
        c for c in offered if c not in AEAD_CIPHERS]


def prefer_key_types(transport: paramiko.Transport, known: dict[str, Any]) -> None:
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

