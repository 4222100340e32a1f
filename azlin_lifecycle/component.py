"""What HealthMonitor and SelfHealer share: a configuration and the adapters built from it.

Each piece is the caller's when given (tests pass fakes; the daemon passes one set to
every component) and is otherwise built on first use from the configuration file, as the
spec's argument-less constructors (``HealthMonitor()``, ``SelfHealer()``) require.
"""

from __future__ import annotations

from pathlib import Path

from .config import LifecycleConfig
from .manager import LifecycleManager
from .ports import ComputeApi
from .state import StateStore


class ConfiguredComponent:
    def __init__(
        self,
        config_path: Path | None = None,
        *,
        config: LifecycleConfig | None = None,
        compute: ComputeApi | None = None,
        store: StateStore | None = None,
    ) -> None:
        self._config_path = config_path
        self._config = config
        self._compute = compute
        self._store = store

    @property
    def config(self) -> LifecycleConfig:
        if self._config is None:
            self._config = LifecycleManager(self._config_path).load()
        return self._config

    def set_config(self, config: LifecycleConfig, compute: ComputeApi | None = None) -> None:
        """Use a new configuration (and, when its Azure settings changed, a new client)."""
        self._config = config
        if compute is not None:
            self._compute = compute

    @property
    def compute(self) -> ComputeApi:
        if self._compute is None:
            from .wiring import build_compute

            self._compute = build_compute(self.config)
        return self._compute

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(history_size=self.config.daemon.history_size)
        return self._store
