"""Resolve a configured VM into a :class:`VMTarget`: where it is in Azure and over SSH.

Subscription and resource group come from the VM's own table, then ``[azure]``, then
azlin's own ``~/.azlin/config.toml`` (``default_resource_group``, and
``subscription_id`` or ``default_subscription_id`` when azlin recorded one). azlin
usually records no subscription: the last resort is the Azure CLI's default one
(``isDefault`` in ``$AZURE_CONFIG_DIR/azureProfile.json``, i.e. ``az account set``).

SSH host, user and key stay None when not configured: an AddressBook resolves them.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import paths
from .config import LifecycleConfig
from .errors import LifecycleConfigError
from .models import VMTarget


@dataclass(frozen=True)
class AzlinDefaults:
    subscription_id: str | None = None
    resource_group: str | None = None


def read_azlin_defaults(path: Path | None = None) -> AzlinDefaults:
    path = path or paths.azlin_config_path()
    return _read_azlin_defaults(str(path), _mtime(path))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=4)
def _read_azlin_defaults(path: str, mtime: float) -> AzlinDefaults:
    if not mtime:
        return AzlinDefaults()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return AzlinDefaults()  # azlin's file is azlin's business; ours stays usable

    def text(*keys: str) -> str | None:
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    return AzlinDefaults(
        subscription_id=text("subscription_id", "default_subscription_id"),
        resource_group=text("default_resource_group", "resource_group"),
    )


def read_cli_subscription(path: Path | None = None) -> str | None:
    """The Azure CLI's default subscription ID, or None (no file, no default, garbled)."""
    path = path or paths.azure_profile_path()
    return _read_cli_subscription(str(path), _mtime(path))


@lru_cache(maxsize=4)
def _read_cli_subscription(path: str, mtime: float) -> str | None:
    if not mtime:
        return None
    try:  # the CLI writes this file with a UTF-8 byte order mark
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    subscriptions = data.get("subscriptions") if isinstance(data, dict) else None
    for sub in subscriptions if isinstance(subscriptions, list) else []:
        if isinstance(sub, dict) and sub.get("isDefault") is True:
            sub_id = sub.get("id")
            return sub_id.strip() if isinstance(sub_id, str) and sub_id.strip() else None
    return None


def resolve_target(
    config: LifecycleConfig, vm_name: str, defaults: AzlinDefaults | None = None
) -> VMTarget:
    vm = config.vms.get(vm_name)
    if vm is None:
        raise LifecycleConfigError(
            f"VM {vm_name!r} is not configured; add it with: azlin lifecycle enable {vm_name}"
        )
    defaults = defaults or read_azlin_defaults()
    subscription = (vm.subscription_id or config.azure.subscription_id
                    or defaults.subscription_id or read_cli_subscription())
    group = vm.resource_group or config.azure.resource_group or defaults.resource_group
    if not subscription:
        raise LifecycleConfigError(
            f"VM {vm_name!r} has no Azure subscription: set [azure] subscription_id, "
            f"'azlin lifecycle enable {vm_name} --subscription ID', or a default with "
            "'az account set --subscription ID'"
        )
    if not group:
        raise LifecycleConfigError(
            f"VM {vm_name!r} has no resource group: set [azure] resource_group, azlin's "
            f"default_resource_group, or 'azlin lifecycle enable {vm_name} --resource-group RG'"
        )
    return VMTarget(
        name=vm_name,
        subscription_id=subscription,
        resource_group=group,
        ssh_host=vm.ssh_host,
        ssh_port=vm.ssh_port,
        ssh_user=vm.ssh_user,
        ssh_key=vm.ssh_key,
        bastion_ref=vm.bastion or config.azure.bastion,
    )
