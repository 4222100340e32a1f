"""SSH keys for the simulated fleet: one client key every VM accepts, and per-VM
Ed25519 host keys derived from a seed in the work directory (so they stay the same
when a simulator is restarted in the same directory)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

from ..fsio import atomic_write


def _openssh_private(seed: bytes | None = None) -> tuple[bytes, bytes]:
    """(OpenSSH private key PEM, ``ssh-ed25519 AAAA...`` public line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = (Ed25519PrivateKey.from_private_bytes(seed) if seed is not None
           else Ed25519PrivateKey.generate())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return private, public


def ensure_client_key(path: Path) -> Path:
    """Create ``path`` (and ``path.pub``) unless it exists; return ``path``."""
    if not path.exists():
        private, public = _openssh_private()
        atomic_write(path, private, mode=0o600)
        atomic_write(path.with_name(path.name + ".pub"), public + b" azlin-simulator\n",
                     mode=0o644)
    return path


def public_blob(private_key_path: Path) -> bytes:
    """The SSH wire form of the public half of an OpenSSH Ed25519 private key file."""
    import paramiko

    return bytes(paramiko.Ed25519Key(filename=str(private_key_path)).asbytes())


class HostKeys:
    """Per-VM host keys, created on first use and cached."""

    def __init__(self, seed_path: Path) -> None:
        if not seed_path.exists():
            atomic_write(seed_path, os.urandom(32).hex().encode("ascii"))
        self._seed = bytes.fromhex(seed_path.read_text(encoding="ascii").strip())
        self._cache: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    def _material(self, name: str, changed: bool) -> tuple[bytes, bytes]:
        label = f"{name}:{'changed' if changed else 'host'}".encode()
        return _openssh_private(hashlib.sha256(self._seed + label).digest())

    def key(self, name: str, changed: bool = False) -> Any:
        """The paramiko key VM ``name`` presents (a different one when ``changed``)."""
        import paramiko

        with self._lock:
            cached = self._cache.get((name, changed))
            if cached is None:
                private, _ = self._material(name, changed)
                cached = paramiko.Ed25519Key(file_obj=io.StringIO(private.decode("ascii")))
                self._cache[(name, changed)] = cached
            return cached

    def public_line(self, name: str, changed: bool = False) -> str:
        """``ssh-ed25519 AAAA...`` for VM ``name``."""
        return self._material(name, changed)[1].decode("ascii")
