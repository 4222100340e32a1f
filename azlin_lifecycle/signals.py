"""What Azure itself knows about a VM before a repair, and what it means (pure: no I/O).

Resource Health (``availabilityStatuses/current``) says whether the platform is the
problem. It checks the host, not the guest: a hung sshd or kernel normally stays
*Available*, so it is a gate before a repair, never a detector. Its answer, read once per
repair decision that would act (restart, start, redeploy), is :class:`PlatformHealth`:

* **platform** (Unavailable, initiated by the platform, unplanned: the host crashed, its
  storage went offline ...) — Azure is repairing it: the repair is held, spending no
  budget, until Azure reports the VM available again and ``platform_margin_seconds``
  more have passed (the VM boots after Azure's repair);
* **planned** (the platform's planned maintenance: a reboot, a freeze) — held likewise;
  so is a restart or redeploy while ``instanceView.maintenanceRedeployStatus``'s
  maintenance window is open (:func:`maintenance_gate`);
* **customer** (a person or a tool stopped, deallocated or restarted it) — policy
  ``always`` does not start a VM a user stopped unless ``[healing] start_user_stopped``;
* **degraded** (Azure predicts a hardware failure of the host) — where escalation is on,
  a redeploy (to another host) instead of a restart;
* **unknown**, or unreadable — no information: decided as without it, and the evidence
  says so.

Which fields: the gates use the documented ``availabilityState``, ``context``
("Platform Initiated", "Customer Initiated" ...), ``category`` (Planned | Unplanned) and
``reasonType``; the annotation's name ("VirtualMachineHostCrashed"), which Azure's docs
list for Resource Health, Resource Graph and Event Grid but the REST spec names no field
for, is read where an answer carries it (``annotationName``) and only words the message
and tells degraded hardware apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .config import HealingSettings, MonitoringConfig
from .models import (
    HealthFailure,
    HealthStatus,
    HoldKind,
    MaintenanceWindow,
    RepairAction,
    VMState,
    clock_utc,
)
from .policy import GUEST_REPAIRS, Decision, wanted_action

# VM health annotations as Azure's docs list them, by what they mean for a repair.
PLATFORM_UNPLANNED = frozenset({
    "VirtualMachineHostCrashed", "VirtualMachineStorageOffline",
    "VirtualMachineHostRebootedForRepair", "VirtualMachineMigrationInitiatedForRepair"})
PLANNED = frozenset({
    "VirtualMachineRebootInitiatedForPlannedMaintenance", "VirtualMachinePlannedFreezeStarted",
    "VirtualMachinePlannedFreezeSucceeded", "VirtualMachinePlannedFreezeFailed",
    "LiveMigrationSucceeded"})
CUSTOMER = frozenset({
    "VirtualMachineRestarted", "VirtualMachineStopInitiatedByControlPlane",
    "VirtualMachineDeallocationInitiated", "VirtualMachineRedeployInitiatedByControlPlane"})
DEGRADED = frozenset({
    "VirtualMachinePossiblyDegradedDueToHardwareFailure",
    "VirtualMachineScheduledForServiceHealing",
    "VirtualMachineMigrationScheduledForDegradedHardware", "AccelnetUnhealthy"})
ANNOTATIONS = PLATFORM_UNPLANNED | PLANNED | CUSTOMER | DEGRADED


class Cause(StrEnum):
    """What a Resource Health answer means for a repair."""

    NONE = "none"  # available, or nothing that bears on a repair
    UNKNOWN = "unknown"  # Azure has no signal (> 10 min): no information either way
    PLATFORM = "platform"  # Azure is repairing the host (unplanned)
    PLANNED = "planned"  # Azure's planned maintenance
    CUSTOMER = "customer"  # a person or a tool did it
    DEGRADED = "degraded"  # the host's hardware is degraded: Azure recommends a redeploy


@dataclass(frozen=True)
class PlatformHealth:
    """A VM's ``availabilityStatuses/current`` (times are epoch seconds)."""

    state: str  # availabilityState: Available | Unavailable | Degraded | Unknown
    context: str | None = None  # Platform Initiated | Customer Initiated | VM Initiated
    category: str | None = None  # Planned | Unplanned (for platform-initiated events)
    reason_type: str | None = None  # Unplanned | Planned | UserInitiated (free text)
    annotation: str | None = None
    title: str | None = None
    summary: str | None = None
    since: float | None = None  # occuredTime: when the state last changed
    resolution_eta: float | None = None
    resolved_at: float | None = None  # recentlyResolved.resolvedTime (an unplanned outage)

    @property
    def cause(self) -> Cause:
        state = self.state.strip().lower()
        if state in ("", "unknown"):
            return Cause.UNKNOWN
        if state == "available":
            return Cause.NONE
        context = (self.context or "").lower()
        reason = (self.reason_type or "").lower().replace(" ", "")
        named = self.annotation
        planned = named in PLANNED or ("customer" not in context and (
            (self.category or "").lower() == "planned" or reason == "planned"))
        customer = named in CUSTOMER or "customer" in context or reason in (
            "userinitiated", "customerinitiated")
        if named in DEGRADED or (state == "degraded" and not (planned or customer)):
            return Cause.DEGRADED
        if customer:
            return Cause.CUSTOMER
        if planned:
            return Cause.PLANNED
        if named in PLATFORM_UNPLANNED or "platform" in context or reason == "unplanned":
            return Cause.PLATFORM
        return Cause.NONE  # e.g. VM initiated: the guest crashed and reboots by itself

    @property
    def name(self) -> str:
        """The annotation, else Azure's title or summary, in a word or a sentence."""
        return self.annotation or self.title or self.summary or self.reason_type or self.state

    def words(self) -> str:
        """``Resource Health: Unavailable (VirtualMachineHostCrashed, Platform Initiated,
        Unplanned) since 09:14:00 UTC``."""
        if self.cause is Cause.UNKNOWN:
            return ("Resource Health: Unknown (Azure has had no signal from the VM for over "
                    "10 minutes): no information, decided without it")
        parts = [p for p in (self.annotation, self.context, self.category) if p]
        text = f"Resource Health: {self.state}" + (f" ({', '.join(parts)})" if parts else "")
        if self.since is not None and self.cause is not Cause.NONE:
            text += f" since {clock_utc(self.since)}"
        return text


