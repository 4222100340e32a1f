"""``[discovery]`` in the daemon: the VMs found in Azure's listing, merged with the file's.

Each interval of the discovery (its ``check_interval_seconds``) the daemon lists the
discovery's resource groups — through :meth:`ComputeApi.power_states`, the status-only
listing the checks read anyway (shared for a few seconds) — off its loop
(:func:`list_found`), and hands the result to :class:`Discovery` on its loop. The
configuration in force is then :meth:`Discovery.effective`: the file's, plus every found
VM that no ``[vms.X]`` table names, with the discovery's settings. A ``[vms.X]`` table
wins: it overrides the settings of a VM the discovery also finds, or (``enabled =
false``) excludes it. Found VMs are never written to the file.

A VM newly monitored from discovery is journaled once (VM_DISCOVERED) and checked at once;
one that leaves the listing (deleted, moved, or its tags no longer match), or whose check
finds it gone from Azure, is journaled once (VM_GONE) and no longer checked: its history
stays. A listing that fails keeps the VMs found before (logged once per failure streak).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .config import LifecycleConfig, MonitoringConfig
from .config.discovery import matches, monitoring_of, parse_tag
from .events import Event, log_event
from .models import HealthStatus, VMState
from .ports import ComputeApi
from .targets import discovery_scopes

log = logging.getLogger("azlin_lifecycle.daemon")

Scopes = Callable[[LifecycleConfig], list[tuple[str, str]]]
INHERITED = ("resource_group", "subscription_id", "ssh_user", "ssh_key", "bastion")
DISCOVERY, CONFIG, OVERRIDE = "discovery", "config", "override"  # where a VM comes from


@dataclass(frozen=True)
class Found:
    """A VM a discovery found: its name as Azure spells it, and where."""

    name: str
    resource_group: str
    subscription_id: str


def list_found(compute: ComputeApi, config: LifecycleConfig,
               scopes: Scopes | None = None) -> dict[str, Found]:
    """The VMs of the discovery's resource groups (``scopes(config)``: (subscription,
    group) pairs; by default :func:`~.targets.discovery_scopes`'s) that carry all its
    tags, by name. Raises what ``compute`` and ``scopes`` raise (a listing that failed,
    no resource group)."""
    discovery = config.discovery
    if discovery is None or not discovery.enabled:
        return {}
    wanted = [parse_tag(tag) for tag in discovery.tags]
    found: dict[str, Found] = {}
    for subscription, group in (scopes or _scopes)(config):
        listing = compute.power_states(subscription, group)
        for key, info in sorted(listing.items()):
            name = info.name or key
            if matches(dict(info.tags), wanted) and name.lower() not in found:
                found[name.lower()] = Found(name, group, subscription)
    return {f.name: f for f in found.values()}


def _scopes(config: LifecycleConfig) -> list[tuple[str, str]]:
    return [(s.subscription_id, s.resource_group) for s in discovery_scopes(config)]


def merged(config: LifecycleConfig, found: Mapping[str, Found]) -> LifecycleConfig:
    """``config`` with each found VM no ``[vms.X]`` names (case-insensitively) added with
    the discovery's settings where it was found. A ``[vms.X]`` table of a found VM keeps
    what it sets; what it leaves unset (the keys without a default: resource group,
    subscription, SSH user and key, Bastion; and hooks, when it has none) is the
    discovery's, where the VM was found."""
    discovery = config.discovery
    if discovery is None or not discovery.enabled or not found:
        return config
    by_lower = {name.lower(): where for name, where in found.items()}
    named = {name.lower() for name in config.vms}
    vms: dict[str, MonitoringConfig] = {}
    for name, vm in config.vms.items():
        where = by_lower.get(name.lower())
        vms[name] = vm if where is None else _overridden(
            vm, monitoring_of(discovery, where.resource_group, where.subscription_id))
    for name, where in found.items():
        if name.lower() not in named:
            vms[name] = monitoring_of(discovery, where.resource_group, where.subscription_id)
    return dataclasses.replace(config, vms=vms)


def _overridden(table: MonitoringConfig, found: MonitoringConfig) -> MonitoringConfig:
    unset = {key: getattr(found, key) for key in INHERITED if getattr(table, key) is None}
    if not table.hooks:
        unset["hooks"] = found.hooks
    return table.replace(**unset) if unset else table


def sources(config: LifecycleConfig, found: Mapping[str, Found]) -> dict[str, str]:
    """Where each VM of ``merged(config, found)`` comes from: "config" (a [vms.X] table),
    "discovery" (found only), "override" (a [vms.X] table of a VM also found)."""
    seen = {name.lower() for name in found}
    out = {name: OVERRIDE if name.lower() in seen else CONFIG for name in config.vms}
    named = {name.lower() for name in config.vms}
    out.update({name: DISCOVERY for name in found if name.lower() not in named})
    return out


