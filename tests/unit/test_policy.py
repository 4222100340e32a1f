from __future__ import annotations

import pytest

from azlin_lifecycle.config import HealingSettings, MonitoringConfig, RestartPolicy
from azlin_lifecycle.models import HealthFailure, RepairAction, VMState
from azlin_lifecycle.policy import FleetView, breaker_trips, decide, in_flight_cap
from azlin_lifecycle.state import RepairRecord

NOW = 1_800_000_000.0
HEAL = HealingSettings()


def vm(policy: RestartPolicy, **kw: object) -> MonitoringConfig:
    return MonitoringConfig(restart_policy=policy, **kw)  # type: ignore[arg-type]


def failure(count: int, state: VMState = VMState.RUNNING) -> HealthFailure:
    return HealthFailure("vm1", count, "SSH timed out (hung)", state)


def repair(ago: float, outcome: str = "succeeded",
           action: RepairAction = RepairAction.RESTART) -> RepairRecord:
    return RepairRecord(1, "vm1", action, NOW - ago, NOW - ago + 60, outcome, None)


def run(cfg: MonitoringConfig, f: HealthFailure, repairs: list[RepairRecord] | None = None,
        heal: HealingSettings = HEAL, grace_until: float = 0.0,
        fleet: FleetView | None = None, last_healthy: float | None = None):  # type: ignore[no-untyped-def]
    return decide(cfg, heal, f, repairs or [], grace_until=grace_until, now=NOW,
                  fleet=fleet or FleetView(), last_healthy=last_healthy)


# Every policy against every power state.
EXPECT = {
    # (policy, state): action with 3 consecutive failures (threshold 3)
    (RestartPolicy.NEVER, VMState.RUNNING): None,
    (RestartPolicy.ON_FAILURE, VMState.RUNNING): RepairAction.RESTART,
    (RestartPolicy.ALWAYS, VMState.RUNNING): RepairAction.RESTART,
    (RestartPolicy.ALWAYS, VMState.UNKNOWN): RepairAction.RESTART,
    (RestartPolicy.ON_FAILURE, VMState.UNKNOWN): RepairAction.RESTART,
    (RestartPolicy.ALWAYS, VMState.STOPPED): RepairAction.START,
    (RestartPolicy.ALWAYS, VMState.DEALLOCATED): RepairAction.START,
}


@pytest.mark.parametrize("policy", list(RestartPolicy))
@pytest.mark.parametrize("state", list(VMState))
def test_every_policy_against_every_power_state(policy: RestartPolicy, state: VMState) -> None:
    d = run(vm(policy), failure(3, state))
    assert d.action is EXPECT.get((policy, state))
    if d.action is None:
        assert d.reason and not d.held


def test_on_failure_waits_for_threshold_always_does_not() -> None:
    assert run(vm(RestartPolicy.ON_FAILURE), failure(2)).action is None
    assert "2 of 3 consecutive failures" in run(vm(RestartPolicy.ON_FAILURE), failure(2)).reason
    assert run(vm(RestartPolicy.ALWAYS), failure(1)).action is RepairAction.RESTART
    assert run(vm(RestartPolicy.ON_FAILURE, ssh_failure_threshold=1), failure(1)).action


def test_grace_period_holds_and_says_until_when() -> None:
    d = run(vm(RestartPolicy.ALWAYS), failure(5), grace_until=NOW + 120)
    assert d.action is None and d.held and d.hold_kind == "grace"
    assert "grace period after the last repair until" in d.reason


def test_budget_spent_pauses_until_window_passes() -> None:
    three = [repair(3000), repair(2000), repair(1000)]
    d = run(vm(RestartPolicy.ON_FAILURE), failure(3), three)
    assert d.held and d.hold_kind == "budget"
    assert "restart budget spent (3 repairs in the last 1h)" in d.reason
    assert "paused until" in d.reason
    # The oldest leaves the window: allowed again (backoff after 3 attempts is 4m < 1000 s).
    assert run(vm(RestartPolicy.ON_FAILURE), failure(3),
               [repair(3700), repair(2000), repair(1000)]).action is RepairAction.RESTART


