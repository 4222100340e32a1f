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
from collections.abc import Callable
from contextlib import AbstractContextManager
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
    lock: AbstractContextManager[Any]
    store: StateStore
    ha: HaRole | None = None


@dataclass
class Running:
    untap: Callable[[], None]
    endpoint: Endpoint | None
    textfile: Textfile | None


class MetricsExporter:
    def __init__(self, config: LifecycleConfig, sources: Sources | None) -> None:
        """``sources``: the daemon's books and store (None: nothing to export, e.g. a
        daemon built without them)."""
        self.config = config
        self.sources = sources
        self.running: Running | None = None
        self._started = False

    @property
    def settings(self) -> MetricsSettings:
        return self.config.metrics

    def start(self) -> None:
        self._started = True
        settings = self.settings
        if not settings.enabled or self.sources is None or self.running is not None:
            return
        from prometheus_client.process_collector import ProcessCollector
        from prometheus_client.registry import CollectorRegistry

        from ...events import tap
        from .collector import EventCounts, FleetCollector
        from .serve import Endpoint, Textfile

        events = EventCounts()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(self.sources, lambda: self.config, events))
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
        self.running = Running(tap(events), endpoint, textfile)

    def stop(self) -> None:
        self._started = False
        running, self.running = self.running, None
        if running is None:
            return
        running.untap()
        if running.endpoint is not None:
            running.endpoint.close()
        if running.textfile is not None:
            running.textfile.close()

    def apply(self, config: LifecycleConfig) -> None:
        """A reloaded configuration: a changed ``[metrics]`` restarts the export."""
        changed = config.metrics != self.config.metrics
        self.config = config
        if changed and self._started:
            self.stop()
            self.start()
