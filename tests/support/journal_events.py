"""The daemon's journal events as a test sees them: caught on the package's logger (the
daemon replaces the root logger's handlers when it starts)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, event: str, vm: str | None = None) -> list[logging.LogRecord]:
        """The records of one event (``EVENT``), of one VM if ``vm`` is given."""
        return [r for r in list(self.records) if getattr(r, "EVENT", None) == event
                and (vm is None or getattr(r, "VM_NAME", None) == vm)]


@contextmanager
def caught_events() -> Iterator[Events]:
    handler, logger = Events(), logging.getLogger("azlin_lifecycle")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
