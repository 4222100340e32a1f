"""The ``[discovery]`` table: which VMs are found in Azure rather than listed one by one.

::

    [discovery]
    enabled = true
    resource_groups = ["rg-dev"]          # empty or absent: azlin's resource group
    tags = ["azlin-session", "env=dev"]   # a VM must carry all of them
    restart_policy = "on-failure"         # and the other per-VM settings below
    [discovery.hooks]
    on_failure = "/usr/local/bin/alert"

A tag filter is ``KEY`` (the VM carries the tag, whatever its value) or ``KEY=VALUE``,
split at the first ``=``: ``a=b=c`` is tag ``a`` with value ``b=c`` (Azure allows ``=``
in a value), and ``=x`` (no name) is refused. Names follow Azure's rules: 1 to 512
characters, none of ``< > % & \\ ? /``; values at most 256 characters. Azure
compares tag names case-insensitively and values case-sensitively; so does the filter.
A resource group name follows Azure's rules too: 1 to 90 letters, digits, ``_ - . ( )``,
not ending in ``.``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import LifecycleConfigError
from .schema import DiscoverySettings, MonitoringConfig, check_hooks
from .validation import BOOL, TEXT, check_table, rules, where

TABLE = "discovery"
# The per-VM settings a discovery applies to every VM it finds (ssh_host names one host,
# resource_group and subscription_id are the discovery's own: not settable here).
MONITORING_KEYS = ("check_interval_seconds", "restart_policy", "ssh_failure_threshold",
                   "dry_run", "ssh_port", "ssh_user", "ssh_key", "bastion")
OWN_KEYS = ("enabled", "resource_groups", "tags", "subscription_id")
TAG_NAME_FORBIDDEN = set('<>%&\\?/')
RESOURCE_GROUP_RE = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
TAG_RULE = ('"KEY" or "KEY=VALUE": a tag name of 1-512 characters without < > % & \\ ? / '
            "(and without =), a value of at most 256 characters")
GROUP_RULE = "1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"


# --------------------------------------------------------------------------- filters
def parse_tag(text: Any) -> tuple[str, str | None]:
    """``"KEY"`` -> (KEY, None); ``"KEY=VALUE"`` -> (KEY, VALUE). Raises ValueError
    saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, {TAG_RULE}")
    name, sep, value = text.partition("=")
    if not name.strip():
        raise ValueError(f"the tag name is empty; expected {TAG_RULE}")
    if name != name.strip():
        raise ValueError(f"the tag name has leading or trailing spaces; expected {TAG_RULE}")
    if len(name) > 512 or TAG_NAME_FORBIDDEN & set(name):
        raise ValueError(f"not a valid Azure tag name; expected {TAG_RULE}")
    if len(value) > 256:
        raise ValueError(f"the value is over 256 characters; expected {TAG_RULE}")
    return name, (value if sep else None)


def check_resource_group(name: Any) -> str:
    if not isinstance(name, str) or not RESOURCE_GROUP_RE.match(name):
        raise ValueError(f"not a valid resource group name; expected {GROUP_RULE}")
    return name


def matches(tags: Mapping[str, str], wanted: Iterable[tuple[str, str | None]]) -> bool:
    """Whether ``tags`` (a VM's) carry every wanted tag: names compared case-insensitively,
    values exactly."""
    have = {name.lower(): value for name, value in tags.items()}
    return all(name.lower() in have and (value is None or have[name.lower()] == value)
               for name, value in wanted)


# --------------------------------------------------------------------------- the table
def discovery_from_dict(raw: Any, source: str) -> DiscoverySettings:
    if not isinstance(raw, Mapping):
        raise LifecycleConfigError(f"{source}: {TABLE} must be a table ([{TABLE}])")
    values = dict(raw)
    hooks = values.pop("hooks", {})
    allowed = {*OWN_KEYS, *MONITORING_KEYS, "hooks"}
    for key in values:
        if key not in allowed:
            raise LifecycleConfigError(
                f"{where(source, TABLE)}: unknown key {key!r}; allowed: "
                + ", ".join(sorted(allowed)))
    own = check_table({k: values[k] for k in ("enabled", "subscription_id") if k in values},
                      {"enabled": BOOL, "subscription_id": TEXT}, source, TABLE)
    groups = _string_list(values.get("resource_groups", []), "resource_groups", source,
                          check_resource_group)
    tags = _string_list(values.get("tags", []), "tags", source, parse_tag)
    vm_rules = rules(MonitoringConfig)
    settings = check_table({k: values[k] for k in MONITORING_KEYS if k in values},
                           {k: vm_rules[k] for k in MONITORING_KEYS}, source, TABLE)
    settings["hooks"] = check_hooks(hooks, source, f"{TABLE}.hooks")
    monitoring = MonitoringConfig(**settings)
    return DiscoverySettings(enabled=own.get("enabled", True), resource_groups=tuple(groups),
                             tags=tuple(tags), subscription_id=own.get("subscription_id"),
                             monitoring=monitoring)


def _string_list(raw: Any, key: str, source: str, check: Any) -> list[str]:
    if not isinstance(raw, list):
        raise LifecycleConfigError(f"{where(source, TABLE)}: {key} = {raw!r} is not allowed: "
                                   "expected a list of strings")
    out = []
    for item in raw:
        try:
            check(item)
        except ValueError as exc:
            raise LifecycleConfigError(
                f"{where(source, TABLE)}: {key} entry {item!r} is not allowed: {exc}") from None
        if item not in out:
            out.append(item)
    return out


def discovery_to_dict(discovery: DiscoverySettings) -> dict[str, Any]:
    """The table as written: ``enabled`` always, the rest when set or not the default."""
    table: dict[str, Any] = {"enabled": discovery.enabled}
    if discovery.resource_groups:
        table["resource_groups"] = list(discovery.resource_groups)
    if discovery.tags:
        table["tags"] = list(discovery.tags)
    if discovery.subscription_id:
        table["subscription_id"] = discovery.subscription_id
    default = MonitoringConfig()
    vm = discovery.monitoring
    for key in MONITORING_KEYS:
        value = getattr(vm, key)
        if value is not None and value != getattr(default, key):
            table[key] = value.value if hasattr(value, "value") else value
    if vm.hooks:
        table["hooks"] = dict(vm.hooks)
    return table


def with_changes(discovery: DiscoverySettings | None, source: str,
                 **changes: Any) -> DiscoverySettings:
    """``discovery`` (or a new one) with ``changes`` (own keys and monitoring keys; a
    ``hooks`` mapping is merged), validated as the file would be."""
    base = discovery_to_dict(discovery or DiscoverySettings())
    hooks = {**base.pop("hooks", {}), **(changes.pop("hooks", None) or {})}
    merged = {**base, **{k: v for k, v in changes.items() if v is not None}}
    if hooks:
        merged["hooks"] = hooks
    return discovery_from_dict(merged, source)


def monitoring_of(discovery: DiscoverySettings, resource_group: str,
                  subscription_id: str) -> MonitoringConfig:
    """A discovered VM's settings: the discovery's, where the VM was found."""
    return dataclasses.replace(discovery.monitoring, enabled=True,
                               resource_group=resource_group, subscription_id=subscription_id)
