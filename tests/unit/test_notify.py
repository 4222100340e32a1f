"""sd_notify over a real AF_UNIX datagram socket bound by the test."""

from __future__ import annotations

import io
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.adapters import systemd as sd


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_with_status_sends_one_datagram(notify_socket: socket.socket) -> None:
    assert sd.ready("3 VMs: 3 healthy") is True
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=3 VMs: 3 healthy"


def test_each_helper_sends_its_exact_datagram(notify_socket: socket.socket) -> None:
    assert sd.ready()
    assert sd.status("two\nlines")
    assert sd.watchdog()
    assert sd.stopping()
    got = [notify_socket.recv(4096) for _ in range(4)]
    assert got == [b"READY=1", b"STATUS=two lines", b"WATCHDOG=1", b"STOPPING=1"]


def test_reloading_carries_the_monotonic_clock(notify_socket: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sd.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = notify_socket.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    key, _, usec = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"azlin-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd.notify(STATUS="abstract")
        assert sock.recv(4096) == b"STATUS=abstract"


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd.ready("x") is False
    assert sd.watchdog() is False
    assert sd.reloading() is False
    assert sd.stopping() is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert sd.watchdog_interval() is None


def test_setup_logging_foreground_writes_readable_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azlin_lifecycle.events import Event, log_event

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert sd.setup_logging("info", foreground=True) == "stderr"
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        log_event(logging.getLogger("t"), Event.CHECK_FAILED, "SSH timed out", vm="web-1",
                  level=logging.WARNING, failure_count=2, reason="timeout")
        logging.getLogger("t").debug("hidden at INFO")
        line = stream.getvalue()
        assert "WARNING [web-1] check_failed: SSH timed out" in line
        assert "failure_count=2 reason=timeout" in line
        assert "MESSAGE_ID" not in line and "hidden" not in line
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_setup_logging_auto_uses_stderr_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert sd.setup_logging("DEBUG") == "stderr"
        assert root.level == logging.DEBUG
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")
        assert sd.setup_logging("INFO") == "stderr"
        assert sd.setup_logging("INFO", foreground=False) == "journal"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