def test_interrupted_and_failed_repairs_count_against_the_budget() -> None:
    rs = [repair(500, "interrupted"), repair(400, "failed"), repair(300)]
    assert run(vm(RestartPolicy.ALWAYS), failure(9), rs).hold_kind == "budget"


def test_exponential_backoff_between_attempts() -> None:
    heal = HealingSettings(backoff_initial_seconds=60, grace_period_seconds=0)
    assert run(vm(RestartPolicy.ALWAYS), failure(1), [repair(30)], heal).hold_kind == "backoff"
    assert run(vm(RestartPolicy.ALWAYS), failure(1), [repair(61)], heal).action
    two = [repair(200), repair(100)]  # second wait: 120 s
    d = run(vm(RestartPolicy.ALWAYS), failure(1), two, heal)
    assert d.hold_kind == "backoff" and "backing off 2m" in d.reason
    assert run(vm(RestartPolicy.ALWAYS), failure(1), [repair(300), repair(121)], heal).action


def test_repair_in_flight_is_not_repeated() -> None:
    d = run(vm(RestartPolicy.ALWAYS), failure(3), [repair(10, "in_flight")])
    assert d.hold_kind == "in_flight"


def test_breaker_holds_restarts_but_not_starts() -> None:
    fleet = FleetView(monitored=10, running=10, failing=6, breaker_open=True)
    d = run(vm(RestartPolicy.ALWAYS), failure(3), fleet=fleet)
    assert d.hold_kind == "breaker" and "6 of 10 running VMs" in d.reason
    assert run(vm(RestartPolicy.ALWAYS), failure(0, VMState.STOPPED), fleet=fleet).action \
        is RepairAction.START


def test_breaker_threshold() -> None:
    assert not breaker_trips(HEAL, running=1, failing=1)  # at least 2
    assert breaker_trips(HEAL, running=2, failing=2)
    assert breaker_trips(HEAL, running=10, failing=5)
    assert not breaker_trips(HEAL, running=10, failing=4)
    assert not breaker_trips(HEAL, running=0, failing=0)


def test_in_flight_cap_defaults_and_holds() -> None:
    assert in_flight_cap(HEAL, 19) == 1
    assert in_flight_cap(HEAL, 100) == 5
    assert in_flight_cap(HEAL, 1000) == 50
    assert in_flight_cap(HealingSettings(max_in_flight=3), 1000) == 3
    d = run(vm(RestartPolicy.ALWAYS), failure(3), fleet=FleetView(monitored=5, in_flight=1))
    assert d.hold_kind == "cap" and "1 repairs already in flight (cap 1)" in d.reason


def test_dry_run_says_would_and_ignores_real_history() -> None:
    d = run(vm(RestartPolicy.ALWAYS, dry_run=True), failure(3), [repair(10)])
    assert d.dry_run and d.action is RepairAction.RESTART
    assert d.reason.startswith("dry run: would restart")
    heal = HealingSettings(dry_run=True)
    assert run(vm(RestartPolicy.ALWAYS), failure(3), heal=heal).dry_run
    # dry-run decisions obey their own backoff, so the journal is not flooded
    d2 = run(vm(RestartPolicy.ALWAYS, dry_run=True), failure(3), [repair(10, "dry_run")])
    assert d2.hold_kind == "backoff"


def test_escalation_to_redeploy_after_unhelpful_restarts() -> None:
    heal = HealingSettings(escalate_after_failed_restarts=2, grace_period_seconds=0,
                           backoff_initial_seconds=0, restart_budget=10)
    rs = [repair(900), repair(600)]
    d = run(vm(RestartPolicy.ALWAYS), failure(3), rs, heal, last_healthy=NOW - 1000)
    assert d.action is RepairAction.REDEPLOY and "escalating to redeploy" in d.reason
    # A healthy check after the restarts: they helped, no escalation.
    d = run(vm(RestartPolicy.ALWAYS), failure(3), rs, heal, last_healthy=NOW - 100)
    assert d.action is RepairAction.RESTART


def test_budget_zero_never_restarts() -> None:
    d = run(vm(RestartPolicy.ALWAYS), failure(3), heal=HealingSettings(restart_budget=0))
    assert d.hold_kind == "budget" and "restart budget is 0" in d.reason
