"""The monitoring rules, as plain functions of the facts: no I/O, no locks, no logging.

What counts as a failure and how many in a row; what a check's reason says; which change
between two checks fires which hook; the fleet as the circuit breaker sees it; the
one-line status. The healing decision itself lives in :mod:`azlin_lifecycle.policy`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from .config import HealingSettings, HookType
from .models import (
    Announced,
    HealthStatus,
    PowerInfo,
    SshFault,
    SshProbeResult,
    VMState,
    VMTarget,
)
from .paths import host_key_name, known_hosts_path

SSH_STATES = (VMState.RUNNING, VMState.UNKNOWN)  # Azure says it may be up: check SSH
STOPPED_STATES = (VMState.STOPPED, VMState.DEALLOCATED)


# --------------------------------------------------------------------------- counting
def counts_toward_restart(probe: SshProbeResult | None, in_grace: bool) -> bool:
    """Does this check add to the VM's consecutive failures?

    Only a failed SSH probe of a guest-side fault (a prober that does not classify is
    taken as guest-side) outside the grace period after a repair. Not running, healthy,
    booting after a repair, or a fault a restart cannot fix: no.
    """
    if probe is None or probe.reachable or in_grace:
        return False
    return probe.fault is None or probe.fault.guest_side


def next_failure_count(previous: int, counts: bool) -> int:
    """Consecutive failures: one more when the check counts, else back to 0."""
    return previous + 1 if counts else 0


# --------------------------------------------------------------------------- reasons
def check_reason(target: VMTarget, state: VMState, power: PowerInfo | None,
                 azure_error: str | None, probe: SshProbeResult | None, in_grace: bool) -> str:
    """Why a check found the VM unhealthy, in words, with what to fix when it "needs you"."""
    if state is VMState.NOT_FOUND:
        return f"not found in Azure: {power.message if power else ''}".rstrip(": ")
    if probe is None:
        return f"VM is {state.value} in Azure"
    text = f"SSH {probe.reason or 'failed'}"
    if probe.fault is not None and probe.fault.needs_you:
        hint = fault_hint(probe.fault, target)
        text += (f": {hint}" if hint else "") + "; a restart cannot fix this (not counted)"
    if azure_error:
        text += f"; Azure: {azure_error}"
    if in_grace:
        text += " (grace period after a repair: not counted)"
    return text


def fault_hint(fault: SshFault, target: VMTarget) -> str:
    """What a person should fix for a fault on the monitor's side or in the config ("" when
    the probe's reason says it already, as a Bastion's do)."""
    vm, host, port = target.name, target.ssh_host, target.ssh_port
    recorded = target.bastion.host_key_name if target.bastion else host or ""
    hints = {
        SshFault.AUTH_FAILED:
            f"the VM refused key {target.ssh_key} for user {target.ssh_user}; check ssh_user "
            f"and ssh_key (azlin lifecycle show {vm})",
        SshFault.HOST_KEY_CHANGED:
            f"{host}:{port} presents a host key other than the one recorded in "
            f"{known_hosts_path()}; if the VM was rebuilt, remove the old entry "
            f"(ssh-keygen -R '{host_key_name(recorded, port)}' -f {known_hosts_path()})",
        SshFault.NAME_RESOLUTION:
            f"{host!r} does not resolve; fix ssh_host, or unset it to use the address Azure "
            "reports",
        SshFault.KEY_UNREADABLE:
            "set ssh_key to a readable private key without a passphrase",
        SshFault.NETWORK_DOWN:
            f"this machine has no route to {host}; check the monitor's own network",
        SshFault.BASTION_UNUSABLE: "",
        SshFault.BASTION_UNREACHABLE:
            "the tunnel's side (this machine's network or Azure Bastion), not the VM's; "
            "checked again at the next interval",
    }
    return hints.get(fault, f"check the VM's SSH settings (azlin lifecycle show {vm})")


# --------------------------------------------------------------------------- Azure's scope
# Azure's answers that a VM's subscription or resource group does not exist, or that this
# login cannot read it: the configuration (or the login's roles) is wrong, never the VM.
# Code -> (which of the two it is about; None: the one the call was about, and what).
SCOPE_CODES: dict[str, tuple[str | None, str]] = {
    "SubscriptionNotFound": ("subscription", "not found"),
    "InvalidSubscriptionId": ("subscription", "is not a valid subscription ID"),
    "ResourceGroupNotFound": ("resource group", "not found"),
    "AuthorizationFailed": (None, "cannot be read by this login"),
}


def is_scope_code(code: str | None) -> TypeGuard[str]:
    return code in SCOPE_CODES


def azure_words(error: str) -> str:
    """Azure's own words in an adapter's error ("<what was asked>: <Azure's message>")."""
    return error.partition(": ")[2] or error


def scope_reason(target: VMTarget, code: str, words: str, asked: str) -> str:
    """Why the check stopped at Azure's answer ``code`` (one of SCOPE_CODES): the
    subscription or resource group by value and where it was set, and what to do.
    ``asked``: "subscription" or "resource group", what the refused call read."""
    part, what = SCOPE_CODES[code]
    part = part or asked
    if part == "subscription":
        value, origin = target.subscription_id, target.subscription_from
    else:
        value, origin = target.resource_group, target.resource_group_from
    where = f" (from {origin})" if origin else ""
    fix = ("give the login a role that can read it (e.g. Reader), or fix the setting"
           if code == "AuthorizationFailed" else "fix the setting")
    return (f"{part} {value}{where} {what}: {words.rstrip('.')}; {fix} "
            "(a restart cannot fix this, not counted)")


# --------------------------------------------------------------------------- transitions
@dataclass(frozen=True)
class Transition:
    """What changed between a VM's previous check and this one, and what it fires."""

    power_changed: bool = False
    hooks: tuple[tuple[HookType, Mapping[str, object]], ...] = ()
    announce_healthy: bool = False  # "healthy (again)": the event and on_healthy
    defer_healthy: bool = False  # healthy while its repair runs: announce after on_restart


