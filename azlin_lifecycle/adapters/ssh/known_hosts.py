"""``known_hosts`` for SSH probes: OpenSSH format, accept-new, host keys pinned.

Names are ``paths.host_key_name`` (``[host]:port`` for ports other than 22). A host never
seen is recorded on first contact (written under an ``fsio`` lock with an atomic rename,
so concurrent probes never corrupt the file). A key that differs from the recorded one is
refused (:class:`HostKeyChanged`) and never written.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ... import fsio

if TYPE_CHECKING:
    import paramiko


class HostKeyChanged(Exception):
    """The server presented a key other than the one recorded for it."""


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

