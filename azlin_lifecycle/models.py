"""The data the components exchange: plain frozen dataclasses and enums.

No I/O here and no imports of adapters; the health monitor, the healer, the hooks
and the daemon all speak in these types.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clock_utc(epoch: float) -> str:
    """An instant as people read it in a log line: ``14:03:07 UTC``."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S UTC")


def utc_text(epoch: float) -> str:
    """An instant in ISO 8601, UTC, to the second: ``2026-12-06T14:03:07Z``."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class VMState(StrEnum):
    """Azure's power states (``PowerState/<x>``), plus NOT_FOUND for an unknown VM."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DEALLOCATING = "deallocating"
    DEALLOCATED = "deallocated"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"

    @classmethod
    def from_power_code(cls, code: str | None) -> VMState:
        """``PowerState/running`` (or ``running``) -> RUNNING; anything else UNKNOWN."""
        if not code:
            return cls.UNKNOWN
        value = code.split("/", 1)[1] if "/" in code else code
        try:
            return cls(value.lower())
        except ValueError:
            return cls.UNKNOWN

    @property
    def stopped_on_purpose(self) -> bool:
        return self in (VMState.STOPPED, VMState.DEALLOCATED, VMState.STOPPING,
                        VMState.DEALLOCATING)


@dataclass(frozen=True)
class BastionEndpoint:
    """An Azure Bastion's native-client tunnel to one VM: what opening it needs.

    ``dns_name`` is the Bastion's ``properties.dnsName`` (its data plane's host), ``sku``
    its ``sku.name`` (Standard and Premium tunnel on ``/webtunnelv2``, Developer on
    ``/omni/webtunnel``), ``vm_resource_id`` the VM's ARM id (what the token exchange asks
    for). No secrets here: tokens live only inside the tunnel that uses them.
    """

    name: str  # "azlin-bastion-westus2"
    dns_name: str
    sku: str
    vm_resource_id: str

    @property
    def host_key_name(self) -> str:
        """Whom the VM's SSH host key is recorded for: the VM itself (its resource id),
        since its private address may repeat in another resource group's network."""
        return self.vm_resource_id.lower()


@dataclass(frozen=True)
class VMTarget:
    """Everything needed to reach one VM: where it lives in Azure and over SSH.

    An SSH field that is None is not configured: an :class:`~.ports.AddressBook` fills it
    in (the address from Azure, the admin user from the VM's ``osProfile``, the key from
    azlin's search order) before the VM is probed. ``subscription_from`` and
    ``resource_group_from`` say where those two values were set ("[vms.web-1]",
    "azlin context prod, ~/.azlin/contexts/prod.toml", ...), for messages; they take no
    part in comparing targets. ``bastion`` is set by the address book when the VM is
    reached through an Azure Bastion tunnel (``ssh_host`` is then the VM's private IP, for
    the record); ``bastion_ref`` is the configured ``bastion`` (a name or a resource id),
    None to look one up in the VM's resource group.
    """

    name: str
    subscription_id: str
    resource_group: str
    ssh_host: str | None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    subscription_from: str | None = field(default=None, compare=False)
    resource_group_from: str | None = field(default=None, compare=False)
    bastion: BastionEndpoint | None = None
    bastion_ref: str | None = None

    @property
    def ssh_resolved(self) -> bool:
        return None not in (self.ssh_host, self.ssh_user, self.ssh_key)


@dataclass(frozen=True)
class SshRoute:
    """How to reach a VM over SSH (``target`` with every SSH field set), or why it cannot
    be reached that way (``target`` None). Without a ``fault``, SSH is not applicable and
    the VM is judged by Azure's view; with one, that fault is the check's result (a Bastion
    that cannot be used "needs you")."""

    target: VMTarget | None
    via: str  # "configured address", "public IP 20.1.2.3", "Bastion azlin-bastion-westus2"
    fault: SshFault | None = None


