"""A real OpenSSH sshd on 127.0.0.1 for tests: its own host key, config and client key.

Runs Debian's ``/usr/sbin/sshd -D`` as the current user (root logs in as root), with
``UsePAM no``, ``StrictModes no`` and every file in a temporary directory. ``restart``
keeps the port and can swap in a new host key (the host-key-changed case); it also kills
the per-connection children, as a VM reboot would, so open client connections break.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
HOST = "127.0.0.1"


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK) and os.access(SSH_KEYGEN, os.X_OK)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new passphrase-less key pair at ``path`` / ``path.pub``."""
    for old in (path, path.with_suffix(".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "azlin-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class SshServer:
    """One sshd. ``start()``/``stop()``/``restart()``; use as a context manager."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = keygen(self.dir / "client_key")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(self.client_key.with_suffix(".pub").read_text())
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self.process: subprocess.Popen[bytes] | None = None
        keygen(self.host_key)

    # ------------------------------------------------------------------ control
    def start(self) -> SshServer:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.config.write_text(self._config_text())
        self.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening()
        return self

    def stop(self) -> None:
        """Stop the listener and every session it spawned (like a powered-off VM)."""
        process, self.process = self.process, None
        if process is None:
            return
        sessions = descendants(process.pid)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            keygen(self.host_key)
        self.start()

    def host_public_key(self) -> tuple[str, str]:
        """(key type, base64) of the current host key."""
        kind, b64 = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return kind, b64

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _config_text(self) -> str:
        return "\n".join(
            [
                f"Port {self.port}",
                f"ListenAddress {self.host}",
                f"HostKey {self.host_key}",
                f"PidFile {self.dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.authorized_keys}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UseDNS no",
                "PrintMotd no",
                "MaxStartups 200",
                "MaxSessions 100",
                "LogLevel VERBOSE",
                "",
            ]
        )

    def _wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {err}{log}")
            with contextlib.suppress(OSError), socket.create_connection(
                (self.host, self.port), timeout=0.5
            ):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} within 10 s")