@dataclass(frozen=True)
class Capture:
    """What a post-mortem caught before a guest repair: the serial log and the screenshot
    (their paths under the state directory), or why there is none (``note``)."""

    directory: Path | None
    serial_log: Path | None
    screenshot: Path | None
    note: str  # "serial log 1.0 MB, screenshot 12 KB in 1.2 s" / "no capture: ..."
    seconds: float = 0.0


# --------------------------------------------------------------------------- the gates
def _hold(vm: MonitoringConfig, failure: HealthFailure, decision: Decision, kind: HoldKind,
          text: str, evidence: str) -> Decision:
    _, why = wanted_action(vm, failure)
    return Decision(None, f"{why}; held back: {text}", held=True, dry_run=decision.dry_run,
                    hold_kind=kind, evidence=evidence)


def _span(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def platform_gate(vm: MonitoringConfig, healing: HealingSettings, failure: HealthFailure,
                  decision: Decision, health: PlatformHealth | None, error: str | None,
                  now: float, last_seen: float | None) -> tuple[Decision, bool]:
    """Check a restart, start or redeploy that would go ahead against Resource Health.

    ``last_seen``: when Azure was last seen repairing the host or maintaining it (kept by
    the caller across decisions). Returns the decision, and whether Azure is repairing or
    maintaining it now (the caller then keeps ``now`` as ``last_seen``).
    """
    if decision.action is None:
        return decision, False
    if health is None:
        words = f"Resource Health unreadable ({error or 'no answer'}): no information, " \
                "decided without it"
        return _with_evidence(decision, words), False
    cause, words, margin = health.cause, health.words(), healing.platform_margin_seconds
    if cause in (Cause.PLATFORM, Cause.PLANNED):
        what = "Azure is repairing the host" if cause is Cause.PLATFORM else \
            "Azure's planned maintenance"
        since = "" if health.since is None else f" since {clock_utc(health.since)}"
        eta = "" if health.resolution_eta is None else \
            f"; Azure expects it resolved by {clock_utc(health.resolution_eta)}"
        text = (f"{what} ({health.name}){since}{eta}; no budget spent; healing resumes "
                f"{_span(margin)} after Azure reports the VM available again ([healing] "
                "platform_margin_seconds)")
        kind = HoldKind.PLATFORM if cause is Cause.PLATFORM else HoldKind.MAINTENANCE
        return _hold(vm, failure, decision, kind, text, words), True
    # After Azure's repair: when it was last seen under way, when Azure says it resolved,
    # and (once seen) when the state last changed — to Available, the moment it ended.
    seen = [t for t in (last_seen, health.resolved_at) if t is not None]
    if seen and cause is Cause.NONE and health.since is not None:
        seen.append(health.since)
    if seen and now < max(seen) + margin and cause is not Cause.CUSTOMER:
        cleared = max(seen)
        text = (f"Azure's repair or maintenance of the host ended (last seen {clock_utc(cleared)}"
                f"); the VM is given until {clock_utc(cleared + margin)} to come back "
                "([healing] platform_margin_seconds); no budget spent")
        return _hold(vm, failure, decision, HoldKind.PLATFORM, text, words), False
    if (cause is Cause.CUSTOMER and decision.action is RepairAction.START
            and not healing.start_user_stopped):
        at = "" if health.since is None else f" at {clock_utc(health.since)}"
        text = (f"stopped by a user{at} (Resource Health: {health.name}); policy always starts "
                "a VM a user stopped only with [healing] start_user_stopped = true — start "
                "it yourself, or set that")
        return _hold(vm, failure, decision, HoldKind.USER_STOPPED, text, words), False
    if cause is Cause.DEGRADED and decision.action is RepairAction.RESTART:
        if healing.escalate_after_failed_restarts:
            _, why = wanted_action(vm, failure)
            why += (f"; Azure reports degraded hardware ({health.name}): redeploying to "
                    "another host instead of restarting")
            return dataclasses.replace(
                decision, action=RepairAction.REDEPLOY, evidence=words,
                reason=f"dry run: would redeploy: {why}" if decision.dry_run else why), False
        words += ("; Azure recommends a redeploy (degraded hardware), but escalation is off "
                  "([healing] escalate_after_failed_restarts = 0): restarting")
    return _with_evidence(decision, words), False


def maintenance_gate(vm: MonitoringConfig, failure: HealthFailure, decision: Decision,
                     window: MaintenanceWindow | None, now: float) -> Decision:
    """Hold a restart or redeploy while the VM's planned-maintenance window is open
    (Azure may reboot or move it then); it resumes when the window closes."""
    if decision.action not in GUEST_REPAIRS or window is None or not window.open_at(now):
        return decision
    assert window.end is not None
    said = f": {window.last_message}" if window.last_message else ""
    words = (f"maintenance window open {clock_utc(window.start or now)} to "
             f"{clock_utc(window.end)} (maintenanceRedeployStatus{said})")
    text = (f"Azure's planned maintenance window is open until {clock_utc(window.end)}, when "
            "Azure may reboot or move the VM itself; no budget spent; healing resumes when "
            "the window closes")
    return _hold(vm, failure, decision, HoldKind.MAINTENANCE, text, words)


def _with_evidence(decision: Decision, words: str) -> Decision:
    return dataclasses.replace(decision, evidence=join_evidence(words, decision.evidence))


def join_evidence(*parts: str | None) -> str | None:
    """Evidence from several of Azure's answers, in one line ("; "-joined), or None."""
    kept = [p for p in parts if p]
    return "; ".join(dict.fromkeys(kept)) if kept else None


# --------------------------------------------------------------------------- a repair waiting
def repair_progress(action: str, accepted: float, before: HealthStatus | None,
                    after: HealthStatus | None, now: float) -> str:
    """What ``status`` says of a repair Azure accepted at ``accepted``, from the VM's last
    check before then and its latest since: unchanged (still running, failing as before)
    means Azure has not started it yet — a restart or redeploy we request waits for the
    guest's approval of its Scheduled Event, up to ~15 minutes."""
    started = after is not None and (
        after.healthy or after.state is not VMState.RUNNING
        or (before is not None and after.fault is not before.fault))
    when = f"{clock_utc(accepted)}, {int(max(now - accepted, 0))} s ago"
    if started:
        assert after is not None
        seen = "healthy again" if after.healthy else after.state.value if \
            after.state is not VMState.RUNNING else (after.reason or "changed")
        return f"{action} accepted ({when}), under way: the VM is {seen}"
    wait = "" if action == RepairAction.START.value else (
        "; a restart or redeploy can wait ~15 min for the guest's approval of its Scheduled "
        "Event (see automaticallyApprove in the README's Troubleshooting)")
    return f"{action} accepted, Azure has not started it yet (accepted {when}){wait}"