def transition(prev: HealthStatus | Announced | None, status: HealthStatus, *,
               repairing: bool, unannounced: bool) -> Transition:
    """The hooks a check fires after ``prev`` (the check told last): on_stop / on_start
    when the power state crosses stopped / running, on_healthy when the VM becomes
    healthy — but never before the end of a repair in flight (``repairing``), so
    on_restart always comes first; ``unannounced``: it was healthy during its repair and
    is announced now."""
    hooks: list[tuple[HookType, Mapping[str, object]]] = []
    power_changed = prev is not None and prev.state != status.state
    if prev is not None and power_changed:
        change = {"state": status.state.value, "previous_state": prev.state.value}
        if status.state in STOPPED_STATES and prev.state not in STOPPED_STATES:
            hooks.append((HookType.ON_STOP, change))
        elif status.state is VMState.RUNNING and prev.state not in SSH_STATES:
            hooks.append((HookType.ON_START, change))
    becomes_healthy = status.healthy and (prev is None or not prev.healthy or unannounced)
    if becomes_healthy and repairing:
        return Transition(power_changed, tuple(hooks), defer_healthy=True)
    if becomes_healthy:
        hooks.append((HookType.ON_HEALTHY, {"state": status.state.value}))
    return Transition(power_changed, tuple(hooks), announce_healthy=becomes_healthy)


# --------------------------------------------------------------------------- the fleet
@dataclass(frozen=True)
class FleetView:
    """The fleet as the breaker and the in-flight cap see it."""

    monitored: int = 1
    running: int = 1
    failing: int = 0
    in_flight: int = 0
    breaker_open: bool = False
    many: int | None = None  # this many failing at once is "many": the breaker's threshold


def fleet_view(monitored: int, latest: Iterable[HealthStatus], in_flight: int,
               breaker_open: bool) -> FleetView:
    """Running VMs (Azure says they may be up) and how many of them fail (``failing``)."""
    running = [s for s in latest if s.state in SSH_STATES]
    return FleetView(monitored=monitored, running=len(running),
                     failing=sum(1 for s in running if s.failing), in_flight=in_flight,
                     breaker_open=breaker_open)


def breaker_threshold(healing: HealingSettings, running: int) -> int:
    """How many of ``running`` VMs failing at once is "many": the breaker opens, and
    their alerts come as one digest."""
    return max(healing.breaker_min_failing, math.ceil(healing.breaker_failing_ratio * running))


def breaker_trips(healing: HealingSettings, running: int, failing: int) -> bool:
    """True when so much of the fleet fails at once that the monitor itself is suspect."""
    return running > 0 and failing >= breaker_threshold(healing, running)


# --------------------------------------------------------------------------- status
def status_line(enabled: Sequence[str], latest: Mapping[str, HealthStatus], *,
                breaker_open: bool, dry_run: bool, in_flight: Iterable[str],
                config_error: str | None, role: str | None = None,
                standby_reason: str | None = None) -> str:
    """The one-line summary systemd shows (``STATUS=``) and ``status`` repeats.

    With ``[ha]`` it starts with the ``role``, "leader" or "standby"; a standby ends with
    why it does not repair (``standby_reason``) instead of the healing state."""
    if not enabled:
        text = "0 VMs monitored (add one: azlin lifecycle enable VM)"
    else:
        checked = [latest[v] for v in sorted(enabled) if v in latest]
        text = f"{len(enabled)} VMs: {sum(1 for s in checked if s.healthy)} healthy"
        for label, names in (
            ("failing", [s.vm_name for s in checked if s.failing]),
            ("need you", [s.vm_name for s in checked if s.needs_you]),
            ("recovering", [s.vm_name for s in checked if s.ssh_checked and not s.healthy
                            and not s.failing and not s.needs_you]),
        ):
            if names or label == "failing":
                text += f", {len(names)} {label}"
            if names:
                text += " (" + ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") + ")"
        for state in (VMState.STOPPED, VMState.DEALLOCATED, VMState.NOT_FOUND):
            count = sum(1 for s in checked if s.state is state)
            if count:
                text += f", {count} {state.value.replace('_', ' ')}"
        if len(enabled) > len(checked):
            text += f", {len(enabled) - len(checked)} not checked yet"
        repairing = sorted(in_flight)
        if role == "standby":
            text += f"; not repairing: {standby_reason or 'another monitor leads'}"
        elif breaker_open:
            text += "; healing held: circuit breaker open"
        elif dry_run:
            text += "; dry run (observe only)"
        elif repairing:
            text += f"; repairing {', '.join(repairing)}"
        else:
            text += "; healing active"
    if config_error:
        text += f"; config reload failed: {config_error}"
    return f"{role}: {text}" if role else text
