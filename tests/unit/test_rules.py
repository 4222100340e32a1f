"""The monitoring rules as plain functions: counting, reasons, transitions, fleet, status."""

from __future__ import annotations

import pytest

from azlin_lifecycle.config import HealingSettings, HookType
from azlin_lifecycle.models import HealthStatus, SshFault, SshProbeResult, VMState, VMTarget
from azlin_lifecycle.rules import (
    breaker_trips,
    check_reason,
    counts_toward_restart,
    fleet_view,
    next_failure_count,
    status_line,
    transition,
)

TARGET = VMTarget("web-1", "sub", "rg", "20.1.2.3", 22, "azureuser", "~/.ssh/azlin_key")


def failed(fault: SshFault | None, reason: str = "x") -> SshProbeResult:
    return SshProbeResult(False, reason, fault=fault)


def status(vm: str = "web-1", *, healthy: bool = False, failures: int = 0,
           state: VMState = VMState.RUNNING, fault: SshFault | None = None,
           checked: bool = True) -> HealthStatus:
    return HealthStatus(vm, state, healthy, failures, healthy, ssh_checked=checked, fault=fault)


@pytest.mark.parametrize(("probe", "in_grace", "counts"), [
    (None, False, False),  # not running
    (SshProbeResult(True), False, False),  # healthy
    (failed(SshFault.HUNG), False, True),
    (failed(SshFault.HUNG), True, False),  # booting after a repair
    (failed(SshFault.CONNECTION_LOST), False, True),
    (failed(SshFault.AUTH_FAILED), False, False),  # a restart cannot fix it
    (failed(SshFault.NOT_APPLICABLE), False, False),
    (failed(None), False, True),  # a prober that does not classify: guest-side
])
def test_what_counts_toward_a_restart(probe: SshProbeResult | None, in_grace: bool,
                                      counts: bool) -> None:
    assert counts_toward_restart(probe, in_grace) is counts


def test_consecutive_failures_grow_and_reset() -> None:
    assert [next_failure_count(n, c) for n, c in ((0, True), (1, True), (2, False))] == [1, 2, 0]


def test_reasons_say_what_to_fix_only_when_it_needs_you() -> None:
    hung = check_reason(TARGET, VMState.RUNNING, None, None, failed(SshFault.HUNG,
                                                                    "timed out (hung)"), False)
    assert hung == "SSH timed out (hung)"
    auth = check_reason(TARGET, VMState.RUNNING, None, None,
                        failed(SshFault.AUTH_FAILED, "authentication failed"), False)
    assert auth.startswith("SSH authentication failed: the VM refused key ~/.ssh/azlin_key "
                           "for user azureuser")
    assert auth.endswith("a restart cannot fix this (not counted)")
    booting = check_reason(TARGET, VMState.RUNNING, None, "HTTP 500",
                           failed(SshFault.REFUSED, "connection refused"), True)
    assert booting == ("SSH connection refused; Azure: HTTP 500 (grace period after a repair: "
                       "not counted)")
    assert check_reason(TARGET, VMState.DEALLOCATED, None, None, None, False) == (
        "VM is deallocated in Azure")


def test_power_transitions_fire_on_stop_and_on_start() -> None:
    running, stopped = status(healthy=True), status(state=VMState.DEALLOCATED, checked=False)
    stop = transition(running, stopped, repairing=False, unannounced=False)
    assert stop.power_changed and [h for h, _ in stop.hooks] == [HookType.ON_STOP]
    assert dict(stop.hooks[0][1]) == {"state": "deallocated", "previous_state": "running"}
    start = transition(stopped, running, repairing=False, unannounced=False)
    assert [h for h, _ in start.hooks] == [HookType.ON_START, HookType.ON_HEALTHY]
    assert start.announce_healthy


def test_healthy_is_announced_once_and_never_before_the_repair_ends() -> None:
    sick, well = status(failures=3), status(healthy=True)
    assert transition(well, well, repairing=False, unannounced=False).hooks == ()
    during = transition(sick, well, repairing=True, unannounced=False)
    assert during.defer_healthy and not during.announce_healthy and during.hooks == ()
    after = transition(well, well, repairing=False, unannounced=True)  # on_restart was first
    assert after.announce_healthy and [h for h, _ in after.hooks] == [HookType.ON_HEALTHY]


def test_one_definition_of_failing_for_the_fleet_and_the_status_line() -> None:
    latest = {
        "a": status("a", healthy=True),
        "b": status("b", failures=2),                          # failing
        "c": status("c", fault=SshFault.AUTH_FAILED),          # needs you
        "d": status("d", fault=SshFault.REFUSED),              # in its grace period
        "e": status("e", state=VMState.STOPPED, checked=False),
    }
    fleet = fleet_view(5, latest.values(), in_flight=1, breaker_open=False)
    assert (fleet.running, fleet.failing) == (4, 1)
    line = status_line(sorted(latest), latest, breaker_open=False, dry_run=False,
                       in_flight=["b"], config_error=None)
    assert line == ("5 VMs: 1 healthy, 1 failing (b), 1 need you (c), 1 recovering (d), "
                    "1 stopped; repairing b")


def test_status_line_for_no_vms_a_breaker_and_a_bad_reload() -> None:
    assert status_line([], {}, breaker_open=False, dry_run=False, in_flight=[],
                       config_error="bad key") == (
        "0 VMs monitored (add one: azlin lifecycle enable VM); config reload failed: bad key")
    line = status_line(["a", "b"], {"a": status("a", failures=1)}, breaker_open=True,
                       dry_run=False, in_flight=[], config_error=None)
    assert line == ("2 VMs: 0 healthy, 1 failing (a), 1 not checked yet; healing held: "
                    "circuit breaker open")


def test_breaker_needs_two_failing_and_half_of_the_running() -> None:
    heal = HealingSettings()
    assert not breaker_trips(heal, running=1, failing=1)  # one VM: never the breaker
    assert breaker_trips(heal, running=4, failing=2)
    assert not breaker_trips(heal, running=10, failing=4)
