"""The event vocabulary and the journal fields log_event produces."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from azlin_lifecycle.events import Event, event_fields, log_event

EXPECTED = {
    "check_ok", "check_failed", "vm_healthy", "restart_requested", "restart_succeeded",
    "restart_failed", "restart_would", "healing_held", "breaker_open", "breaker_closed",
    "power_changed", "hook_result", "config_reloaded", "config_reload_failed",
    "daemon_started", "daemon_stopping", "escalation_redeploy", "leader_elected",
    "leadership_lost", "standby", "repair_settled", "postmortem", "repair_accepted",
    "vm_discovered", "vm_gone",
}


def test_every_event_has_a_distinct_message_id() -> None:
    assert {e.event_name for e in Event} == EXPECTED
    ids = [e.message_id for e in Event]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert Event.from_name("breaker_open") is Event.BREAKER_OPEN
    with pytest.raises(ValueError):
        Event.from_name("nope")


def test_event_fields_upper_cases_and_stringifies() -> None:
    fields = event_fields(Event.HEALING_HELD, "web-1",
                          {"reason": "budget", "failure_count": 3, "dry_run": True,
                           "backoff_s": 2.5, "missing": None})
    assert fields == {
        "MESSAGE_ID": Event.HEALING_HELD.message_id, "EVENT": "healing_held",
        "VM_NAME": "web-1", "REASON": "budget", "FAILURE_COUNT": "3", "DRY_RUN": "true",
        "BACKOFF_S": "2.5",
    }
    assert "VM_NAME" not in event_fields(Event.DAEMON_STARTED, None, {})


@pytest.mark.parametrize("bad", ["message", "vm_name", "priority", "bad-name", "_x", "9x"])
def test_invalid_or_reserved_field_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        event_fields(Event.CHECK_OK, None, {bad: "1"})


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_event_puts_fields_on_the_record() -> None:
    logger = logging.getLogger("azlin.test.events")
    capture = Capture()
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        log_event(logger, Event.CHECK_FAILED, "SSH timed out", vm="web-1",
                  level=logging.WARNING, failure_count=2, health_state="failing")
    finally:
        logger.removeHandler(capture)
    (record,) = capture.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "SSH timed out"
    assert record.__dict__["VM_NAME"] == "web-1"
    assert record.__dict__["FAILURE_COUNT"] == "2"
    assert record.__dict__["HEALTH_STATE"] == "failing"
    assert record.funcName == "test_log_event_puts_fields_on_the_record"


def test_journal_handler_sends_the_fields() -> None:
    """python-systemd's JournalHandler copies record.__dict__ into the entry: check it."""
    from systemd.journal import JournalHandler

    sent: list[tuple[str, dict[str, Any]]] = []

    def sender(MESSAGE: str, **kwargs: Any) -> None:
        sent.append((MESSAGE, kwargs))

    logger = logging.getLogger("azlin.test.journal")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = JournalHandler(sender_function=sender, SYSLOG_IDENTIFIER="azlin-lifecycle")
    logger.addHandler(handler)
    try:
        log_event(logger, Event.RESTART_FAILED, "restart failed", vm="db-2",
                  level=logging.ERROR, reason="quota")
        log_event(logger, Event.CHECK_OK, "100% fine")
    finally:
        logger.removeHandler(handler)
    (message, fields) = sent[0]
    assert message == "restart failed"
    assert fields["MESSAGE_ID"] == Event.RESTART_FAILED.message_id
    assert fields["EVENT"] == "restart_failed"
    assert fields["VM_NAME"] == "db-2"
    assert fields["REASON"] == "quota"
    assert fields["PRIORITY"] == "3"
    assert fields["SYSLOG_IDENTIFIER"] == "azlin-lifecycle"
    assert "CODE_ARGS" not in fields
    assert sent[1][0] == "100% fine"
    assert sent[1][1]["EVENT"] == "check_ok"
