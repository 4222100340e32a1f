"""Healing decisions: pure functions of the facts, no I/O.

Given a VM's settings, its failure, its repair history and the fleet's state,
:func:`decide` says whether to repair it now and with what, or which safety
mechanism holds the repair back and until when. Every "no" carries a reason a
person can read, because users must never wonder why nothing happens.

Safety mechanisms, in the order they are checked:
restart policy -> grace period -> repair already in flight -> restart budget ->
exponential backoff -> fleet circuit breaker -> cap on repairs in flight ->
(escalation to redeploy) -> dry run; then, for any repair that would go ahead, Resource
Health (:mod:`.signals`: Azure repairing or maintaining the host, a user's stop, degraded
hardware), and only for a restart or redeploy the maintenance window and
:func:`corroborate` with Azure's own view of the guest (one instance view).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .config import HealingSettings, MonitoringConfig, RestartPolicy
from .models import (
    AzureMark,
    HealthFailure,
    HoldKind,
    PowerInfo,
    RepairAction,
    RepairOutcome,
    RepairRecord,
    VMState,
    clock_utc,
)
from .rules import SSH_STATES, STOPPED_STATES, FleetView


@dataclass(frozen=True)
class Decision:
    action: RepairAction | None
    reason: str
    held: bool = False  # a repair was due but a safety mechanism held it back
    dry_run: bool = False
    hold_kind: HoldKind | None = None
    evidence: str | None = None  # Azure's view of the guest, when it was asked
    mark: AzureMark | None = None  # Azure's view of the VM, kept with the repair's intent


def in_flight_cap(healing: HealingSettings, fleet_size: int) -> int:
    """Default: one repair at a time below 20 VMs, else 5% of the fleet."""
    if healing.max_in_flight:
        return healing.max_in_flight
    return 1 if fleet_size < 20 else max(1, fleet_size * 5 // 100)


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def wanted_action(vm: MonitoringConfig, failure: HealthFailure) -> tuple[RepairAction | None, str]:
    """What the restart policy alone asks for, and why."""
    policy = vm.restart_policy
    if failure.state.stopped_on_purpose:
        if policy is RestartPolicy.ALWAYS and failure.state in STOPPED_STATES:
            return RepairAction.START, f"VM is {failure.state.value}; restart policy always"
        return None, f"VM is {failure.state.value} on purpose; policy {policy.value} leaves it"
    if failure.state is VMState.NOT_FOUND:
        return None, "VM not found in Azure: nothing to repair"
    if failure.state is VMState.STARTING:
        return None, "VM is starting"
    if policy is RestartPolicy.NEVER:
        return None, "restart policy is never: reporting only"
    if policy is RestartPolicy.ALWAYS and failure.failure_count >= 1:
        return RepairAction.RESTART, f"{failure.reason}; restart policy always"
    if policy is RestartPolicy.ON_FAILURE and failure.failure_count >= vm.ssh_failure_threshold:
        return RepairAction.RESTART, (
            f"{failure.reason}; {failure.failure_count} consecutive failures "
            f"(threshold {vm.ssh_failure_threshold})"
        )
    if failure.failure_count == 0:
        return None, f"{failure.reason} (not counted)"
    return None, (
        f"{failure.reason}; {failure.failure_count} of {vm.ssh_failure_threshold} "
        "consecutive failures before a restart"
    )


def decide(
    vm: MonitoringConfig,
    healing: HealingSettings,
    failure: HealthFailure,
    repairs: Sequence[RepairRecord],
    *,
    grace_until: float,
    now: float,
    fleet: FleetView,
    last_healthy: float | None = None,
) -> Decision:
    """Decide what to do about ``failure``. ``repairs``: this VM's repairs, oldest first."""
    action, why = wanted_action(vm, failure)
    if action is None:
        return Decision(None, why)
    dry_run = healing.dry_run or vm.dry_run

    def hold(kind: HoldKind, text: str) -> Decision:
        return Decision(None, f"{why}; held back: {text}", held=True, dry_run=dry_run,
                        hold_kind=kind)

    # Dry-run decisions are judged against dry-run history, real ones against real history,
    # so switching dry-run off is not blocked by repairs that never happened; nor is a
    # repair whose request never reached Azure (NOT_SENT) counted at all.
    mine = [r for r in repairs if (r.outcome is RepairOutcome.DRY_RUN) == dry_run
            and r.outcome is not RepairOutcome.NOT_SENT]
    if not dry_run and grace_until > now:
        return hold(HoldKind.GRACE,
                    f"grace period after the last repair until {clock_utc(grace_until)}")
    if any(r.outcome is RepairOutcome.IN_FLIGHT for r in mine):
        return hold(HoldKind.IN_FLIGHT, "a repair of this VM is already in progress")
    window_start = now - healing.budget_window_seconds
    recent = [r for r in mine if r.started >= window_start]
    if healing.restart_budget == 0:
        return hold(HoldKind.BUDGET, "restart budget is 0 ([healing] restart_budget)")
    if len(recent) >= healing.restart_budget:
        resume = recent[0].started + healing.budget_window_seconds
        return hold(
            HoldKind.BUDGET,
            f"restart budget spent ({len(recent)} repairs in the last "
            f"{_span(healing.budget_window_seconds)}); healing of this VM paused until "
            f"{clock_utc(resume)}",
        )
    if recent:
        wait = min(healing.backoff_max_seconds,
                   healing.backoff_initial_seconds * 2 ** (len(recent) - 1))
        next_allowed = recent[-1].started + wait
        if now < next_allowed:
            return hold(HoldKind.BACKOFF, f"backing off {_span(wait)} after the last repair, "
                                          f"until {clock_utc(next_allowed)}")
    if action is RepairAction.RESTART and fleet.breaker_open:
        return hold(
            HoldKind.BREAKER,
            f"circuit breaker open: {fleet.failing} of {fleet.running} running VMs fail at "
            "once, the monitor's own network is the likelier culprit",
        )
    cap = in_flight_cap(healing, fleet.monitored)
    if not dry_run and fleet.in_flight >= cap:
        return hold(HoldKind.CAP, f"{fleet.in_flight} repairs already in flight (cap {cap})")
    if action is RepairAction.RESTART and healing.escalate_after_failed_restarts:
        unhelpful = [
            r for r in mine
            if r.action is RepairAction.RESTART
            and (last_healthy is None or r.started > last_healthy)
        ]
        if len(unhelpful) >= healing.escalate_after_failed_restarts:
            action = RepairAction.REDEPLOY
            why += f"; {len(unhelpful)} restarts did not help: escalating to redeploy"
    if dry_run:
        return Decision(action, f"dry run: would {action.value}: {why}", dry_run=True)
    return Decision(action, why)


