"""The TOML configuration: frozen dataclasses, enums, and one validator.

Every value is validated on load and before every write. An error names the file,
the table (the VM), the key, the value and what is allowed, e.g.::

    ~/.azlin/lifecycle-config.toml [vms.web-1]: check_interval_seconds = 5 is not
    allowed: expected an integer from 10 to 86400

Parsing (TOML text -> :class:`LifecycleConfig`) and rendering (the reverse) live
here; reading and writing the file, with locks, lives in :mod:`azlin_lifecycle.manager`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import LifecycleConfigError

log = logging.getLogger(__name__)


class RestartPolicy(StrEnum):
    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class HookType(StrEnum):
    ON_START = "on_start"
    ON_STOP = "on_stop"
    ON_RESTART = "on_restart"
    ON_FAILURE = "on_failure"
    ON_HEALTHY = "on_healthy"


class CredentialKind(StrEnum):
    CLI = "cli"
    DEFAULT = "default"
    MANAGED_IDENTITY = "managed_identity"  # the Azure VM's own identity (no az login)


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


VALID_RESTART_POLICIES: tuple[str, ...] = tuple(p.value for p in RestartPolicy)
VALID_HOOK_TYPES: tuple[str, ...] = tuple(h.value for h in HookType)
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
VM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
DEPRECATED_DAEMON_KEYS = ("pid_file", "log_file")


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """What one key accepts: a test, a description for the error, a conversion."""

    allowed: str
    check: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value


def _int(lo: int, hi: int) -> Rule:
    return Rule(
        f"an integer from {lo} to {hi}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
    )


def _number(lo: float, hi: float) -> Rule:
    return Rule(
        f"a number from {lo:g} to {hi:g}",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
        float,
    )


def _enum(kind: type[StrEnum]) -> Rule:
    values = [m.value for m in kind]
    return Rule(
        "one of " + ", ".join(f'"{v}"' for v in values),
        lambda v: isinstance(v, str) and v in values,
        kind,
    )


def _hook_target_ok(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if value.startswith("https://"):
        return len(value) > len("https://")
    return value.startswith(("/", "~"))


BOOL = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
OPTIONAL_TEXT = Rule("a string", lambda v: isinstance(v, str))
PORT = _int(1, 65535)
HOOK_TARGET = Rule(
    "an absolute path to an executable (may start with ~) or an https:// URL",
    _hook_target_ok,
)
GUID = Rule("a GUID such as 12345678-90ab-cdef-1234-567890abcdef",
            lambda v: isinstance(v, str) and GUID_RE.match(v) is not None)
HTTPS_URL = Rule(
    "an https:// URL",
    lambda v: isinstance(v, str) and v.startswith("https://") and len(v) > 8,
    lambda v: v.rstrip("/"),
)


def where(source: str, table: str) -> str:
    return f"{source} [{table}]" if table else source


def _check_table(
    raw: Mapping[str, Any], rules: Mapping[str, Rule], source: str, table: str
) -> dict[str, Any]:
    """Validate ``raw`` against ``rules``; return the converted values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        rule = rules.get(key)
        if rule is None:
            allowed = ", ".join(sorted(rules))
            raise LifecycleConfigError(
                f"{where(source, table)}: unknown key {key!r}; allowed keys: {allowed}"
            )
        if not rule.check(value):
            raise LifecycleConfigError(
                f"{where(source, table)}: {key} = {_show(value)} is not allowed: "
                f"expected {rule.allowed}"
            )
        out[key] = rule.convert(value)
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return repr(value)


# --------------------------------------------------------------------------- models
VM_RULES: dict[str, Rule] = {
    "enabled": BOOL,
    "check_interval_seconds": _int(10, 86400),
    "restart_policy": _enum(RestartPolicy),
    "ssh_failure_threshold": _int(1, 100),
    "resource_group": TEXT,
    "subscription_id": TEXT,
    "ssh_host": TEXT,
    "ssh_port": PORT,
    "ssh_user": TEXT,
    "ssh_key": TEXT,
    "dry_run": BOOL,
}


