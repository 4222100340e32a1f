"""The TOML configuration: frozen dataclasses, enums, and one validator.

Each setting is declared once, as a dataclass field that carries its default and its
rule (``field(default=..., metadata=accepts(rule))``); the validator, the list of allowed
keys and the renderers all read them from ``dataclasses.fields``.

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
from urllib.parse import urlsplit

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


class HaCredential(StrEnum):
    AZURE = "azure"  # the [azure] credential (az login, managed identity, default chain)
    AZURITE = "azurite"  # Azurite's published development account: loopback URLs only


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


def _is_loopback_url(value: str) -> bool:
    host = urlsplit(value).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _storage_url_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        return False
    return parts.scheme == "https" or _is_loopback_url(value)


STORAGE_URL = Rule(
    "the storage account's blob endpoint, https://ACCOUNT.blob.core.windows.net "
    "(http:// only on a loopback address, for Azurite)",
    _storage_url_ok,
    lambda v: v.rstrip("/"),
)
CONTAINER = Rule(
    "a container name: 3-63 lowercase letters, digits and single hyphens, starting with a "
    "letter or digit",
    lambda v: isinstance(v, str) and re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]",
                                                  v) is not None,
)
BLOB_NAME = Rule(
    "a blob name of 1-256 letters, digits, '-', '_', '.' or '/'",
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,255}",
                                                  v) is not None,
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
def accepts(rule: Rule, *, always_written: bool = False) -> dict[str, Any]:
    """A field's metadata: the rule of its TOML key; ``always_written`` renders it even
    at its default (the four keys the spec's example always shows for a VM)."""
    return {"rule": rule, "always_written": always_written}


def rules(kind: type[Any]) -> Mapping[str, Rule]:
    """The TOML keys of a section (or of a VM's table) and their rules, in field order."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(kind) if "rule" in f.metadata}


@dataclass(frozen=True)
class MonitoringConfig:
    """How one VM is monitored and healed.

    ``restart_policy`` accepts the enum or its string value; ``hooks`` maps a hook type
    (``on_failure`` ...) to an executable's path or an ``https://`` webhook URL.
    ``ssh_host``, ``ssh_user`` and ``ssh_key`` left unset (None) are resolved for each
    check (:mod:`azlin_lifecycle.adapters.azure.network`): the VM's public IP from Azure (else
    its private IP or azlin's Bastion tunnel), its ``osProfile.adminUsername``, and the
    first key of azlin's search order (``~/.ssh/azlin_key``, ``id_ed25519_azlin`` ...).
    """

    enabled: bool = field(default=True, metadata=accepts(BOOL, always_written=True))
    check_interval_seconds: int = field(
        default=60, metadata=accepts(_int(10, 86400), always_written=True))
    restart_policy: RestartPolicy = field(
        default=RestartPolicy.NEVER, metadata=accepts(_enum(RestartPolicy), always_written=True))
    ssh_failure_threshold: int = field(
        default=3, metadata=accepts(_int(1, 100), always_written=True))
    hooks: Mapping[str, str] = field(default_factory=dict)  # its own table: _check_hooks
    resource_group: str | None = field(default=None, metadata=accepts(TEXT))
    subscription_id: str | None = field(default=None, metadata=accepts(TEXT))
    ssh_host: str | None = field(default=None, metadata=accepts(TEXT))
    ssh_port: int = field(default=22, metadata=accepts(PORT))
    ssh_user: str | None = field(default=None, metadata=accepts(TEXT))
    ssh_key: str | None = field(default=None, metadata=accepts(TEXT))
    dry_run: bool = field(default=False, metadata=accepts(BOOL))
    bastion: str | None = field(default=None, metadata=accepts(TEXT))  # a name or an ARM id

    def __post_init__(self) -> None:
        self.validated("MonitoringConfig", "")

    def validated(self, source: str, table: str) -> MonitoringConfig:
        """Check every field; fix up string enums. Returns self for chaining."""
        keys = rules(MonitoringConfig)
        values = {name: getattr(self, name) for name in keys if getattr(self, name) is not None}
        for name, value in _check_table(values, keys, source, table).items():
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
    log_level: LogLevel = field(default=LogLevel.INFO, metadata=accepts(_enum(LogLevel)))
    max_workers: int = field(default=64, metadata=accepts(_int(1, 512)))
    ssh_timeout_seconds: float = field(default=10.0, metadata=accepts(_number(1, 120)))
    azure_timeout_seconds: float = field(default=20.0, metadata=accepts(_number(1, 300)))
    history_size: int = field(default=1000, metadata=accepts(_int(10, 100000)))
    max_open_ssh_connections: int = field(default=512, metadata=accepts(_int(0, 100000)))


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str | None = field(default=None, metadata=accepts(TEXT))
    resource_group: str | None = field(default=None, metadata=accepts(TEXT))
    arm_endpoint: str = field(default=DEFAULT_ARM_ENDPOINT, metadata=accepts(HTTPS_URL))
    credential: CredentialKind = field(
        default=CredentialKind.CLI, metadata=accepts(_enum(CredentialKind)))
    ca_bundle: str | None = field(default=None, metadata=accepts(TEXT))
    # A user-assigned identity (its client id); None: the VM's system-assigned identity.
    managed_identity_client_id: str | None = field(default=None, metadata=accepts(GUID))
    bastion: str | None = field(default=None, metadata=accepts(TEXT))  # a name or an ARM id


@dataclass(frozen=True)
class HealingSettings:
    dry_run: bool = field(default=False, metadata=accepts(BOOL))
    grace_period_seconds: int = field(default=300, metadata=accepts(_int(0, 86400)))
    restart_budget: int = field(default=3, metadata=accepts(_int(0, 1000)))
    budget_window_seconds: int = field(default=3600, metadata=accepts(_int(60, 7 * 86400)))
    backoff_initial_seconds: int = field(default=60, metadata=accepts(_int(0, 86400)))
    backoff_max_seconds: int = field(default=1800, metadata=accepts(_int(0, 7 * 86400)))
    breaker_failing_ratio: float = field(default=0.5, metadata=accepts(_number(0.01, 1)))
    breaker_min_failing: int = field(default=2, metadata=accepts(_int(1, 100000)))
    max_in_flight: int = field(default=0, metadata=accepts(_int(0, 100000)))
    restart_timeout_seconds: int = field(default=600, metadata=accepts(_int(10, 7200)))
    escalate_after_failed_restarts: int = field(default=0, metadata=accepts(_int(0, 100)))
    agent_ready_override_failures: int = field(default=10, metadata=accepts(_int(0, 1000)))
    agent_status_max_age_seconds: int = field(default=600, metadata=accepts(_int(60, 86400)))
    # How often a repair's operation is polled, and a redeploy's own, longer limit.
    operation_poll_seconds: int = field(default=5, metadata=accepts(_int(1, 60)))
    redeploy_timeout_seconds: int = field(default=1800, metadata=accepts(_int(60, 7200)))


@dataclass(frozen=True)
class HookSettings:
    timeout_seconds: float = field(default=30.0, metadata=accepts(_number(0.1, 3600)))
    kill_grace_seconds: float = field(default=5.0, metadata=accepts(_number(0, 60)))
    max_output_bytes: int = field(
        default=65536, metadata=accepts(_int(1024, 16 * 1024 * 1024)))
    webhook_timeout_seconds: float = field(default=10.0, metadata=accepts(_number(0.1, 300)))
    webhook_retries: int = field(default=3, metadata=accepts(_int(0, 10)))
    max_concurrent: int = field(default=4, metadata=accepts(_int(1, 64)))


@dataclass(frozen=True)
class HaSettings:
    """Two or more monitors, one acting: the leader holds a lease on a blob in a storage
    account, and the repair records every monitor decides with live in that blob."""

    enabled: bool = field(default=False, metadata=accepts(BOOL))
    account_url: str | None = field(default=None, metadata=accepts(STORAGE_URL))
    container: str = field(default="azlin-lifecycle", metadata=accepts(CONTAINER))
    blob: str = field(default="leader", metadata=accepts(BLOB_NAME))
    lease_seconds: int = field(default=30, metadata=accepts(_int(15, 60)))
    credential: HaCredential = field(
        default=HaCredential.AZURE, metadata=accepts(_enum(HaCredential)))


@dataclass(frozen=True)
class LifecycleConfig:
    """The whole file."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    azure: AzureSettings = field(default_factory=AzureSettings)
    healing: HealingSettings = field(default_factory=HealingSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    ha: HaSettings = field(default_factory=HaSettings)
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

    def hooks_of(self, vm_name: str) -> Mapping[str, str]:
        """The VM's ``{hook_type: target}`` (none for a VM that is not configured)."""
        vm = self.vms.get(vm_name)
        return vm.hooks if vm is not None else {}


def _section_types() -> dict[str, type[Any]]:
    """The file's tables other than [vms]: each field of LifecycleConfig whose default is
    a settings dataclass (daemon, azure, healing, hooks, ha), in field order."""
    out: dict[str, type[Any]] = {}
    for f in dataclasses.fields(LifecycleConfig):
        kind = f.default_factory
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            out[f.name] = kind
    return out


SECTIONS = _section_types()


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
    known = {*SECTIONS, "vms"}
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
        sections[name] = kind(**_check_table(table, rules(kind), source, name))
    _check_azure(sections["azure"], source)
    _check_ha(sections["ha"], source)
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


def _check_ha(ha: HaSettings, source: str) -> None:
    """What the storage account needs to be usable for the credential that reaches it."""
    if ha.enabled and not ha.account_url:
        raise LifecycleConfigError(
            f"{where(source, 'ha')}: enabled = true needs account_url, the storage account's "
            "blob endpoint (https://ACCOUNT.blob.core.windows.net)")
    if not ha.account_url:
        return
    if ha.credential is HaCredential.AZURITE and not _is_loopback_url(ha.account_url):
        raise LifecycleConfigError(
            f'{where(source, "ha")}: credential = "azurite" (Azurite\'s published key) is '
            f'only for a loopback Azurite, not account_url = "{ha.account_url}": set '
            'credential = "azure" to use the [azure] login')
    if ha.credential is HaCredential.AZURE and not ha.account_url.startswith("https://"):
        raise LifecycleConfigError(
            f'{where(source, "ha")}: account_url = "{ha.account_url}" is plain http, and an '
            'Azure token is only sent over https: use an https:// URL, or credential = '
            '"azurite" for a local Azurite')


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
    checked = _check_table(values, rules(MonitoringConfig), source, label)
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
