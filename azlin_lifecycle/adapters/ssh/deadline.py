"""Deadlines for blocking network steps.

Each step of a probe gets what is left of its deadline as its own timeout
(:func:`seconds_left`); :class:`DeadlineWatchdog` is the last resort: it closes the
connection at the deadline, so a server that stops answering mid-step cannot hold a
probe past it (plus a few milliseconds).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable


class DeadlineWatchdog:
    """One thread that runs an abort action for every probe still running at its deadline.

    ``watch`` returns a token; ``cancel(token)`` when the step is done. The thread starts
    on the first ``watch`` and ends on ``stop``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, deadline: float, action: Callable[[], None]) -> int:
        with self._cond:
            token = next(self._ids)
            self._actions[token] = action
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._run, name="ssh-probe-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][1] == token:
                self._cond.notify()
            return token

    def cancel(self, token: int) -> None:
        with self._cond:
            self._actions.pop(token, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None:
            thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    while self._heap and self._heap[0][1] not in self._actions:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, token = heapq.heappop(self._heap)
                        action = self._actions.pop(token)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            with contextlib.suppress(Exception):  # closing an already broken socket
                action()


def seconds_left(deadline: float) -> float:
    """Seconds until ``deadline`` (``time.monotonic``); a tiny positive value once it has
    passed, so a timeout derived from it never means "wait forever"."""
    return max(deadline - time.monotonic(), 0.001)
