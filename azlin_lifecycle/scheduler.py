"""Per-VM check scheduling: each VM on its own interval, never two checks at once."""

from __future__ import annotations

from collections.abc import Mapping


class Scheduler:
    def __init__(self) -> None:
        self._interval: dict[str, float] = {}
        self._next: dict[str, float] = {}
        self._running: set[str] = set()

    def sync(self, intervals: Mapping[str, float], now: float) -> None:
        """Follow the configuration: new VMs are due now, removed ones are forgotten,
        a changed interval applies from the VM's last check on."""
        for vm in list(self._interval):
            if vm not in intervals:
                del self._interval[vm]
                self._next.pop(vm, None)
        for vm, interval in intervals.items():
            old = self._interval.get(vm)
            self._interval[vm] = interval
            if vm not in self._next:
                self._next[vm] = now
            elif old is not None and old != interval:
                self._next[vm] = min(self._next[vm], self._next[vm] - old + interval)

    def due(self, now: float) -> list[str]:
        """VMs whose check is due and not already running; marks them running."""
        ready = sorted(vm for vm, t in self._next.items() if t <= now and vm not in self._running)
        self._running.update(ready)
        return ready

    def finished(self, vm: str, started: float) -> None:
        self._running.discard(vm)
        if vm in self._interval:
            self._next[vm] = started + self._interval[vm]

    def seconds_until_next(self, now: float) -> float | None:
        waiting = [t for vm, t in self._next.items() if vm not in self._running]
        return max(0.0, min(waiting) - now) if waiting else None

    def wait_budget(self, now: float, ping_every: float | None) -> float:
        """How long the loop may wait for completions: until the next VM is due, at most
        0.5 s (to notice stop, reload and config changes) and half the watchdog ping."""
        until_next = self.seconds_until_next(now)
        budget = 0.5 if until_next is None else min(0.5, until_next)
        if ping_every is not None:
            budget = min(budget, ping_every / 2)
        return max(0.01, budget)

    def running(self) -> frozenset[str]:
        return frozenset(self._running)
