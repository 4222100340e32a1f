"""Read a user unit's journal entries (what ``journalctl --user -u UNIT`` shows).

For an unprivileged user that is the per-user journal files (``user-UID.journal``);
root's user units log into the system journal, so root reads all local files.
Entries are the service's own (``_SYSTEMD_USER_UNIT=``) and the user manager's about
it (``USER_UNIT=``: started, failed, watchdog ...), formatted like journalctl's
``short`` output.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ControllerError


def format_entry(entry: Mapping[str, Any]) -> str:
    """``Jan 02 15:04:05 host azlin-lifecycle[123]: message`` (journalctl ``short``)."""
    when = entry.get("__REALTIME_TIMESTAMP")
    stamp = when.astimezone().strftime("%b %d %H:%M:%S") if isinstance(when, dt.datetime) else ""
    host = entry.get("_HOSTNAME", "")
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "unknown"
    pid = entry.get("SYSLOG_PID") or entry.get("_PID")
    message = entry.get("MESSAGE", "")
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    head = f"{stamp} {host} {ident}" + (f"[{pid}]" if pid else "")
    return f"{head}: {message}"


class UnitJournal:
    """The journal entries of ``unit`` for user ``uid`` (default: the caller)."""

    def __init__(self, unit: str, uid: int | None = None, vm: str | None = None) -> None:
        self.unit = unit
        self.uid = os.getuid() if uid is None else uid
        self.vm = vm

    def _open(self) -> Any:
        from systemd import journal

        flags = journal.LOCAL_ONLY if self.uid == 0 else journal.CURRENT_USER
        try:
            reader = journal.Reader(flags=flags)
        except OSError as exc:
            raise ControllerError(f"cannot open the journal: {exc}") from exc
        uid = str(self.uid)
        if self.vm is not None:
            # Only the daemon's own entries carry VM_NAME.
            reader.add_match(_SYSTEMD_USER_UNIT=self.unit, _UID=uid, VM_NAME=self.vm)
        else:
            reader.add_match(_SYSTEMD_USER_UNIT=self.unit, _UID=uid)
            reader.add_disjunction()
            reader.add_match(USER_UNIT=self.unit, _UID=uid)
        return reader

    def entries(self, lines: int = 50) -> list[dict[str, Any]]:
        """The last ``lines`` entries, oldest first."""
        with self._open() as reader:
            return _last(reader, lines)

    def wait_for_event(self, events: set[str], since: float, pid: int, timeout: float,
                       accept: Callable[[Mapping[str, Any]], bool] = lambda entry: True,
                       ) -> dict[str, Any] | None:
        """The first entry of process ``pid`` with EVENT in ``events`` logged at or after
        ``since`` (seconds since the epoch) that ``accept`` takes, waiting up to
        ``timeout`` s; None if none."""
        deadline = time.monotonic() + timeout
        with self._open() as reader:
            reader.seek_realtime(since)
            while True:
                for entry in iter(reader.get_next, {}):
                    if (entry.get("EVENT") in events and entry.get("_PID") == pid
                            and accept(entry)):
                        return dict(entry)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                reader.wait(min(left, 0.25))

    def tail(self, lines: int = 50) -> list[str]:
        return [format_entry(e) for e in self.entries(lines)]

    def follow(
        self, lines: int = 10, stop: Callable[[], bool] = lambda: False, poll: float = 0.25
    ) -> Iterator[str]:
        """The last ``lines`` entries, then new ones as they come, until ``stop()`` is true."""
        with self._open() as reader:
            for entry in _last(reader, lines):
                yield format_entry(entry)
            reader.seek_tail()
            reader.get_previous()
            while not stop():
                for entry in iter(reader.get_next, {}):
                    yield format_entry(entry)
                reader.wait(poll)  # Reader.wait takes seconds


def _last(reader: Any, lines: int) -> list[dict[str, Any]]:
    reader.seek_tail()
    found: list[dict[str, Any]] = []
    while len(found) < lines:
        entry = reader.get_previous()
        if not entry:
            break
        found.append(entry)
    found.reverse()
    return found
