from __future__ import annotations

import datetime as dt

import pytest

from azlin_lifecycle.config import HealingSettings, MonitoringConfig, RestartPolicy
from azlin_lifecycle.models import (
    HealthFailure,
    PowerInfo,
    RepairAction,
    RepairOutcome,
    RepairRecord,
    VMState,
)
from azlin_lifecycle.policy import Decision, corroborate, decide, in_flight_cap
from azlin_lifecycle.rules import FleetView, breaker_trips

NOW = 1_800_000_000.0
HEAL = HealingSettings()


def vm(policy: RestartPolicy, **kw: object) -> MonitoringConfig:
    return MonitoringConfig(restart_policy=policy, **kw)  # type: ignore[arg-type]


def failure(count: int, state: VMState = VMState.RUNNING) -> HealthFailure:
    return HealthFailure("vm1", count, "SSH timed out (hung)", state)


def repair(ago: float, outcome: str = "succeeded",
           action: RepairAction = RepairAction.RESTART) -> RepairRecord:
    return RepairRecord(1, "vm1", action, NOW - ago, NOW - ago + 60, RepairOutcome(outcome),
                        None)


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


# ----------------------------------------------------------------- corroboration
def _due(count: int = 3) -> tuple[MonitoringConfig, HealthFailure, Decision]:
    cfg = vm(RestartPolicy.ON_FAILURE)
    f = failure(count)
    decision = run(cfg, f)
    assert decision.action is RepairAction.RESTART
    return cfg, f, decision


def _view(agent: str | None = "Ready", age: float = 30.0, health: str | None = None,
          state: VMState = VMState.RUNNING) -> PowerInfo:
    at = dt.datetime.fromtimestamp(NOW - age, dt.UTC)
    return PowerInfo(state, "succeeded", agent, agent_time=at if agent else None,
                     agent_message="VM Agent is unresponsive." if agent == "Not Ready" else None,
                     vm_health=health)


def test_agent_not_ready_corroborates_and_the_restart_goes_ahead() -> None:
    cfg, f, due = _due()
    out = corroborate(cfg, HEAL, f, due, _view("Not Ready"), None, NOW)
    assert out.action is RepairAction.RESTART
    assert out.evidence == "VM agent: Not Ready (VM Agent is unresponsive.)"
    assert "Azure: VM agent: Not Ready" in out.reason


def test_unhealthy_application_health_corroborates_even_with_a_ready_agent() -> None:
    cfg, f, due = _due()
    out = corroborate(cfg, HEAL, f, due, _view("Ready", health="unhealthy"), None, NOW)
    assert out.action is RepairAction.RESTART
    assert out.evidence == "Application Health extension: unhealthy"


def test_recent_ready_agent_holds_until_the_override_count() -> None:
    cfg, f, due = _due(3)
    held = corroborate(cfg, HEAL, f, due, _view("Ready"), None, NOW)
    assert held.action is None and held.held and held.hold_kind == "agent_ready"
    assert "guest OS is alive" in held.reason and "10 times in a row" in held.reason
    cfg, f, due = _due(HEAL.agent_ready_override_failures)
    out = corroborate(cfg, HEAL, f, due, _view("Ready"), None, NOW)
    assert out.action is RepairAction.RESTART and "repairing anyway" in out.reason


def test_override_zero_never_restarts_while_the_agent_is_ready() -> None:
    heal = HealingSettings(agent_ready_override_failures=0)
    cfg, f, due = _due(100)
    held = corroborate(cfg, heal, f, due, _view("Ready"), None, NOW)
    assert held.held and "not while it does" in held.reason


def test_healthy_application_health_alone_holds() -> None:
    cfg, f, due = _due()
    held = corroborate(cfg, HEAL, f, due, _view(None, health="healthy"), None, NOW)
    assert held.held and held.evidence == "Application Health extension: healthy"


def test_stale_ready_agent_or_no_view_does_not_hold() -> None:
    cfg, f, due = _due()
    stale = corroborate(cfg, HEAL, f, due, _view("Ready", age=3600), None, NOW)
    assert stale.action is RepairAction.RESTART and "stale" in (stale.evidence or "")
    blind = corroborate(cfg, HEAL, f, due, None, "list of VMs: HTTP 500", NOW)
    assert blind.action is RepairAction.RESTART
    assert blind.evidence == "Azure's view of the guest unavailable (list of VMs: HTTP 500)"
    no_agent = corroborate(cfg, HEAL, f, due, _view(None), None, NOW)
    assert no_agent.action is RepairAction.RESTART


def test_a_vm_stopped_meanwhile_is_not_restarted() -> None:
    cfg, f, due = _due()
    out = corroborate(cfg, HEAL, f, due, _view(state=VMState.DEALLOCATED), None, NOW)
    assert out.action is None and "deallocated" in out.reason


def test_dry_run_is_corroborated_too() -> None:
    cfg, f = vm(RestartPolicy.ON_FAILURE, dry_run=True), failure(3)
    due = run(cfg, f)
    held = corroborate(cfg, HEAL, f, due, _view("Ready"), None, NOW)
    assert held.held and held.dry_run