# --------------------------------------------------------------------------- corroboration
GUEST_REPAIRS = (RepairAction.RESTART, RepairAction.REDEPLOY)


def guest_evidence(view: PowerInfo, now: float, max_age: float) -> tuple[bool | None, str]:
    """What Azure says of the guest OS: (alive?, in words). None: Azure cannot tell.

    The VM agent runs inside the guest and reports to Azure; "Ready" with a recent time
    means the OS is up. The Application Health extension's ``vmHealth`` is the user's own
    probe of the workload. Either saying unhealthy corroborates a failed SSH check.
    """
    if view.vm_health == "unhealthy":
        return False, "Application Health extension: unhealthy"
    agent = view.agent_status
    if agent and agent.lower() != "ready":
        return False, f"VM agent: {agent}" + (f" ({view.agent_message})" if view.agent_message
                                              else "")
    if agent:
        words = "VM agent: Ready"
        if view.agent_time is not None:
            age = now - view.agent_time.timestamp()
            if age > max_age:
                return None, f"VM agent: Ready, but last reported {_span(age)} ago (stale)"
            words += f" (reported {clock_utc(view.agent_time.timestamp())})"
        if view.vm_health == "healthy":
            words += "; Application Health extension: healthy"
        return True, words
    if view.vm_health == "healthy":
        return True, "Application Health extension: healthy"
    return None, "Azure reports no VM agent status"


