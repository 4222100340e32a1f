"""Small thread-safe counters and gauges, kept by the parts that see what happens and read
by the Prometheus exporter at scrape time (:mod:`azlin_lifecycle.adapters.prometheus`).

A :class:`Tally` holds named series, each keyed by a tuple of label values; it imports
nothing, so keeping one costs a dict and a lock whether or not metrics are on.
"""

from __future__ import annotations

import threading


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, dict[tuple[str, ...], float]] = {}

    def add(self, name: str, *labels: str, amount: float = 1.0) -> None:
        """Count ``amount`` more in series ``name`` at ``labels``."""
        with self._lock:
            series = self._series.setdefault(name, {})
            series[labels] = series.get(labels, 0.0) + amount

    def set(self, name: str, *labels: str, value: float) -> None:
        """Gauge ``name`` at ``labels`` is ``value`` now."""
        with self._lock:
            self._series.setdefault(name, {})[labels] = value

    def get(self, name: str) -> dict[tuple[str, ...], float]:
        """A copy of series ``name``: label values -> value."""
        with self._lock:
            return dict(self._series.get(name, {}))

    def value(self, name: str, *labels: str) -> float:
        with self._lock:
            return self._series.get(name, {}).get(labels, 0.0)
