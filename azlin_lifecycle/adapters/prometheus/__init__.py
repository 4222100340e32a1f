"""``[metrics]``: the daemon's metrics for Prometheus, served over HTTP and/or written for
node_exporter's textfile collector.

:class:`MetricsExporter` is the switch the daemon starts and stops. While ``[metrics]``
is off it imports nothing and runs nothing: prometheus_client, the collector
(:mod:`.collector`) and the endpoint (:mod:`.serve`) are loaded by :meth:`~MetricsExporter.start`
only when ``listen`` or ``textfile`` is set. A reload that changes ``[metrics]`` stops
the old endpoint and starts the new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import paths
from ...config import LifecycleConfig, MetricsSettings

if TYPE_CHECKING:
    from ...fleet_book import FleetBook
    from ...ha_role import HaRole
    from ...state import StateStore
    from .serve import Endpoint, Textfile

log = logging.getLogger("azlin_lifecycle.metrics")


@dataclass(frozen=True)
class Sources:
    """What the collector reads: the daemon's books and the lock it changes them under,
    its state store, and its ``[ha]`` role (None: off)."""

    book: FleetBook
    lock: threading.Lock
    store: StateStore
    ha: HaRole | None = None


@dataclass
class Running:
    untap: Callable[[], None]
    endpoint: Endpoint | None
    textfile: Textfile | None


class MetricsExporter:
    """Starts, stops and reconfigures the export. The daemon's loop calls :meth:`apply`
    holding the lock a scrape may be waiting for, so a change is carried out on a thread
    of its own (one at a time, with the latest configuration), never on the caller's."""

    def __init__(self, config: LifecycleConfig, sources: Sources | None) -> None:
        """``sources``: the daemon's books and store (None: nothing to export, e.g. a
        daemon built without them)."""
        self.config = config
        self.sources = sources
        self.running: Running | None = None
        self._started = False
        self._switch = threading.Lock()  # one start, stop or restart at a time
        self._events: Any = None  # EventCounts, kept across restarts (counters go on)
        self._restarting: threading.Thread | None = None

    @property
    def settings(self) -> MetricsSettings:
        return self.config.metrics

    def start(self) -> None:
        with self._switch:
            self._started = True
            self._start()

    def stop(self) -> None:
        with self._switch:
            self._started = False
            self._stop()

    def apply(self, config: LifecycleConfig) -> None:
        """A reloaded configuration: a changed ``[metrics]`` restarts the export (on a
        thread of its own: :meth:`wait` for it)."""
        changed = config.metrics != self.config.metrics
        self.config = config
        if changed and self._started:
            self._restarting = threading.Thread(target=self._restart, name="metrics-restart",
                                                daemon=True)
            self._restarting.start()

    def wait(self, timeout: float = 10.0) -> None:
        """Until the last :meth:`apply`'s restart is done."""
        if self._restarting is not None:
            self._restarting.join(timeout)

    def _restart(self) -> None:
        with self._switch:
            self._stop()
            if self._started:
                self._start()

    def _start(self) -> None:
        settings = self.settings
        if not settings.enabled or self.sources is None or self.running is not None:
            return
        from prometheus_client.process_collector import ProcessCollector
        from prometheus_client.registry import CollectorRegistry

        from ...events import tap
        from .collector import EventCounts, FleetCollector
        from .serve import Endpoint, Textfile

        if self._events is None:
            self._events = EventCounts()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(self.sources, lambda: self.config, self._events))
        ProcessCollector(registry=registry)
        endpoint = textfile = None
        if (address := settings.address) is not None:
            try:
                endpoint = Endpoint(registry, *address)
            except OSError as exc:
                log.error("metrics: cannot listen on %s (%s); monitoring goes on without "
                          "the endpoint: set another [metrics] listen", settings.listen,
                          exc.strerror or exc)
            else:
                log.info("metrics: serving %s", endpoint.url)
        if settings.textfile is not None:
            textfile = Textfile(registry, paths.expand(settings.textfile),
                                settings.textfile_interval_seconds)
            textfile.start()
            log.info("metrics: writing %s every %ds", textfile.path,
                     settings.textfile_interval_seconds)
        self.running = Running(tap(self._events), endpoint, textfile)

    def _stop(self) -> None:
        running, self.running = self.running, None
        if running is None:
            return
        running.untap()
        if running.endpoint is not None:
            running.endpoint.close()
        if running.textfile is not None:
            running.textfile.close()
