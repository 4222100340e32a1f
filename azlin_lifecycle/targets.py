"""Resolve a configured VM into a :class:`VMTarget`: where it is in Azure and over SSH.

Each of subscription and resource group is the first one set of (our explicit settings
win over azlin's, which win over the Azure CLI's):

=================  ===========================================================
subscription       ``[vms.X] subscription_id``, ``[azure] subscription_id``, azlin's
                   selected context's ``subscription_id``, the Azure CLI's default
                   subscription (``az account set``)
resource group     ``[vms.X] resource_group``, ``[azure] resource_group``, azlin's
                   selected context's ``resource_group``, ``default_resource_group``
                   in azlin's ``config.toml``
=================  ===========================================================

and the target says where each came from (``subscription_from``,
``resource_group_from``) so that an Azure answer "not found" can name the place to fix.
azlin's files are read by :mod:`azlin_lifecycle.azlin_settings`; a selected context
that cannot be read is an error, never a silent fallback.

The Azure CLI's default subscription is read from ``azureProfile.json`` (``isDefault``,
under ``$AZURE_CONFIG_DIR`` or ``~/.azure``), not by running ``az account show``:
that command reads the same file, but costs a Python start-up (~0.5 s) per call, needs
``az`` on the service's PATH, and is not there at all for ``credential =
"managed_identity"``. The file is read again whenever it changes.

SSH host, user and key stay None when not configured: an AddressBook resolves them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import paths
from .azlin_settings import AzlinSettings, read_azlin_settings
from .config import LifecycleConfig
from .errors import LifecycleConfigError
from .models import VMTarget

CLI_DEFAULT = "the Azure CLI's default subscription, see az account show"


@dataclass(frozen=True)
class Setting:
    """A value and where it was set, in words ("[azure]", "azlin context prod, <file>")."""

    value: str
    origin: str


def first(*candidates: tuple[str | None, str]) -> Setting | None:
    """The first (value, origin) whose value is set."""
    for value, origin in candidates:
        if value:
            return Setting(value, origin)
    return None


def choose_subscription(config: LifecycleConfig, vm_name: str, azlin: AzlinSettings,
                        cli_default: str | None) -> Setting | None:
    vm = config.vms[vm_name]
    ctx = azlin.context
    return first((vm.subscription_id, f"[vms.{vm_name}]"),
                 (config.azure.subscription_id, "[azure]"),
                 (ctx.subscription_id if ctx else None, _context_origin(azlin)),
                 (cli_default, CLI_DEFAULT))


def choose_resource_group(config: LifecycleConfig, vm_name: str,
                          azlin: AzlinSettings) -> Setting | None:
    vm = config.vms[vm_name]
    ctx = azlin.context
    return first((vm.resource_group, f"[vms.{vm_name}]"),
                 (config.azure.resource_group, "[azure]"),
                 (ctx.resource_group if ctx else None, _context_origin(azlin)),
                 (azlin.default_resource_group,
                  f"azlin's default_resource_group, {azlin.config_path}"))


def _context_origin(azlin: AzlinSettings) -> str:
    ctx = azlin.context
    return "" if ctx is None else f"azlin context {ctx.name}, {ctx.path}"


def resolve_target(config: LifecycleConfig, vm_name: str, azlin: AzlinSettings | None = None,
                   cli_default: str | None = None) -> VMTarget:
    """``vm_name``'s target. ``azlin`` and ``cli_default`` are read from their files when
    not given."""
    vm = config.vms.get(vm_name)
    if vm is None:
        raise LifecycleConfigError(
            f"VM {vm_name!r} is not configured; add it with: azlin lifecycle enable {vm_name}"
        )
    azlin = azlin if azlin is not None else read_azlin_settings()
    if cli_default is None:
        cli_default = read_cli_subscription()
    subscription = choose_subscription(config, vm_name, azlin, cli_default)
    group = choose_resource_group(config, vm_name, azlin)
    if subscription is None:
        raise LifecycleConfigError(
            f"VM {vm_name!r} has no Azure subscription: set [azure] subscription_id, "
            f"'azlin lifecycle enable {vm_name} --subscription ID', an azlin context with "
            "one ('azlin context use NAME'), or a default with 'az account set --subscription ID'"
        )
    if group is None:
        unreadable = (f"; azlin's {azlin.config_path} {azlin.config_problem}"
                      if azlin.config_problem else "")
        raise LifecycleConfigError(
            f"VM {vm_name!r} has no resource group: set [azure] resource_group, "
            f"'azlin lifecycle enable {vm_name} --resource-group RG', an azlin context with "
            f"one, or azlin's default_resource_group{unreadable}"
        )
    return VMTarget(
        name=vm_name,
        subscription_id=subscription.value,
        resource_group=group.value,
        ssh_host=vm.ssh_host,
        ssh_port=vm.ssh_port,
        ssh_user=vm.ssh_user,
        ssh_key=vm.ssh_key,
        subscription_from=subscription.origin,
        resource_group_from=group.origin,
        bastion_ref=vm.bastion or config.azure.bastion,
    )


# --------------------------------------------------------------------------- the Azure CLI
def parse_cli_profile(text: str) -> str | None:
    """The default subscription's ID in the Azure CLI's ``azureProfile.json`` content."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    subscriptions = data.get("subscriptions") if isinstance(data, dict) else None
    for sub in subscriptions if isinstance(subscriptions, list) else []:
        if isinstance(sub, dict) and sub.get("isDefault") is True:
            sub_id = sub.get("id")
            return sub_id.strip() if isinstance(sub_id, str) and sub_id.strip() else None
    return None


