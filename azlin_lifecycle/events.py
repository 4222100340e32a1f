"""The daemon's event vocabulary: one journal entry per event, with stable fields.

Every event type has a fixed ``MESSAGE_ID`` (``journalctl MESSAGE_ID=...`` finds all
entries of one kind, and a journal catalog can explain it). :func:`log_event` logs
through the standard :mod:`logging` module; the journal fields travel in ``extra``,
upper-cased, and :class:`systemd.journal.JournalHandler` sends every upper-case
record attribute as a journal field (it copies ``record.__dict__`` into the entry).
A :func:`tap` sees every event with its fields whatever the log level (the Prometheus
exporter counts holds and hook runs this way).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

FIELD_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# Set by log_event itself or by logging/journald; a caller's field may not replace them.
RESERVED_FIELDS = frozenset(
    {"MESSAGE", "MESSAGE_ID", "EVENT", "VM_NAME", "PRIORITY", "SYSLOG_IDENTIFIER",
     "LOGGER", "THREAD_NAME", "PROCESS_NAME", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
     "CODE_ARGS", "EXCEPTION_TEXT", "EXCEPTION_INFO"}
)


class Event(enum.Enum):
    """Event types; the value is ``(name, MESSAGE_ID)``."""

    CHECK_OK = ("check_ok", "b3e376e395774ab89548009cd5429be0")
    CHECK_FAILED = ("check_failed", "d2812c76357c489bab0d039c78ba45d2")
    VM_HEALTHY = ("vm_healthy", "cb5b8d33d181468d98d8dde7d1485434")
    RESTART_REQUESTED = ("restart_requested", "5daf361345894519aedaf1c86527cfbe")
    RESTART_SUCCEEDED = ("restart_succeeded", "fc2d120db24047909904e91b7760c886")
    RESTART_FAILED = ("restart_failed", "3249b5c507dd4d42beac7439f9913592")
    RESTART_WOULD = ("restart_would", "ca4e6773e6f14491951d3d0e54ae1d74")
    HEALING_HELD = ("healing_held", "4aedcce3c59941f0a68f44658d1a1046")
    BREAKER_OPEN = ("breaker_open", "9a8307b8d2bc47c2a26d58c9e3329bad")
    BREAKER_CLOSED = ("breaker_closed", "2332e0a015cd4449885c353dfa2e5902")
    POWER_CHANGED = ("power_changed", "2b966e3c8d084b59ac446852f879f3b0")
    HOOK_RESULT = ("hook_result", "a7f73c1345f64d0c9e3f4664be1112bc")
    CONFIG_RELOADED = ("config_reloaded", "4fa0e17ccd394360a7d357ce7fcd19aa")
    CONFIG_RELOAD_FAILED = ("config_reload_failed", "4f333abd97724c05abf173c167bbcfa3")
    DAEMON_STARTED = ("daemon_started", "4ca4b1f6e34b483389358c4cd4b48cee")
    DAEMON_STOPPING = ("daemon_stopping", "2936ec43273640bf89d2a0c2a2766060")
    ESCALATION_REDEPLOY = ("escalation_redeploy", "969753fa8a714ad099e346742feb686e")
    LEADER_ELECTED = ("leader_elected", "722fc175fff54d6da80f9dbdb0146132")
    LEADERSHIP_LOST = ("leadership_lost", "712502ac342543508f1bde88753cec86")
    STANDBY = ("standby", "7265362b16b44949b44be84fcc0c9095")
    REPAIR_SETTLED = ("repair_settled", "7edb52cb22264737b514203876767ab8")
    POSTMORTEM = ("postmortem", "faef4615b98e47bc94dc12f99517ffd8")
    REPAIR_ACCEPTED = ("repair_accepted", "6907e61b37a74ab7aab9652f97c79241")
    VM_DISCOVERED = ("vm_discovered", "a3f944a163a54505b621b21b09828338")
    VM_GONE = ("vm_gone", "4022af26d9cd46208d4b0ab14e20bc88")

    @property
    def event_name(self) -> str:
        """The ``EVENT=`` field value, e.g. ``check_failed``."""
        return self.value[0]

    @property
    def message_id(self) -> str:
        """The ``MESSAGE_ID=`` field value: 32 lower-case hex digits."""
        return self.value[1]

    @classmethod
    def from_name(cls, name: str) -> Event:
        for event in cls:
            if event.event_name == name:
                return event
        raise ValueError(f"unknown event {name!r}")


def field_value(value: Any) -> str:
    """How a Python value is written into a journal field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def event_fields(event: Event, vm: str | None, fields: Mapping[str, Any]) -> dict[str, str]:
    """The journal fields of one event (``None`` values are left out)."""
    out = {"MESSAGE_ID": event.message_id, "EVENT": event.event_name}
    if vm is not None:
        out["VM_NAME"] = vm
    for key, value in fields.items():
        name = key.upper()
        if not FIELD_NAME_RE.match(name):
            raise ValueError(f"{key!r} cannot be a journal field name")
        if name in RESERVED_FIELDS:
            raise ValueError(f"{key!r} is set by log_event itself")
        if value is not None:
            out[name] = field_value(value)
    return out


def log_event(
    logger: logging.Logger,
    event: Event,
    message: str,
    *,
    vm: str | None = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one event: ``message`` plus MESSAGE_ID, EVENT, VM_NAME and ``fields`` upper-cased.

    ``log_event(log, Event.CHECK_FAILED, "SSH timed out", vm="web-1", failure_count=2)``
    gives a journal entry with ``VM_NAME=web-1``, ``EVENT=check_failed``,
    ``FAILURE_COUNT=2`` and the event's ``MESSAGE_ID``.
    """
    extra = event_fields(event, vm, fields)
    for seen in _TAPS:
        with contextlib.suppress(Exception):  # counting an event never stops it being told
            seen(event, extra)
    logger.log(level, message, extra=extra, stacklevel=2)


EventTap = Callable[[Event, Mapping[str, str]], None]
_TAPS: tuple[EventTap, ...] = ()  # replaced, never changed in place: read without a lock


def tap(seen: EventTap) -> Callable[[], None]:
    """Call ``seen(event, fields)`` for every event logged from now on, on the thread that
    logs it (it must be quick; what it raises is ignored); returns what removes the tap."""
    global _TAPS
    _TAPS = (*_TAPS, seen)

    def untap() -> None:
        global _TAPS
        _TAPS = tuple(t for t in _TAPS if t is not seen)

    return untap


NOISY_LIBRARIES = ("azure", "urllib3", "msal")


def quiet_libraries() -> None:
    """Keep the SDKs' per-request and per-connection chatter out of the journal.

    At INFO the Azure SDK logs every HTTP request with its headers and paramiko every
    connection; the daemon's own events already say what matters.
    """
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    # paramiko logs every connection reset (a VM rebooting) at ERROR from its own thread;
    # the SSH adapter turns every failure into a check's reason, so its logs add nothing.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