class Discovery:
    """The daemon's found VMs, between listings. Used on the daemon's loop only."""

    def __init__(self) -> None:
        self.found: dict[str, Found] = {}
        self.next_due = 0.0  # monotonic
        self.listing = False  # a listing is under way
        self.error: str | None = None  # the last listing's failure, if it failed
        self.listed_at: dt.datetime | None = None

    @classmethod
    def resumed(cls, config: LifecycleConfig, facts: Mapping[str, object]) -> Discovery:
        """A daemon starts: what the last one found (its ``discovery`` fact), until the
        first listing confirms it; so a restart announces changes, not every VM again."""
        book = cls()
        fact = facts.get("discovery")
        on = config.discovery is not None and config.discovery.enabled
        if not on or not isinstance(fact, dict) or not isinstance(fact.get("found"), dict):
            return book
        for name, where in fact["found"].items():
            if isinstance(where, list) and len(where) == 2:
                book.found[str(name)] = Found(str(name), str(where[0]), str(where[1]))
        try:
            book.listed_at = dt.datetime.fromisoformat(str(fact.get("listed_at")))
        except ValueError:
            book.listed_at = None  # unknown: checks wait for the first listing
        return book

    def due(self, config: LifecycleConfig, now: float) -> bool:
        """Whether to list now (and, if so, note that a listing is under way)."""
        on = config.discovery is not None and config.discovery.enabled
        if not on or self.listing or now < self.next_due:
            return False
        self.listing = True
        return True

    def poll(self, config: LifecycleConfig, now: float, compute: ComputeApi,
             aside: Callable[[str, object, Callable[[], object]], None]) -> bool:
        """When a listing is due, start one off the loop (``aside``: the loop's
        CheckRunner.aside; it completes as ("discovery", now, found or the exception)).
        Whether checks may go ahead: not while the first listing is under way (a [vms.X]
        table of a found VM takes what it leaves unset from where the VM was found)."""
        if self.due(config, now):
            aside("discovery", now, lambda: list_found(compute, config))
        return not (self.listing and self.listed_at is None and self.error is None)

    def retune(self, old: LifecycleConfig, new: LifecycleConfig) -> None:
        """A reload: a changed [discovery] lists again at once; one turned off forgets."""
        if new.discovery != old.discovery:
            self.next_due = 0.0
        if new.discovery is None or not new.discovery.enabled:
            if self.found:
                log.info("[discovery] is off: %d discovered VMs are no longer monitored",
                         len(self.monitored(new)))
            self.found = {}

    def listed(self, config: LifecycleConfig, outcome: object, started: float) -> bool:
        """A listing is in (a dict of Found, or the exception it raised): journal the VMs
        newly monitored and those gone. Whether the VMs monitored changed."""
        self.listing = False
        if config.discovery is None or not config.discovery.enabled:
            return False  # turned off while it listed: what it found is not wanted
        self.next_due = started + config.discovery.monitoring.check_interval_seconds
        if not isinstance(outcome, dict):
            text = str(outcome) or type(outcome).__name__
            if text != self.error:
                log.warning("[discovery]: listing the VMs failed (the VMs found before stay "
                            "monitored): %s", text)
            self.error = text
            return False
        self.error, self.listed_at = None, dt.datetime.now(dt.UTC)
        before = self.monitored(config)
        self.found = dict(outcome)
        after = self.monitored(config)
        for name in sorted(set(after) - set(before)):
            where = after[name]
            log_event(log, Event.VM_DISCOVERED, f"{name}: discovered in resource group "
                      f"{where.resource_group}; monitored with the [discovery] settings",
                      vm=name, resource_group=where.resource_group)
        for name in sorted(set(before) - set(after)):
            self._gone(name, before[name], "no longer in Azure's listing of its resource "
                       "group (deleted, moved, or its tags no longer match)")
        return before != after  # a VM moved to another group counts too

    def vanished(self, config: LifecycleConfig, status: HealthStatus) -> bool:
        """A check found a VM monitored from discovery gone from Azure: drop it (one
        VM_GONE), rather than report a failed check. Whether it was dropped."""
        where = self.monitored(config).get(status.vm_name)
        if where is None or status.state is not VMState.NOT_FOUND:
            return False
        del self.found[status.vm_name]
        self._gone(status.vm_name, where, f"gone from Azure ({status.reason})")
        return True

    def monitored(self, config: LifecycleConfig) -> dict[str, Found]:
        """The found VMs monitored with the discovery's settings (no [vms.X] names them)."""
        named = {name.lower() for name in config.vms}
        return {n: f for n, f in self.found.items() if n.lower() not in named}

    def fact(self, config: LifecycleConfig) -> dict[str, object]:
        """What ``list`` and ``status`` show, kept in the state store."""
        return {"found": {n: [f.resource_group, f.subscription_id]
                          for n, f in self.found.items()},
                "sources": sources(config, self.found), "error": self.error,
                "resource_groups": sorted({f.resource_group for f in self.found.values()}),
                "listed_at": self.listed_at.isoformat() if self.listed_at else None}

    @staticmethod
    def _gone(name: str, where: Found, why: str) -> None:
        log_event(log, Event.VM_GONE, f"{name}: {why}; no longer monitored (its history is "
                  "kept)", vm=name, resource_group=where.resource_group)
