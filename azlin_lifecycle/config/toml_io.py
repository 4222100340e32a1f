"""The file's text: TOML to :class:`~.schema.LifecycleConfig` and back.

Parsing checks every table against its rules (:mod:`.validation`) and the settings
that must agree (:mod:`.schema`); a key that is no longer used (``[daemon]`` ``pid_file``,
``log_file``) is dropped with a warning. Rendering writes only what differs from the
defaults, except the four keys the spec's example always shows for a VM. Reading the
file is :func:`load_file`; writing it, with locks, is :mod:`azlin_lifecycle.manager`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import LifecycleConfigError
from .discovery import discovery_from_dict, discovery_to_dict
from .schema import (
    SECTIONS,
    VM_NAME_RE,
    LifecycleConfig,
    MonitoringConfig,
    check_azure,
    check_ha,
    check_hooks,
    metrics_warning,
)
from .validation import check_table, rules

log = logging.getLogger("azlin_lifecycle.config")  # the logger's name from before the split
DEPRECATED_DAEMON_KEYS = ("pid_file", "log_file")


# --------------------------------------------------------------------------- parse
def parse_toml(text: str, source: str) -> LifecycleConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise LifecycleConfigError(f"{source}: not valid TOML: {exc}") from None
    return from_dict(raw, source)


def from_dict(raw: Mapping[str, Any], source: str) -> LifecycleConfig:
    known = {*SECTIONS, "vms", "discovery"}
    for key in raw:
        if key not in known:
            raise LifecycleConfigError(
                f"{source}: unknown table or key {key!r}; allowed: " + ", ".join(sorted(known))
            )
    sections: dict[str, Any] = {}
    for name, kind in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, Mapping):
            raise LifecycleConfigError(f"{source}: {name} must be a table ([{name}])")
        table = dict(table)
        if name == "daemon":
            for old in DEPRECATED_DAEMON_KEYS:
                if old in table:
                    table.pop(old)
                    log.warning(
                        "%s [daemon]: %s is unused (systemd and journald replace it); "
                        "it is dropped the next time the file is written",
                        source,
                        old,
                    )
        sections[name] = kind(**check_table(table, rules(kind), source, name))
    check_azure(sections["azure"], source)
    check_ha(sections["ha"], source)
    if warning := metrics_warning(sections["metrics"], source):
        log.warning("%s", warning)
    vms_raw = raw.get("vms", {})
    if not isinstance(vms_raw, Mapping):
        raise LifecycleConfigError(f"{source}: vms must be a table of [vms.NAME] tables")
    vms: dict[str, MonitoringConfig] = {}
    for name, table in vms_raw.items():
        vms[name] = vm_from_dict(name, table, source)
    discovery = (discovery_from_dict(raw["discovery"], source) if "discovery" in raw
                 else None)
    return LifecycleConfig(vms=vms, discovery=discovery, **sections)


def vm_from_dict(name: str, table: Any, source: str) -> MonitoringConfig:
    label = f"vms.{name}"
    if not VM_NAME_RE.match(name):
        raise LifecycleConfigError(
            f"{source} [{label}]: invalid VM name {name!r}: use 1-64 letters, digits, "
            "'-', '_' or '.'"
        )
    if not isinstance(table, Mapping):
        raise LifecycleConfigError(f"{source}: {label} must be a table ([{label}])")
    values = dict(table)
    hooks = values.pop("hooks", {})
    checked = check_table(values, rules(MonitoringConfig), source, label)
    checked["hooks"] = check_hooks(hooks, source, f"{label}.hooks")
    # Construct without re-running __post_init__'s generic source label.
    vm = object.__new__(MonitoringConfig)
    for f in dataclasses.fields(MonitoringConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        object.__setattr__(vm, f.name, checked.get(f.name, default))
    return vm


# --------------------------------------------------------------------------- render
def to_dict(config: LifecycleConfig) -> dict[str, Any]:
    """The TOML document for ``config``: only values that differ from the defaults,
    except the four keys the spec's example always shows for a VM."""
    doc: dict[str, Any] = {}
    for name, kind in SECTIONS.items():
        section = getattr(config, name)
        default = kind()
        table = {
            f.name: _plain(getattr(section, f.name))
            for f in dataclasses.fields(section)
            if getattr(section, f.name) != getattr(default, f.name)
        }
        if table:
            doc[name] = table
    if config.vms:
        doc["vms"] = {name: vm_to_dict(vm) for name, vm in config.vms.items()}
    if config.discovery is not None:
        doc["discovery"] = discovery_to_dict(config.discovery)
    return doc


def vm_to_dict(vm: MonitoringConfig) -> dict[str, Any]:
    default = MonitoringConfig()
    table: dict[str, Any] = {}
    for f in dataclasses.fields(vm):
        value = getattr(vm, f.name)
        if f.name == "hooks" or value is None:
            continue
        if f.metadata.get("always_written") or value != getattr(default, f.name):
            table[f.name] = _plain(value)
    if vm.hooks:
        table["hooks"] = dict(vm.hooks)
    return table


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def render_toml(config: LifecycleConfig) -> str:
    import tomli_w

    header = (
        "# azlin-lifecycle configuration. Reference: README.md, 'Configuration'.\n"
        "# Written by azlin-lifecycle; comments are not preserved.\n\n"
    )
    return header + tomli_w.dumps(to_dict(config))


def load_file(path: Path) -> LifecycleConfig:
    """Parse ``path``; a missing file is an empty configuration."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LifecycleConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise LifecycleConfigError(f"{path}: cannot read: {exc}") from None
    return parse_toml(text, str(path))
