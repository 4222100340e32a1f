"""The composition root: the real adapters, built from the configuration.

Domain classes never build adapters: they take them as arguments. This module builds the
real ones, and gives the spec's argument-less ``HealthMonitor()``, ``SelfHealer()`` and
``HookExecutor()`` (re-exported by :mod:`azlin_lifecycle` under those names). Adapter
libraries are imported inside the builders, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import DEFAULT_ARM_ENDPOINT, HaCredential, HookSettings, LifecycleConfig
from .errors import LifecycleConfigError
from .manager import LifecycleManager
from .ports import (
    AddressBook,
    AzureSignals,
    ComputeApi,
    HookRunner,
    LeaseStore,
    SshProber,
    TunnelOpener,
)
from .state import StateStore

if TYPE_CHECKING:
    from . import healing, health, hooks
    from .adapters.prometheus import MetricsExporter
    from .fleet_book import FleetBook
    from .ha_role import HaRole
    from .leadership import LeadershipView
    from .models import RepairRecord

log = logging.getLogger(__name__)


def load_adapter_libraries(ha: bool = False) -> None:
    """Import what the real Azure and SSH adapters load on first use, so a daemon pays for
    it (~0.5 s of CPU) before it reports ready rather than inside its first sweep."""
    import importlib
    import sys

    # paramiko imports invoke (a task runner; ~3 MB with what it imports) only to
    # run `Match exec` lines of ~/.ssh/config, which the SSH adapter never reads. None in
    # sys.modules makes that optional import fail at once, a case paramiko handles.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    names = ["azure.identity", "azure.mgmt.core", "requests", "paramiko", "websocket"]
    for name in names + (["azure.storage.blob"] if ha else []):
        importlib.import_module(name)


def build_compute(config: LifecycleConfig) -> ComputeApi:
    from .adapters.azure.compute import ArmCompute

    return ArmCompute(config.azure, timeout=config.daemon.azure_timeout_seconds,
                      polling_interval=config.healing.operation_poll_seconds)


def build_signals(compute: ComputeApi) -> AzureSignals | None:
    """Resource Health and boot diagnostics through ``compute``'s ARM pipeline (an
    ArmCompute); None for another ComputeApi (a fake: decided as without them)."""
    from .adapters.azure.compute import ArmCompute
    from .adapters.azure.platform import ArmSignals

    return ArmSignals(compute) if isinstance(compute, ArmCompute) else None


def build_ssh(config: LifecycleConfig, compute: ComputeApi | None = None) -> SshProber:
    """The SSH prober, with the tunnel opener for VMs behind an Azure Bastion."""
    from .adapters.ssh.prober import ParamikoSshProber

    return ParamikoSshProber(connect_timeout=config.daemon.ssh_timeout_seconds,
                             max_open=config.daemon.max_open_ssh_connections,
                             tunnels=build_tunnels(config, compute))


def build_tunnels(config: LifecycleConfig, compute: ComputeApi | None = None) -> TunnelOpener:
    """Bastion tunnels with the ``[azure]`` login (its ARM token) and TLS trust
    (``ca_bundle``, else REQUESTS_CA_BUNDLE, else the system's), as ArmCompute has them:
    with ``compute``'s own token cache when it is the ArmCompute of this ``[azure]`` (one
    login, one token for both), else a cache of their own. Nothing is asked of Azure until
    a tunnel is opened."""
    from .adapters.azure.compute import ArmCompute
    from .adapters.azure.login import SharedTokenCache, build_credential, credential_scope
    from .adapters.bastion.tunnel import BastionTunnels

    azure = config.azure
    if isinstance(compute, ArmCompute) and compute.settings == azure:
        credential = compute.credential()
    else:
        seconds = max(1, math.ceil(min(config.daemon.azure_timeout_seconds, 10.0)))
        credential = SharedTokenCache(build_credential(azure, seconds))
    endpoint = (azure.arm_endpoint or DEFAULT_ARM_ENDPOINT).rstrip("/")
    return BastionTunnels(credential, credential_scope(endpoint), ca_bundle=azure.ca_bundle)


def build_address_book(config: LifecycleConfig, compute: ComputeApi) -> AddressBook:
    """Addresses from Azure through ``compute``'s ARM pipeline (an ArmCompute)."""
    from .adapters.azure.network import PRIVATE_CONNECT_TIMEOUT, ArmAddressBook, JsonReader

    if not isinstance(compute, JsonReader):
        raise TypeError(f"{type(compute).__name__} cannot read ARM resources: pass an "
                        "AddressBook of your own, or the Azure adapter")
    return ArmAddressBook(compute, private_connect_timeout=min(
        PRIVATE_CONNECT_TIMEOUT, config.daemon.ssh_timeout_seconds))


def build_lease_store(config: LifecycleConfig) -> LeaseStore:
    """The lease blob of ``[ha]``, reached with Azurite's published key (loopback only,
    checked on load) or the ``[azure]`` credential."""
    from .adapters.blob_lease import AZURITE_CREDENTIAL, BlobLeaseStore

    ha = config.ha
    # One deadline per call: a renewal sent at a third of the lease fails by two thirds.
    timeout = max(2.0, ha.lease_seconds / 6)
    if ha.credential is HaCredential.AZURITE:
        return BlobLeaseStore(ha, AZURITE_CREDENTIAL, timeout=timeout)
    from .adapters.azure.login import SharedTokenCache, build_credential

    return BlobLeaseStore(ha, SharedTokenCache(build_credential(config.azure)), timeout=timeout,
                          login=config.azure.credential)


def build_hooks(config: LifecycleConfig,
                hooks_of: Callable[[str], Mapping[str, str]]) -> HookRunner:
    from .hooks import HookExecutor

    return HookExecutor(hooks_of, config.hooks)


