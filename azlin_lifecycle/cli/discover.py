"""``enable --all`` and ``disable --all``: the ``[discovery]`` table; and what ``list`` and
``status`` show of the VMs it found (the daemon's last listing, kept in its state store:
``list`` works whether the daemon runs or not, and never asks Azure itself).

``enable --all`` checks each resource group with Azure (one GET of the group) before it
writes anything: a group that does not exist is a one-line error naming it and where it
came from, and the file stays as it was.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import click

from ..config import LifecycleConfig
from ..config.discovery import with_changes
from ..discovery import DISCOVERY, Found, merged, sources
from ..errors import LifecycleConfigError
from ..ports import AzureOperationError
from ..targets import Scope, discovery_scopes
from .context import AppContext

RESOURCE_GROUPS_API = "2021-04-01"  # Microsoft.Resources


def enable_all(app: AppContext, changes: Mapping[str, Any]) -> None:
    """Write ``[discovery]`` with ``changes`` (own keys and per-VM settings), once Azure
    confirmed its resource groups."""
    manager = app.manager()
    current = manager.load()
    wanted = dataclasses.replace(current, discovery=with_changes(
        current.discovery, "command line", enabled=True, **changes))
    scopes = discovery_scopes(wanted)
    found = check_with_azure(wanted, scopes)

    def change(cfg: LifecycleConfig) -> LifecycleConfig:
        return dataclasses.replace(cfg, discovery=with_changes(
            cfg.discovery, "command line", enabled=True, **changes))

    new = manager.update(change)
    assert new.discovery is not None
    vm = new.discovery.monitoring
    groups = ", ".join(f"{s.resource_group} (from {s.resource_group_from})" for s in scopes)
    tags = f" carrying {', '.join(new.discovery.tags)}" if new.discovery.tags else ""
    click.echo(f"Monitoring every VM{tags} in {groups}: every {vm.check_interval_seconds}s, "
               f"restart policy {vm.restart_policy.value}, threshold "
               f"{vm.ssh_failure_threshold}" + (", dry run" if vm.dry_run else ""))
    named = {name.lower() for name in new.vms}
    now = sorted(n for n in found if n.lower() not in named)
    click.echo(f"Found now: {len(now)} VM{'s' if len(now) != 1 else ''}"
               + (f" ({', '.join(now)})" if now else "")
               + "; the daemon follows VMs created or deleted later within one interval")


def disable_all(app: AppContext) -> None:
    manager = app.manager()
    if manager.load().discovery is None:
        raise LifecycleConfigError("no [discovery] to turn off; 'azlin lifecycle enable --all' "
                                   "sets one up")
    manager.update(lambda cfg: dataclasses.replace(
        cfg, discovery=with_changes(cfg.discovery, "command line", enabled=False)))
    click.echo("Discovery turned off: only the [vms.X] tables are monitored (its settings "
               "kept; 'enable --all' turns it on again)")


def check_with_azure(config: LifecycleConfig, scopes: list[Scope]) -> list[str]:
    """Ask Azure for each resource group; LifecycleConfigError naming the one that fails.
    The names of the VMs the discovery finds in them now."""
    from ..adapters.azure.compute import ArmCompute
    from ..discovery import list_found

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # its words are in our one line
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
    compute = ArmCompute(config.azure, timeout=config.daemon.azure_timeout_seconds)
    try:
        for scope in scopes:
            path = f"/subscriptions/{scope.subscription_id}/resourcegroups/{scope.resource_group}"
            try:
                compute.read_json(f"resource group {scope.resource_group}", path,
                                  {"api-version": RESOURCE_GROUPS_API})
            except AzureOperationError as exc:
                raise LifecycleConfigError(_group_problem(scope, exc)) from None
        pairs = [(s.subscription_id, s.resource_group) for s in scopes]
        try:
            return sorted(list_found(compute, config, lambda _c: pairs))
        except AzureOperationError as exc:
            raise LifecycleConfigError(f"listing the VMs failed: {exc}") from None
    finally:
        compute.close()


def _group_problem(scope: Scope, exc: AzureOperationError) -> str:
    where = (f"resource group {scope.resource_group!r} (from {scope.resource_group_from}) in "
             f"subscription {scope.subscription_id} (from {scope.subscription_from})")
    if exc.code == "ResourceGroupNotFound":
        return (f"{where} does not exist: check the name ('az group list'), or pass "
                "--resource-group RG; nothing was written")
    if exc.code == "SubscriptionNotFound":
        return (f"{where}: the subscription was not found; pass --subscription ID; nothing "
                "was written")
    return f"{where} could not be checked with Azure: {exc}; nothing was written"


# --------------------------------------------------------------------------- list, status
@dataclasses.dataclass(frozen=True)
class Discovered:
    """The daemon's last listing, as it kept it; and the configuration in force with it."""

    config: LifecycleConfig  # the file's, with the found VMs merged in
    sources: dict[str, str]  # VM -> "config", "discovery", "override"
    found: dict[str, Found]
    facts: Mapping[str, Any]  # listed_at, error, resource_groups

    def line(self) -> str | None:
        """One line on the discovery (None without one)."""
        discovery = self.config.discovery
        if discovery is None:
            return None
        if not discovery.enabled:
            return "discovery: off ('azlin lifecycle enable --all' turns it on)"
        groups = ", ".join(discovery.resource_groups) or "azlin's resource group"
        count = sum(1 for s in self.sources.values() if s == DISCOVERY)
        if not self.facts.get("listed_at"):
            text = (f"discovery: on ({groups}); no listing yet: the daemon lists the VMs "
                    "when it runs")
        else:
            text = (f"discovery: {count} VMs discovered in "
                    f"{', '.join(self.facts.get('resource_groups') or []) or groups} "
                    f"(listed {self.facts['listed_at'][:19].replace('T', ' ')} UTC)")
        if self.facts.get("error"):
            text += f"; the last listing failed: {self.facts['error']}"
        return text


def discovered(config: LifecycleConfig, facts: Mapping[str, Any]) -> Discovered:
    """``config`` with the VMs of the daemon's last listing (its ``discovery`` fact)."""
    fact = facts.get("discovery") if isinstance(facts.get("discovery"), dict) else None
    on = config.discovery is not None and config.discovery.enabled
    found_raw = (fact or {}).get("found") if on else None
    found = {str(name): Found(str(name), str(where[0]), str(where[1]))
             for name, where in (found_raw or {}).items()
             if isinstance(where, list) and len(where) == 2}
    return Discovered(merged(config, found), sources(config, found), found, fact or {})


def read_discovered(config: LifecycleConfig) -> Discovered:
    """What the daemon last found (nothing without [discovery] or a state store yet)."""
    from ..state import StateStore, default_db_path

    if config.discovery is None or not default_db_path().exists():
        return discovered(config, {})
    store = StateStore(history_size=config.daemon.history_size)
    try:
        return discovered(config, store.daemon_facts())
    finally:
        store.close()