def corroborate(
    vm: MonitoringConfig,
    healing: HealingSettings,
    failure: HealthFailure,
    decision: Decision,
    view: PowerInfo | None,
    view_error: str | None,
    now: float,
) -> Decision:
    """Check a restart or redeploy that would go ahead against Azure's view of the guest.

    Agent Ready (and recent) or vmHealth healthy while SSH fails means the guest OS is
    alive: the restart is held, unless the failures have gone on to
    ``agent_ready_override_failures`` in a row (0: never while the agent says Ready).
    Agent Not Ready or vmHealth unhealthy corroborate, and the repair goes ahead; so it
    does when Azure cannot tell. The evidence is kept in the decision either way.
    """
    if decision.action not in GUEST_REPAIRS:
        return decision
    if view is None:
        words = f"Azure's view of the guest unavailable ({view_error or 'no answer'})"
        return dataclasses.replace(decision, reason=f"{decision.reason}; {words}",
                                   evidence=words)
    if view.state not in SSH_STATES:  # stopped or gone meanwhile
        return Decision(None, f"{failure.reason}; Azure now reports the VM "
                        f"{view.state.value.replace('_', ' ')}: not restarting",
                        evidence=f"power state: {view.state.value}")
    alive, words = guest_evidence(view, now, healing.agent_status_max_age_seconds)
    if not alive:
        return dataclasses.replace(decision, reason=f"{decision.reason}; Azure: {words}",
                                   evidence=words)
    needed = max(healing.agent_ready_override_failures, vm.ssh_failure_threshold)
    if healing.agent_ready_override_failures and failure.failure_count >= needed:
        return dataclasses.replace(
            decision, evidence=words,
            reason=f"{decision.reason}; Azure: {words}, but SSH has failed "
                   f"{failure.failure_count} times in a row (agent_ready_override_failures = "
                   f"{healing.agent_ready_override_failures}): repairing anyway")
    when = (f"once SSH has failed {needed} times in a row ([healing] "
            "agent_ready_override_failures)" if healing.agent_ready_override_failures else
            "not while it does ([healing] agent_ready_override_failures = 0)")
    _, why = wanted_action(vm, failure)
    return Decision(
        None,
        f"{why}; held back: Azure: {words} while SSH fails, so the guest OS is alive and SSH "
        f"or the network on the way is the likelier culprit; repairing {when}",
        held=True, dry_run=decision.dry_run, hold_kind=HoldKind.AGENT_READY, evidence=words)


# --------------------------------------------------------------------------- after a kill
TRANSITIONS = (VMState.STARTING, VMState.STOPPING, VMState.DEALLOCATING)


@dataclass(frozen=True)
class Settlement:
    """What Azure shows of a repair that was interrupted between its intent and its end.
    ``sent``: False, the request never reached Azure; True, it did; None, Azure cannot
    tell us (unreadable, or no view was kept with the intent) and it counts as sent."""

    sent: bool | None
    words: str


def settle(record: RepairRecord, view: PowerInfo | None, error: str | None) -> Settlement:
    """Did the interrupted ``record``'s request reach Azure? Compared with the view kept
    with its intent (:class:`~.models.AzureMark`): an accepted restart, start or redeploy
    moves the provisioning state to updating and then gives it a new time, or changes the
    power state; unchanged and nothing under way means it was never received."""
    action = record.action.value
    if view is None:
        return Settlement(None, f"Azure's view of the VM could not be read ({error}); the "
                                f"{action} is taken as sent and its grace period stands")
    if view.provisioning_state == "updating" or view.state in TRANSITIONS:
        return Settlement(True, f"Azure shows an operation under way (provisioning "
                                f"{view.provisioning_state}, power {view.state.value}): the "
                                f"{action} reached Azure; its grace period stands")
    mark = record.before
    if mark is None:
        return Settlement(None, f"no view of Azure was kept with the intent; the {action} is "
                                "taken as sent and its grace period stands")
    same_state = view.state is mark.state
    same_provisioning = mark.provisioning_state is None or (  # None: a start's mark
        view.provisioning_state == mark.provisioning_state
        and view.provisioning_time == mark.provisioning_time)
    if same_state and same_provisioning and mark.provisioning_state is not None \
            and mark.provisioning_time is None:
        # e.g. a failed provisioning state, which carries no time: nothing tells whether a
        # restart came and went (it ends running, as it began), so it counts as sent
        return Settlement(None, f"Azure's view kept with the intent has no provisioning time "
                                f"to compare; the {action} is taken as sent and its grace "
                                "period stands")
    if same_state and same_provisioning:
        return Settlement(False, f"the {action} never reached Azure: power state "
                                 f"{view.state.value} and provisioning unchanged since the "
                                 "intent, nothing under way; no budget spent, the rules decide "
                                 "again now")
    return Settlement(True, f"Azure shows the VM changed since the intent (power "
                            f"{mark.state.value} -> {view.state.value}, provisioning "
                            f"{mark.provisioning_time or '?'} -> {view.provisioning_time or '?'}): "
                            f"the {action} reached Azure; its grace period stands")
