"""Waiting for a condition in tests, with a bound and a message that says what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "the condition",
             every: float = 0.02) -> float:
    """Poll ``cond`` until it holds; the seconds that took. AssertionError after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