@dataclass(frozen=True)
class PowerInfo:
    """What Azure says about a VM (from an instance view or a status-only listing).

    ``agent_status`` is the VM agent's ``displayStatus`` ("Ready", "Not Ready") and
    ``agent_time`` when it last reported; ``vm_health`` the Application Health
    extension's verdict (``healthy``/``unhealthy``/``unknown``) where it is installed.
    ``code`` is Azure's error code when Azure answered an error instead of the VM
    (``ResourceNotFound``, ``ResourceGroupNotFound``, ``SubscriptionNotFound``,
    ``AuthorizationFailed``), with its words in ``message``.
    """

    state: VMState
    provisioning_state: str | None = None
    agent_status: str | None = None
    message: str | None = None  # e.g. Azure's "not found" text
    agent_time: dt.datetime | None = None
    agent_message: str | None = None
    vm_health: str | None = None
    provisioning_time: str | None = None  # the ProvisioningState status's time, as Azure wrote it
    code: str | None = None
    maintenance: MaintenanceWindow | None = None  # instanceView.maintenanceRedeployStatus
    name: str | None = None  # a listing's: the VM's name as Azure spells it
    tags: tuple[tuple[str, str], ...] = ()  # a listing's: the VM's tags, (name, value)


@dataclass(frozen=True)
class MaintenanceWindow:
    """Azure's planned maintenance of a VM that needs a reboot (``instanceView.
    maintenanceRedeployStatus``; epoch seconds). In the maintenance window Azure may reboot
    or move the VM itself, unless its last operation says it completed."""

    start: float | None = None
    end: float | None = None
    customer_allowed: bool | None = None  # isCustomerInitiatedMaintenanceAllowed
    last_result: str | None = None  # lastOperationResultCode: None, RetryLater, ...
    last_message: str | None = None

    def open_at(self, now: float) -> bool:
        return (self.start is not None and self.end is not None and self.start <= now < self.end
                and (self.last_result or "").lower() != "maintenancecompleted")


@dataclass(frozen=True)
class VMMetrics:
    """Resource use read over SSH. A value that was not collected is None, never 0."""

    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    load_1m: float | None = None
    load_5m: float | None = None
    load_15m: float | None = None


class SshFault(StrEnum):
    """Why an SSH probe failed, and so whether a restart could help.

    Guest-side faults (the VM's end did not answer as a healthy VM does) count toward
    the restart threshold. The others are faults of the monitor's side (its network, the
    Bastion on its way) or of the configuration: a restart cannot fix them, so they alert
    ("needs you") and never count. AZURE_SCOPE is one of those that stops a check before
    SSH: Azure says the VM's subscription or resource group does not exist, or that this
    login cannot read it.
    """

    REFUSED = "connection refused"
    CONNECT_TIMEOUT = "timed out"
    HUNG = "timed out (hung)"
    CONNECTION_LOST = "connection lost"
    COMMAND_TIMEOUT = "command timed out"
    AUTH_FAILED = "authentication failed"
    HOST_KEY_CHANGED = "host key changed"
    NAME_RESOLUTION = "name resolution failed"
    KEY_UNREADABLE = "private key missing or unreadable"
    NETWORK_DOWN = "monitor's network unreachable"
    AZURE_SCOPE = "subscription or resource group not found or not readable"
    BASTION_UNUSABLE = "Bastion not usable"  # missing, Basic SKU, tunneling off, refused us
    BASTION_UNREACHABLE = "Bastion unreachable"  # down, 5xx, WebSocket refused or dropped
    NOT_APPLICABLE = "SSH not applicable"
    OTHER = "ssh error"

    @property
    def guest_side(self) -> bool:
        """True if the VM's end is at fault, so a restart may help (counts toward it)."""
        return self in _GUEST_FAULTS

    @property
    def needs_you(self) -> bool:
        """True if a person must fix something on the monitor's side or in the config."""
        return not self.guest_side and self is not SshFault.NOT_APPLICABLE