@dataclass(frozen=True)
class MonitoringConfig:
    """How one VM is monitored and healed.

    ``restart_policy`` accepts the enum or its string value; ``hooks`` maps a hook type
    (``on_failure`` ...) to an executable's path or an ``https://`` webhook URL.
    ``ssh_host``, ``ssh_user`` and ``ssh_key`` left unset (None) are resolved for each
    check (:mod:`azlin_lifecycle.adapters.network`): the VM's public IP from Azure (else
    its private IP or azlin's Bastion tunnel), its ``osProfile.adminUsername``, and the
    first key of azlin's search order (``~/.ssh/azlin_key``, ``id_ed25519_azlin`` ...).
    """

    enabled: bool = True
    check_interval_seconds: int = 60
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    ssh_failure_threshold: int = 3
    hooks: Mapping[str, str] = field(default_factory=dict)
    resource_group: str | None = None
    subscription_id: str | None = None
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        self.validated("MonitoringConfig", "")

    def validated(self, source: str, table: str) -> MonitoringConfig:
        """Check every field; fix up string enums. Returns self for chaining."""
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "hooks" and getattr(self, f.name) is not None
        }
        checked = _check_table(values, VM_RULES, source, table)
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "hooks", _check_hooks(self.hooks, source, f"{table}.hooks"))
        return self

    def replace(self, **changes: Any) -> MonitoringConfig:
        return dataclasses.replace(self, **changes)


