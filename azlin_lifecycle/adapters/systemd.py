"""sd_notify and logging for a service run by systemd (systemd-python).

Every notify helper is a no-op when ``NOTIFY_SOCKET`` is unset (a foreground run).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from ..events import FIELD_NAME_RE

SYSLOG_IDENTIFIER = "azlin-lifecycle"
# Fields every record has, or that events add, shown on stderr in this order first.
_LEAD_FIELDS = ("VM_NAME", "EVENT")
_HIDDEN_FIELDS = frozenset({"MESSAGE_ID", "EVENT", "VM_NAME"})


def notify(**fields: object) -> bool:
    """Send ``KEY=value`` lines (``notify(READY=1, STATUS="ok")``); False if not sent."""
    if not os.environ.get("NOTIFY_SOCKET") or not fields:
        return False
    from systemd import daemon

    lines = []
    for key, value in fields.items():
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return bool(daemon.notify("\n".join(lines)))


def ready(status: str | None = None) -> bool:
    if status is None:
        return notify(READY=1)
    return notify(READY=1, STATUS=status)


def status(text: str) -> bool:
    return notify(STATUS=text)


def watchdog() -> bool:
    return notify(WATCHDOG=1)


def reloading() -> bool:
    """RELOADING=1 with MONOTONIC_USEC (systemd 253+ needs it for Type=notify-reload)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(RELOADING=1, MONOTONIC_USEC=usec)


def stopping() -> bool:
    return notify(STOPPING=1)


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


def under_journal() -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM=dev:ino)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = stream.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{st.st_dev}" == dev and f"{st.st_ino}" == ino


class ReadableFormatter(logging.Formatter):
    """``12:00:01 WARNING [web-1] check_failed: SSH timed out (failure_count=2 ...)``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if FIELD_NAME_RE.match(k)}
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = f"{when} {record.levelname}"
        if "VM_NAME" in fields:
            head += f" [{fields['VM_NAME']}]"
        if "EVENT" in fields:
            head += f" {fields['EVENT']}:"
        text = f"{head} {record.getMessage()}"
        rest = [f"{k.lower()}={v}" for k, v in fields.items() if k not in _HIDDEN_FIELDS]
        if rest:
            text += " (" + " ".join(rest) + ")"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str, foreground: bool | None = None) -> str:
    """Route the root logger to the journal or to stderr; returns ``"journal"``/``"stderr"``.

    ``foreground=None`` decides by itself: the journal when stderr is systemd's journal
    stream, readable lines on stderr otherwise (a terminal, a pipe, a test).
    """
    use_journal = (not foreground) if foreground is not None else under_journal()
    handler: logging.Handler
    if use_journal:
        from systemd.journal import JournalHandler

        handler = JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ReadableFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return "journal" if use_journal else "stderr"