_GUEST_FAULTS = frozenset({SshFault.REFUSED, SshFault.CONNECT_TIMEOUT, SshFault.HUNG,
                           SshFault.CONNECTION_LOST, SshFault.COMMAND_TIMEOUT})


@dataclass(frozen=True)
class SshProbeResult:
    reachable: bool
    reason: str | None = None  # why not reachable, in words ("timed out (hung)", ...)
    metrics: VMMetrics | None = None
    duration_seconds: float = 0.0
    fault: SshFault | None = None  # set whenever reachable is False


@dataclass(frozen=True)
class HealthStatus:
    """One health check of one VM."""

    vm_name: str
    state: VMState
    ssh_reachable: bool
    ssh_failures: int
    healthy: bool
    reason: str | None = None
    provisioning_state: str | None = None
    agent_status: str | None = None
    metrics: VMMetrics | None = None
    ssh_checked: bool = True
    check_duration_seconds: float = 0.0
    timestamp: dt.datetime = field(default_factory=utcnow)
    fault: SshFault | None = None
    ssh_via: str | None = None  # how SSH reached it: "public IP 20.1.2.3", "Bastion tunnel ..."

    @property
    def needs_you(self) -> bool:
        """Failing for a reason a restart cannot fix (auth, host key, DNS, key, network)."""
        return not self.healthy and self.fault is not None and self.fault.needs_you

    @property
    def failing(self) -> bool:
        """A counted failure of a VM that should be up: the one definition that the status
        line, ``get_status()`` and the circuit breaker use. Not failing (the count is 0):
        healthy, stopped or unknown to Azure, in the grace period after a repair, or a
        fault a restart cannot fix (that one "needs you")."""
        return not self.healthy and self.ssh_failures > 0

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the persisted history format)."""
        return {
            "vm_name": self.vm_name,
            "state": self.state.value,
            "ssh_reachable": self.ssh_reachable,
            "ssh_failures": self.ssh_failures,
            "healthy": self.healthy,
            "reason": self.reason,
            "provisioning_state": self.provisioning_state,
            "agent_status": self.agent_status,
            "metrics": None if self.metrics is None else vars(self.metrics).copy(),
            "ssh_checked": self.ssh_checked,
            "check_duration_seconds": round(self.check_duration_seconds, 4),
            "timestamp": self.timestamp.isoformat(),
            "fault": None if self.fault is None else self.fault.value,
            "ssh_via": self.ssh_via,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> HealthStatus:
        metrics = rec.get("metrics")
        return cls(
            vm_name=rec["vm_name"],
            state=VMState(rec["state"]),
            ssh_reachable=rec["ssh_reachable"],
            ssh_failures=rec["ssh_failures"],
            healthy=rec["healthy"],
            reason=rec.get("reason"),
            provisioning_state=rec.get("provisioning_state"),
            agent_status=rec.get("agent_status"),
            metrics=VMMetrics(**metrics) if metrics else None,
            ssh_checked=rec.get("ssh_checked", True),
            check_duration_seconds=rec.get("check_duration_seconds", 0.0),
            timestamp=dt.datetime.fromisoformat(rec["timestamp"]),
            fault=SshFault(rec["fault"]) if rec.get("fault") else None,
            ssh_via=rec.get("ssh_via"),
        )


@dataclass(frozen=True)
class HealthFailure:
    """What the healer needs to decide: how many consecutive failures, and why."""

    vm_name: str
    failure_count: int
    reason: str
    state: VMState = VMState.RUNNING
    timestamp: dt.datetime = field(default_factory=utcnow)


class RepairAction(StrEnum):
    RESTART = "restart"
    START = "start"
    REDEPLOY = "redeploy"


@dataclass(frozen=True)
class RestartResult:
    vm_name: str
    success: bool
    action: RepairAction = RepairAction.RESTART
    timestamp: dt.datetime = field(default_factory=utcnow)
    duration_seconds: float = 0.0
    error_message: str | None = None
    dry_run: bool = False


class RepairOutcome(StrEnum):
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the daemon stopped before the repair ended
    DRY_RUN = "dry_run"
    NOT_SENT = "not_sent"  # interrupted before its request reached Azure: no repair happened


class JsonFact:
    """A small frozen fact the state store keeps as JSON: a VMState ``state`` and plain
    fields. ``from_json`` gives None for no text, or for what this version cannot read."""

    def to_json(self) -> str:
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        return json.dumps({k: getattr(v, "value", v) for k, v in values.items()})

    @classmethod
    def from_json(cls, text: str | None) -> Self | None:
        try:
            raw = json.loads(text) if text else None
            if not isinstance(raw, dict):
                return None
            names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            values = {k: v for k, v in raw.items() if k in names}
            return cls(**{**values, "state": VMState(values["state"])})
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Announced(JsonFact):
    """What the hooks have told of a VM (power state, announced healthy, open incident:
    :mod:`~.alerts`), kept across restarts: a check stored just before a kill still fires
    the hooks it owes, and an incident outlives the daemon."""

    state: VMState
    healthy: bool
    incident: str | None = None  # INCIDENT_ID of the open incident
    incident_started: float | None = None
    failures: int = 0  # failed checks in the open incident
    alerts: int = 0  # on_failure alerts sent for it
    last_alert: float | None = None
    outcome: str | None = None  # the healing outcome the last alert told


@dataclass(frozen=True)
class OwedHook:
    """A hook recorded as owed before it was handed to the runner; deleted once it ran."""

    id: int
    vm: str
    hook: str
    context: dict[str, Any]


@dataclass(frozen=True)
class AzureMark(JsonFact):
    """What Azure said of a VM when a repair's intent was recorded: enough to tell, after
    a kill, whether the request ever reached Azure (a restart, start or redeploy that
    Azure accepted changes the provisioning state or its time, or the power state)."""

    state: VMState
    provisioning_state: str | None = None
    provisioning_time: str | None = None

    @classmethod
    def of(cls, info: PowerInfo) -> AzureMark:
        return cls(info.state, info.provisioning_state, info.provisioning_time)


@dataclass(frozen=True)
class RepairRecord:
    """One repair as the state store keeps it (recorded before Azure is asked)."""

    id: int
    vm: str
    action: RepairAction
    started: float  # epoch seconds
    ended: float | None
    outcome: RepairOutcome
    error: str | None
    before: AzureMark | None = None  # Azure's view when the intent was recorded

    @property
    def counts_against_budget(self) -> bool:
        return self.outcome not in (RepairOutcome.DRY_RUN, RepairOutcome.NOT_SENT)

    @property
    def failed(self) -> bool:
        return self.outcome in (RepairOutcome.FAILED, RepairOutcome.INTERRUPTED)

    @property
    def started_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.started, dt.UTC)


@dataclass(frozen=True)
class VMHealingState:
    vm: str
    grace_until: float = 0.0
    held_reason: str | None = None
    evidence: str | None = None  # what Azure said of the guest when a repair was decided
    phase: dict[str, Any] | None = None  # the repair in flight: {"action", "accepted"}


class HoldKind(StrEnum):
    """Which safety mechanism held a due repair back."""

    GRACE = "grace"
    IN_FLIGHT = "in_flight"
    BUDGET = "budget"
    BACKOFF = "backoff"
    BREAKER = "breaker"
    CAP = "cap"
    AGENT_READY = "agent_ready"
    PLATFORM = "azure_repairing"  # Resource Health: Azure is repairing the host (and a margin)
    MAINTENANCE = "maintenance"  # Azure's planned maintenance (Resource Health, or its window)
    USER_STOPPED = "user_stopped"  # a person or a tool stopped the VM (policy always)