def _check_hooks(raw: Any, source: str, table: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise LifecycleConfigError(f"{where(source, table)}: must be a table of hook = target")
    hooks: dict[str, str] = {}
    for key, value in raw.items():
        if key not in VALID_HOOK_TYPES:
            raise LifecycleConfigError(
                f"{where(source, table)}: unknown hook type {key!r}; allowed: "
                + ", ".join(VALID_HOOK_TYPES)
            )
        hooks[str(key)] = _check_table({key: value}, {key: HOOK_TARGET}, source, table)[key]
    return hooks


@dataclass(frozen=True)
class DaemonSettings:
    log_level: LogLevel = LogLevel.INFO
    max_workers: int = 64
    ssh_timeout_seconds: float = 10.0
    azure_timeout_seconds: float = 20.0
    history_size: int = 1000
    max_open_ssh_connections: int = 512


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str | None = None
    resource_group: str | None = None
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    credential: CredentialKind = CredentialKind.CLI
    ca_bundle: str | None = None
    # A user-assigned identity (its client id); None: the VM's system-assigned identity.
    managed_identity_client_id: str | None = None


@dataclass(frozen=True)
class HealingSettings:
    dry_run: bool = False
    grace_period_seconds: int = 300
    restart_budget: int = 3
    budget_window_seconds: int = 3600
    backoff_initial_seconds: int = 60
    backoff_max_seconds: int = 1800
    breaker_failing_ratio: float = 0.5
    breaker_min_failing: int = 2
    max_in_flight: int = 0
    restart_timeout_seconds: int = 600
    escalate_after_failed_restarts: int = 0
    agent_ready_override_failures: int = 10
    agent_status_max_age_seconds: int = 600
    operation_poll_seconds: int = 5  # how often a repair's operation is polled
    redeploy_timeout_seconds: int = 1800  # a redeploy's own, longer limit


@dataclass(frozen=True)
class HookSettings:
    timeout_seconds: float = 30.0
    kill_grace_seconds: float = 5.0
    max_output_bytes: int = 65536
    webhook_timeout_seconds: float = 10.0
    webhook_retries: int = 3
    max_concurrent: int = 4


SECTION_RULES: dict[str, dict[str, Rule]] = {
    "daemon": {
        "log_level": _enum(LogLevel),
        "max_workers": _int(1, 512),
        "ssh_timeout_seconds": _number(1, 120),
        "azure_timeout_seconds": _number(1, 300),
        "history_size": _int(10, 100000),
        "max_open_ssh_connections": _int(0, 100000),
    },
    "azure": {
        "subscription_id": TEXT,
        "resource_group": TEXT,
        "arm_endpoint": HTTPS_URL,
        "credential": _enum(CredentialKind),
        "ca_bundle": TEXT,
        "managed_identity_client_id": GUID,
    },
    "healing": {
        "dry_run": BOOL,
        "grace_period_seconds": _int(0, 86400),
        "restart_budget": _int(0, 1000),
        "budget_window_seconds": _int(60, 7 * 86400),
        "backoff_initial_seconds": _int(0, 86400),
        "backoff_max_seconds": _int(0, 7 * 86400),
        "breaker_failing_ratio": _number(0.01, 1),
        "breaker_min_failing": _int(1, 100000),
        "max_in_flight": _int(0, 100000),
        "restart_timeout_seconds": _int(10, 7200),
        "escalate_after_failed_restarts": _int(0, 100),
        "agent_ready_override_failures": _int(0, 1000),
        "agent_status_max_age_seconds": _int(60, 86400),
        "operation_poll_seconds": _int(1, 60),
        "redeploy_timeout_seconds": _int(60, 7200),
    },
    "hooks": {
        "timeout_seconds": _number(0.1, 3600),
        "kill_grace_seconds": _number(0, 60),
        "max_output_bytes": _int(1024, 16 * 1024 * 1024),
        "webhook_timeout_seconds": _number(0.1, 300),
        "webhook_retries": _int(0, 10),
        "max_concurrent": _int(1, 64),
    },
}
SECTION_TYPES: dict[str, type[Any]] = {
    "daemon": DaemonSettings,
    "azure": AzureSettings,
    "healing": HealingSettings,
    "hooks": HookSettings,
}


@dataclass(frozen=True)
class LifecycleConfig:
    """The whole file."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    azure: AzureSettings = field(default_factory=AzureSettings)
    healing: HealingSettings = field(default_factory=HealingSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    vms: Mapping[str, MonitoringConfig] = field(default_factory=dict)

    def with_vm(self, name: str, vm: MonitoringConfig | None) -> LifecycleConfig:
        """A copy with ``name`` set to ``vm`` (or removed when ``vm`` is None)."""
        vms = dict(self.vms)
        if vm is None:
            vms.pop(name, None)
        else:
            vms[check_vm_name(name)] = vm
        return dataclasses.replace(self, vms=vms)

    def enabled_vms(self) -> dict[str, MonitoringConfig]:
        return {name: vm for name, vm in self.vms.items() if vm.enabled}


def check_vm_name(name: str) -> str:
    if not isinstance(name, str) or not VM_NAME_RE.match(name):
        raise LifecycleConfigError(
            f"invalid VM name {name!r}: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


# --------------------------------------------------------------------------- parse
def parse_toml(text: str, source: str) -> LifecycleConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise LifecycleConfigError(f"{source}: not valid TOML: {exc}") from None
    return from_dict(raw, source)


def from_dict(raw: Mapping[str, Any], source: str) -> LifecycleConfig:
    known = {*SECTION_RULES, "vms"}
    for key in raw:
        if key not in known:
            raise LifecycleConfigError(
                f"{source}: unknown table or key {key!r}; allowed: " + ", ".join(sorted(known))
            )
    sections: dict[str, Any] = {}
    for name, rules in SECTION_RULES.items():
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
        sections[name] = SECTION_TYPES[name](**_check_table(table, rules, source, name))
    _check_azure(sections["azure"], source)
    vms_raw = raw.get("vms", {})
    if not isinstance(vms_raw, Mapping):
        raise LifecycleConfigError(f"{source}: vms must be a table of [vms.NAME] tables")
    vms: dict[str, MonitoringConfig] = {}
    for name, table in vms_raw.items():
        vms[name] = vm_from_dict(name, table, source)
    return LifecycleConfig(vms=vms, **sections)


def _check_azure(azure: AzureSettings, source: str) -> None:
    """A managed identity's client id means something only to a credential that tries
    managed identity ("managed_identity", or "default", whose chain includes it)."""
    if azure.managed_identity_client_id and azure.credential is CredentialKind.CLI:
        raise LifecycleConfigError(
            f"{where(source, 'azure')}: managed_identity_client_id is set but credential = "
            '"cli" does not use it: set credential = "managed_identity" (or "default"), or '
            "remove managed_identity_client_id"
        )


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
    checked = _check_table(values, VM_RULES, source, label)
    checked["hooks"] = _check_hooks(hooks, source, f"{label}.hooks")
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
    for name in SECTION_RULES:
        section = getattr(config, name)
        default = SECTION_TYPES[name]()
        table = {
            f.name: _plain(getattr(section, f.name))
            for f in dataclasses.fields(section)
            if getattr(section, f.name) != getattr(default, f.name)
        }
        if table:
            doc[name] = table
    if config.vms:
        doc["vms"] = {name: vm_to_dict(vm) for name, vm in config.vms.items()}
    return doc


ALWAYS_WRITTEN = ("enabled", "check_interval_seconds", "restart_policy", "ssh_failure_threshold")


def vm_to_dict(vm: MonitoringConfig) -> dict[str, Any]:
    default = MonitoringConfig()
    table: dict[str, Any] = {}
    for f in dataclasses.fields(vm):
        value = getattr(vm, f.name)
        if f.name == "hooks" or value is None:
            continue
        if f.name in ALWAYS_WRITTEN or value != getattr(default, f.name):
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
