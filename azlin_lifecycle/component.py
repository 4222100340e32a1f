"""What HealthMonitor and SelfHealer share: a configuration, the Azure adapter, the
state store and the repair ledger — all given by the caller (the daemon passes one set
to both; tests pass fakes; :mod:`azlin_lifecycle.wiring` builds the real ones). The
ledger is the state store unless several monitors share one (``[ha]``)."""

from __future__ import annotations

from .config import LifecycleConfig
from .ports import ComputeApi, RepairLedger
from .state import StateStore


class ConfiguredComponent:
    def __init__(self, config: LifecycleConfig, *, compute: ComputeApi,
                 store: StateStore, ledger: RepairLedger | None = None) -> None:
        self.config = config
        self.compute = compute
        self.store = store
        self.ledger: RepairLedger = ledger if ledger is not None else store

    def set_config(self, config: LifecycleConfig, compute: ComputeApi | None = None) -> None:
        """Use a new configuration (and, when its Azure settings changed, a new client)."""
        self.config = config
        if compute is not None:
            self.compute = compute
