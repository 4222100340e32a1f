"""The settings: enums, and one frozen dataclass per table of the file.

Each setting is declared once, as a dataclass field that carries its default and its
rule (``field(default=..., metadata=accepts(rule))``, rules from :mod:`.validation`); the
validator, the list of allowed keys and the renderers all read them from
``dataclasses.fields``. What one field cannot say alone is checked here too: a VM's
hooks and name, and the ``[azure]`` and ``[ha]`` settings that must agree.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import LifecycleConfigError
from .validation import (
    BLOB_NAME,
    BOOL,
    CONTAINER,
    GUID,
    HOOK_TARGET,
    HTTPS_URL,
    LISTEN,
    PORT,
    STORAGE_URL,
    TEXT,
    TEXTFILE,
    accepts,
    check_table,
    hook_target_problem,
    integer,
    is_loopback_host,
    is_loopback_url,
    listen_address,
    number,
    one_of,
    rules,
    where,
)


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


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class MonitoringConfig:
    """How one VM is monitored and healed.

    ``restart_policy`` accepts the enum or its string value; ``hooks`` maps a hook type
    (``on_failure`` ...) to an executable's path or an ``https://`` webhook URL.
    ``ssh_host``, ``ssh_user`` and ``ssh_key`` left unset (None) are resolved for each
    check (:mod:`azlin_lifecycle.adapters.azure.network`): the VM's public IP from Azure (else
    its private IP, or the VM's Azure Bastion), its ``osProfile.adminUsername``, and the
    first key of azlin's search order (``~/.ssh/azlin_key``, ``id_ed25519_azlin`` ...).
    """

    enabled: bool = field(default=True, metadata=accepts(BOOL, always_written=True))
    check_interval_seconds: int = field(
        default=60, metadata=accepts(integer(10, 86400), always_written=True))
    restart_policy: RestartPolicy = field(
        default=RestartPolicy.NEVER, metadata=accepts(one_of(RestartPolicy), always_written=True))
    ssh_failure_threshold: int = field(
        default=3, metadata=accepts(integer(1, 100), always_written=True))
    hooks: Mapping[str, str] = field(default_factory=dict)  # its own table: check_hooks
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
        for name, value in check_table(values, keys, source, table).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "hooks", check_hooks(self.hooks, source, f"{table}.hooks"))
        return self

    def replace(self, **changes: Any) -> MonitoringConfig:
        return dataclasses.replace(self, **changes)


def check_hooks(raw: Any, source: str, table: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise LifecycleConfigError(f"{where(source, table)}: must be a table of hook = target")
    hooks: dict[str, str] = {}
    for key, value in raw.items():
        if key not in VALID_HOOK_TYPES:
            raise LifecycleConfigError(
                f"{where(source, table)}: unknown hook type {key!r}; allowed: "
                + ", ".join(VALID_HOOK_TYPES)
            )
        problem = hook_target_problem(value)
        if problem is not None:
            from ..hook_targets import redacted

            raise LifecycleConfigError(
                f"{where(source, table)}: {key} = \"{redacted(value)}\" is not allowed: "
                f"{problem}; expected {HOOK_TARGET.allowed}"
            )
        hooks[str(key)] = check_table({key: value}, {key: HOOK_TARGET}, source, table)[key]
    return hooks


@dataclass(frozen=True)
class DaemonSettings:
    log_level: LogLevel = field(default=LogLevel.INFO, metadata=accepts(one_of(LogLevel)))
    max_workers: int = field(default=64, metadata=accepts(integer(1, 512)))
    ssh_timeout_seconds: float = field(default=10.0, metadata=accepts(number(1, 120)))
    azure_timeout_seconds: float = field(default=20.0, metadata=accepts(number(1, 300)))
    history_size: int = field(default=1000, metadata=accepts(integer(10, 100000)))
    max_open_ssh_connections: int = field(default=512, metadata=accepts(integer(0, 100000)))


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str | None = field(default=None, metadata=accepts(TEXT))
    resource_group: str | None = field(default=None, metadata=accepts(TEXT))
    arm_endpoint: str = field(default=DEFAULT_ARM_ENDPOINT, metadata=accepts(HTTPS_URL))
    credential: CredentialKind = field(
        default=CredentialKind.CLI, metadata=accepts(one_of(CredentialKind)))
    ca_bundle: str | None = field(default=None, metadata=accepts(TEXT))
    # A user-assigned identity (its client id); None: the VM's system-assigned identity.
    managed_identity_client_id: str | None = field(default=None, metadata=accepts(GUID))
    bastion: str | None = field(default=None, metadata=accepts(TEXT))  # a name or an ARM id


@dataclass(frozen=True)
class HealingSettings:
    dry_run: bool = field(default=False, metadata=accepts(BOOL))
    grace_period_seconds: int = field(default=300, metadata=accepts(integer(0, 86400)))
    restart_budget: int = field(default=3, metadata=accepts(integer(0, 1000)))
    budget_window_seconds: int = field(default=3600, metadata=accepts(integer(60, 7 * 86400)))
    backoff_initial_seconds: int = field(default=60, metadata=accepts(integer(0, 86400)))
    backoff_max_seconds: int = field(default=1800, metadata=accepts(integer(0, 7 * 86400)))
    breaker_failing_ratio: float = field(default=0.5, metadata=accepts(number(0.01, 1)))
    breaker_min_failing: int = field(default=2, metadata=accepts(integer(1, 100000)))
    max_in_flight: int = field(default=0, metadata=accepts(integer(0, 100000)))
    # A restart we request can wait ~15 min for the guest's Scheduled Events approval.
    restart_timeout_seconds: int = field(default=1200, metadata=accepts(integer(10, 7200)))
    escalate_after_failed_restarts: int = field(default=0, metadata=accepts(integer(0, 100)))
    agent_ready_override_failures: int = field(default=10, metadata=accepts(integer(0, 1000)))
    agent_status_max_age_seconds: int = field(default=600, metadata=accepts(integer(60, 86400)))
    # How often a repair's operation is polled, and a redeploy's own, longer limit.
    operation_poll_seconds: int = field(default=5, metadata=accepts(integer(1, 60)))
    redeploy_timeout_seconds: int = field(default=1800, metadata=accepts(integer(60, 7200)))
    # Asking Azure before a repair: Resource Health, planned maintenance, the serial log.
    platform_margin_seconds: int = field(default=300, metadata=accepts(integer(0, 86400)))
    start_user_stopped: bool = field(default=False, metadata=accepts(BOOL))
    capture_serial_log: bool = field(default=True, metadata=accepts(BOOL))
    capture_seconds: int = field(default=30, metadata=accepts(integer(1, 30)))
    postmortems_kept: int = field(default=10, metadata=accepts(integer(1, 1000)))


@dataclass(frozen=True)
class HookSettings:
    timeout_seconds: float = field(default=30.0, metadata=accepts(number(0.1, 3600)))
    kill_grace_seconds: float = field(default=5.0, metadata=accepts(number(0, 60)))
    max_output_bytes: int = field(
        default=65536, metadata=accepts(integer(1024, 16 * 1024 * 1024)))
    webhook_timeout_seconds: float = field(default=10.0, metadata=accepts(number(0.1, 300)))
    webhook_retries: int = field(default=3, metadata=accepts(integer(0, 10)))
    max_concurrent: int = field(default=4, metadata=accepts(integer(1, 64)))
    # on_failure: once per incident and on each change, then at most this often; 0: every
    # failed check (see azlin_lifecycle/alerts.py)
    repeat_seconds: int = field(default=1800, metadata=accepts(integer(0, 7 * 86400)))


@dataclass(frozen=True)
class HaSettings:
    """Two or more monitors, one acting: the leader holds a lease on a blob in a storage
    account, and the repair records every monitor decides with live in that blob."""

    enabled: bool = field(default=False, metadata=accepts(BOOL))
    account_url: str | None = field(default=None, metadata=accepts(STORAGE_URL))
    container: str = field(default="azlin-lifecycle", metadata=accepts(CONTAINER))
    blob: str = field(default="leader", metadata=accepts(BLOB_NAME))
    lease_seconds: int = field(default=30, metadata=accepts(integer(15, 60)))
    credential: HaCredential = field(
        default=HaCredential.AZURE, metadata=accepts(one_of(HaCredential)))


@dataclass(frozen=True)
class MetricsSettings:
    """Metrics for Prometheus (off unless one of ``listen`` and ``textfile`` is set): an
    HTTP endpoint, and/or a file rewritten for node_exporter's textfile collector."""

    listen: str | None = field(default=None, metadata=accepts(LISTEN))
    textfile: str | None = field(default=None, metadata=accepts(TEXTFILE))
    textfile_interval_seconds: int = field(default=15, metadata=accepts(integer(5, 3600)))

    @property
    def enabled(self) -> bool:
        return bool(self.listen or self.textfile)

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to listen on, or None."""
        return None if self.listen is None else listen_address(self.listen)


@dataclass(frozen=True)
class DiscoverySettings:
    """``[discovery]``: every VM of ``resource_groups`` (empty: azlin's) that carries all
    of ``tags`` ("KEY" or "KEY=VALUE") is monitored with ``monitoring``'s settings (the
    table's other keys and ``[discovery.hooks]``). Parsed by :mod:`.discovery`."""

    enabled: bool = True
    resource_groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    subscription_id: str | None = None
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


@dataclass(frozen=True)
class LifecycleConfig:
    """The whole file."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    azure: AzureSettings = field(default_factory=AzureSettings)
    healing: HealingSettings = field(default_factory=HealingSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    ha: HaSettings = field(default_factory=HaSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    vms: Mapping[str, MonitoringConfig] = field(default_factory=dict)
    discovery: DiscoverySettings | None = None  # [discovery]; None: no such table

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
    a settings dataclass (daemon, azure, healing, hooks, ha, metrics), in field order."""
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


# --------------------------------------------------------------------------- across fields
def check_azure(azure: AzureSettings, source: str) -> None:
    """A managed identity's client id means something only to a credential that tries
    managed identity ("managed_identity", or "default", whose chain includes it)."""
    if azure.managed_identity_client_id and azure.credential is CredentialKind.CLI:
        raise LifecycleConfigError(
            f"{where(source, 'azure')}: managed_identity_client_id is set but credential = "
            '"cli" does not use it: set credential = "managed_identity" (or "default"), or '
            "remove managed_identity_client_id"
        )


def check_ha(ha: HaSettings, source: str) -> None:
    """What the storage account needs to be usable for the credential that reaches it."""
    if ha.enabled and not ha.account_url:
        raise LifecycleConfigError(
            f"{where(source, 'ha')}: enabled = true needs account_url, the storage account's "
            "blob endpoint (https://ACCOUNT.blob.core.windows.net)")
    if not ha.account_url:
        return
    if ha.credential is HaCredential.AZURITE and not is_loopback_url(ha.account_url):
        raise LifecycleConfigError(
            f'{where(source, "ha")}: credential = "azurite" (Azurite\'s published key) is '
            f'only for a loopback Azurite, not account_url = "{ha.account_url}": set '
            'credential = "azure" to use the [azure] login')
    if ha.credential is HaCredential.AZURE and not ha.account_url.startswith("https://"):
        raise LifecycleConfigError(
            f'{where(source, "ha")}: account_url = "{ha.account_url}" is plain http, and an '
            'Azure token is only sent over https: use an https:// URL, or credential = '
            '"azurite" for a local Azurite')



def metrics_warning(metrics: MetricsSettings, source: str) -> str | None:
    """What to warn about in ``[metrics]``: an endpoint reachable beyond this machine."""
    address = metrics.address
    if address is None or is_loopback_host(address[0]):
        return None
    return (f'{where(source, "metrics")}: listen = "{metrics.listen}" serves the metrics '
            "(VM names, resource groups, health) without authentication beyond this "
            'machine; use "127.0.0.1:PORT" unless a firewall limits who can reach it')
