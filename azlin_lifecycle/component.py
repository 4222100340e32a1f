"""What HealthMonitor and SelfHealer share: a configuration, the Azure adapter and the
state store — all given by the caller (the daemon passes one set to both; tests pass
fakes; :mod:`azlin_lifecycle.wiring` builds the real ones)."""

from __future__ import annotations

from .config import LifecycleConfig
from .ports import ComputeApi
from .state import StateStore


class ConfiguredComponent:
    def __init__(self, config: LifecycleConfig, *, compute: ComputeApi,
                 store: StateStore) -> None:
        self.config = config
        self.compute = compute
        self.store = store

    def set_config(self, config: LifecycleConfig, compute: ComputeApi | None = None) -> None:
        """Use a new configuration (and, when its Azure settings changed, a new client)."""
        self.config = config
        if compute is not None:
            self.compute = compute