# --------------------------------------------------------------------------- the daemon's parts
@dataclass(frozen=True)
class DaemonParts:
    monitor: health.HealthMonitor
    healer: healing.SelfHealer
    hooks: HookRunner  # with [ha]: runs hooks only while this daemon leads
    ha: HaRole | None  # None: [ha] is off, the daemon acts alone
    metrics: MetricsExporter  # [metrics]: the daemon starts and stops it; idle while off


def build_daemon_parts(
    config: LifecycleConfig, store: StateStore, *,
    compute: ComputeApi | None, ssh: SshProber | None, addresses: AddressBook | None,
    hooks: HookRunner | None, hooks_of: Callable[[str], Mapping[str, str]],
    on_leadership: Callable[[LeadershipView], None],
    on_interrupted: Callable[[list[RepairRecord]], None],
    books: tuple[FleetBook, threading.Lock] | None = None,
) -> DaemonParts:
    """The daemon's components, with the adapters it was given or else the real ones.
    Real hooks read each VM's targets through ``hooks_of`` when they run (reloads apply).
    ``books``: the daemon's FleetBook and the lock it changes it under, for [metrics]."""
    from .adapters.prometheus import MetricsExporter, Sources
    from .healing import SelfHealer as Healer
    from .health import HealthMonitor as Monitor

    if hooks is None:
        hooks = build_hooks(config, hooks_of)
    if compute is None or ssh is None or config.ha.enabled:
        load_adapter_libraries(ha=config.ha.enabled)
    ha, ledger = None, None
    if config.ha.enabled:
        from .ha_role import HaRole

        ha = HaRole(build_lease_store(config), config, store, hooks,
                    on_change=on_leadership, on_interrupted=on_interrupted)
        hooks, ledger = ha.hooks, ha.ledger
    compute = compute or build_compute(config)
    monitor = Monitor(config, compute=compute, ssh=ssh or build_ssh(config, compute),
                      addresses=addresses or build_address_book(config, compute),
                      store=store, ledger=ledger)
    healer = Healer(config, compute=compute, store=store, hooks=hooks, ledger=ledger,
                    on_repaired=monitor.repaired, signals=build_signals(compute))
    metrics = MetricsExporter(config, None if books is None else Sources(*books, store, ha))
    return DaemonParts(monitor, healer, hooks, ha, metrics)


def reconfigure(parts: DaemonParts, old: LifecycleConfig, new: LifecycleConfig, *,
                own_compute: bool, own_addresses: bool, own_ssh: bool) -> None:
    """Apply a reloaded configuration to the daemon's components. A new ``[azure]`` gets a
    new Azure adapter (endpoint or credential changed) and new Bastion tunnels (login, CA)
    unless the daemon was given its own; connections open now keep theirs until they end."""
    if new.ha != old.ha:
        log.warning("[ha] changed; the change takes effect when the daemon restarts "
                    "(systemctl --user restart azlin-lifecycle)")
    compute = None
    if new.azure != old.azure and own_compute:
        compute = build_compute(new)
        if own_addresses:
            parts.monitor.addresses = build_address_book(new, compute)
    if new.azure != old.azure and own_ssh:
        from .adapters.ssh.prober import ParamikoSshProber

        if isinstance(parts.monitor.ssh, ParamikoSshProber):
            parts.monitor.ssh.tunnels = build_tunnels(new, compute)
    parts.monitor.set_config(new, compute)
    parts.healer.set_config(new, compute)
    if compute is not None:
        parts.healer.signals = build_signals(compute)
    parts.hooks.apply_settings(new.hooks)  # timeouts and retries apply at once
    parts.metrics.apply(new)  # a changed [metrics] restarts the endpoint
    logging.getLogger().setLevel(new.daemon.log_level.value)


# --------------------------------------------------------------------------- the spec's names
def monitor_for(config: LifecycleConfig,
                store: StateStore | None = None) -> health.HealthMonitor:
    """A HealthMonitor of ``config`` with the real Azure, SSH and address adapters."""
    from .health import HealthMonitor as Monitor

    compute = build_compute(config)
    return Monitor(config, compute=compute, ssh=build_ssh(config, compute),
                   addresses=build_address_book(config, compute),
                   store=store or StateStore(history_size=config.daemon.history_size))


def HealthMonitor(config_path: Path | None = None) -> health.HealthMonitor:
    """The spec's ``HealthMonitor()``: the real adapters, from the configuration file
    (``config_path``, else the default)."""
    return monitor_for(LifecycleManager(config_path).load())


def SelfHealer(config_path: Path | None = None) -> healing.SelfHealer:
    """The spec's ``SelfHealer()``: the real Azure adapter and hooks, from the config file."""
    from .healing import SelfHealer as Healer

    config = LifecycleManager(config_path).load()
    compute = build_compute(config)
    return Healer(config, compute=compute,
                  store=StateStore(history_size=config.daemon.history_size),
                  hooks=build_hooks(config, config.hooks_of), signals=build_signals(compute))


def HookExecutor(config_path: Path | None = None) -> hooks.HookExecutor:
    """The spec's ``HookExecutor()``: each VM's hooks read from the config file when a hook
    runs. A broken file does not stop it (validating a script needs no config): the
    ``[hooks]`` settings then fall back to their defaults, with a warning."""
    from .hooks import HookExecutor as Executor

    manager = LifecycleManager(config_path)
    try:
        settings = manager.load().hooks
    except LifecycleConfigError as exc:
        log.warning("%s; using the default [hooks] settings", exc)
        settings = HookSettings()

    return Executor(lambda vm_name: manager.load().hooks_of(vm_name), settings)