def read_cli_subscription(path: Path | None = None) -> str | None:
    """The Azure CLI's default subscription ID, or None (no file, no default, garbled)."""
    path = path or paths.azure_profile_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _read_cli_subscription(str(path), mtime)


@lru_cache(maxsize=4)
def _read_cli_subscription(path: str, mtime: int) -> str | None:
    try:  # the CLI writes this file with a UTF-8 byte order mark
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    return parse_cli_profile(text)


# --------------------------------------------------------------------------- [discovery]
@dataclass(frozen=True)
class Scope:
    """Where ``[discovery]`` looks: a resource group of a subscription, and where each
    came from (for an error that names the place to fix)."""

    subscription_id: str
    resource_group: str
    subscription_from: str
    resource_group_from: str


def discovery_scopes(config: LifecycleConfig, azlin: AzlinSettings | None = None,
                     cli_default: str | None = None) -> list[Scope]:
    """The resource groups ``[discovery]`` lists: its own ``resource_groups``, else the one
    a VM that sets none is checked in ([azure], azlin's context, azlin's
    default_resource_group); the subscription likewise. LifecycleConfigError if none."""
    discovery = config.discovery
    if discovery is None:
        return []
    azlin = azlin if azlin is not None else read_azlin_settings()
    if cli_default is None:
        cli_default = read_cli_subscription()
    ctx = azlin.context
    subscription = first((discovery.subscription_id, "[discovery]"),
                         (config.azure.subscription_id, "[azure]"),
                         (ctx.subscription_id if ctx else None, _context_origin(azlin)),
                         (cli_default, CLI_DEFAULT))
    if discovery.resource_groups:
        groups = [Setting(rg, "[discovery] resource_groups")
                  for rg in discovery.resource_groups]
    else:
        group = first((config.azure.resource_group, "[azure]"),
                      (ctx.resource_group if ctx else None, _context_origin(azlin)),
                      (azlin.default_resource_group,
                       f"azlin's default_resource_group, {azlin.config_path}"))
        groups = [] if group is None else [group]
    if subscription is None:
        raise LifecycleConfigError(
            "[discovery] has no Azure subscription: set --subscription, [azure] "
            "subscription_id, an azlin context with one, or 'az account set --subscription ID'")
    if not groups:
        raise LifecycleConfigError(
            "[discovery] has no resource group: pass --resource-group RG, set [azure] "
            "resource_group, an azlin context with one, or azlin's default_resource_group")
    return [Scope(subscription.value, g.value, subscription.origin, g.origin) for g in groups]
