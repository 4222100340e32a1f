"""A LifecycleDaemon with its real adapters on a thread of the test process."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from azlin_lifecycle.daemon import LifecycleDaemon


@contextlib.contextmanager
def running_daemon(config_path: Path) -> Iterator[LifecycleDaemon]:
    """Start the daemon on ``config_path``; stop it (and restore logging) on exit."""
    daemon = LifecycleDaemon(config_path, foreground=True)
    thread = threading.Thread(target=daemon.start)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(30)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert not thread.is_alive(), "the daemon did not stop within 30 s"
