"""Healing decisions: pure functions of the facts, no I/O.

Given a VM's settings, its failure, its repair history and the fleet's state,
:func:`decide` says whether to repair it now and with what, or which safety
mechanism holds the repair back and until when. Every "no" carries a reason a
person can read, because users must never wonder why nothing happens.

Safety mechanisms, in the order they are checked:
restart policy -> grace period -> repair already in flight -> restart budget ->
exponential backoff -> fleet circuit breaker -> cap on repairs in flight ->
(escalation to redeploy) -> dry run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .config import HealingSettings, MonitoringConfig, RestartPolicy
from .models import HealthFailure, RepairAction, VMState
from .state import RepairRecord


@dataclass(frozen=True)
class FleetView:
    """The fleet as the breaker and the in-flight cap see it."""

    monitored: int = 1
    running: int = 1
    failing: int = 0
    in_flight: int = 0
    breaker_open: bool = False


@dataclass(frozen=True)
class Decision:
    action: RepairAction | None
    reason: str
    held: bool = False  # a repair was due but a safety mechanism held it back
    dry_run: bool = False
    hold_kind: str | None = None  # grace | in_flight | budget | backoff | breaker | cap


def in_flight_cap(healing: HealingSettings, fleet_size: int) -> int:
    """Default: one repair at a time below 20 VMs, else 5% of the fleet."""
    if healing.max_in_flight:
        return healing.max_in_flight
    return 1 if fleet_size < 20 else max(1, fleet_size * 5 // 100)


def breaker_trips(healing: HealingSettings, running: int, failing: int) -> bool:
    """True when so much of the fleet fails at once that the monitor itself is suspect."""
    needed = max(healing.breaker_min_failing, math.ceil(healing.breaker_failing_ratio * running))
    return running > 0 and failing >= needed


def _at(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S UTC")


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
        if policy is RestartPolicy.ALWAYS and failure.state in (VMState.STOPPED,
                                                                VMState.DEALLOCATED):
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

    def hold(kind: str, text: str) -> Decision:
        return Decision(None, f"{why}; held back: {text}", held=True, dry_run=dry_run,
                        hold_kind=kind)

    # Dry-run decisions are judged against dry-run history, real ones against real history,
    # so switching dry-run off is not blocked by repairs that never happened.
    mine = [r for r in repairs if (r.outcome == "dry_run") == dry_run]
    if not dry_run and grace_until > now:
        return hold("grace", f"grace period after the last repair until {_at(grace_until)}")
    if any(r.outcome == "in_flight" for r in mine):
        return hold("in_flight", "a repair of this VM is already in progress")
    window_start = now - healing.budget_window_seconds
    recent = [r for r in mine if r.started >= window_start]
    if healing.restart_budget == 0:
        return hold("budget", "restart budget is 0 ([healing] restart_budget)")
    if len(recent) >= healing.restart_budget:
        resume = recent[0].started + healing.budget_window_seconds
        return hold(
            "budget",
            f"restart budget spent ({len(recent)} repairs in the last "
            f"{_span(healing.budget_window_seconds)}); healing of this VM paused until "
            f"{_at(resume)}",
        )
    if recent:
        wait = min(healing.backoff_max_seconds,
                   healing.backoff_initial_seconds * 2 ** (len(recent) - 1))
        next_allowed = recent[-1].started + wait
        if now < next_allowed:
            return hold("backoff", f"backing off {_span(wait)} after the last repair, until "
                                   f"{_at(next_allowed)}")
    if action is RepairAction.RESTART and fleet.breaker_open:
        return hold(
            "breaker",
            f"circuit breaker open: {fleet.failing} of {fleet.running} running VMs fail at "
            "once, the monitor's own network is the likelier culprit",
        )
    cap = in_flight_cap(healing, fleet.monitored)
    if not dry_run and fleet.in_flight >= cap:
        return hold("cap", f"{fleet.in_flight} repairs already in flight (cap {cap})")
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
