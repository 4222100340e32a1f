"""SelfHealer and HealthMonitor with the real Azure SDK and SSH against the stand-in Azure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.config import LifecycleConfig
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.health import HealthMonitor, failure_of
from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import RepairAction, VMState
from azlin_lifecycle.simulator import POWER_STATES, SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import monitor_for
from tests.support.fakes import RecordingHooks
from tests.support.simulated import reset_vms
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("sim"), 4, boot_seconds=1.0,
                        operation_seconds=0.5) as f:
        yield f


@pytest.fixture(autouse=True)
def _env(fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in fleet.env().items():
        monkeypatch.setenv(key, value)
    yield
    reset_vms(fleet)


def parts(fleet: SimulatedFleet, tmp_path: Path, policy: str = "on-failure",
          healing: dict[str, object] | None = None) -> tuple[HealthMonitor, SelfHealer,
                                                             RecordingHooks]:
    path = tmp_path / "lifecycle-config.toml"
    # Azure's operation polled every 1 s, not 5: a repair ends ~1 s after its 0.5 s operation.
    fleet.write_config(path, restart_policy=policy, check_interval_seconds=10,
                       extra_toml={"daemon": {"ssh_timeout_seconds": 2.0},
                                   "healing": {"operation_poll_seconds": 1, **(healing or {})}})
    config: LifecycleConfig = LifecycleManager(path).load()
    store = StateStore(tmp_path / "state.db")
    hooks = RecordingHooks()
    monitor = monitor_for(config, store)
    healer = SelfHealer(config, store=store, hooks=hooks,
                        compute=monitor.compute, on_repaired=monitor.reset_failures)
    return monitor, healer, hooks


def booted(fleet: SimulatedFleet, vm: str) -> bool:
    """Running and booted: what boot_seconds after a restart's end used to be slept out for."""
    status = next(v for v in fleet.status()["vms"] if v["name"] == vm)
    return bool(status["power"] == "running" and status["booted"])


def restarts(fleet: SimulatedFleet, vm: str, action: str = "restart") -> list[dict[str, object]]:
    return [op for op in fleet.operations() if op["vm"] == vm and op["action"] == action]


EXPECTED = {  # policy -> power states in which a 3rd consecutive failure leads to this action
    "never": {},
    "on-failure": {"running": RepairAction.RESTART},
    "always": {"running": RepairAction.RESTART, "stopped": RepairAction.START,
               "deallocated": RepairAction.START},
}


@pytest.mark.parametrize("policy", ["never", "on-failure", "always"])
def test_every_policy_against_every_power_state(fleet: SimulatedFleet, tmp_path: Path,
                                                policy: str) -> None:
    monitor, healer, _ = parts(fleet, tmp_path, policy)
    vm = "vm-001"
    fleet.set_ssh_mode(vm, SshMode.REFUSED)
    fleet.set_guest(vm, agent="not_ready")  # Azure agrees the guest is down
    for state in POWER_STATES:
        fleet.set_power_state(vm, state)
        monitor.clear_health_history(vm)
        for _ in range(3):
            status = monitor.check_vm_health(vm)
        assert status.state is VMState(state)
        assert status.ssh_checked == (state == "running")
        assert status.ssh_failures == (3 if state == "running" else 0)
        decision = healer.decide(vm, failure_of(status))
        assert decision.action is EXPECTED[policy].get(state), (policy, state, decision)


def test_restart_through_arm_then_grace_and_a_fresh_counter(fleet: SimulatedFleet,
                                                            tmp_path: Path) -> None:
    monitor, healer, hooks = parts(fleet, tmp_path, healing={"grace_period_seconds": 30})
    vm = "vm-002"
    fleet.set_ssh_mode(vm, SshMode.HUNG)
    for _ in range(3):
        status = monitor.check_vm_health(vm)
    assert status.ssh_failures == 3 and status.reason == "SSH timed out (hung)"
    result = healer.handle_failure(vm, failure_of(status))
    assert result is not None and result.success and result.action is RepairAction.RESTART
    assert [op["status"] for op in restarts(fleet, vm)] == ["Succeeded"]
    assert 0.3 < result.duration_seconds < 10
    assert hooks.of("on_restart")[0][1]["restart_result"] == "success"
    # During the boot the VM refuses SSH: counted as 0, and held back by the grace period.
    during = monitor.check_vm_health(vm)
    assert during.ssh_failures == 0
    assert healer.decide(vm, failure_of(during)).action is None
    wait_for(lambda: booted(fleet, vm), 10, f"{vm} booted")  # the reboot also cured the hang
    assert monitor.check_vm_health(vm).healthy


def test_failed_and_unfinished_restarts_land_in_the_result(fleet: SimulatedFleet,
                                                           tmp_path: Path) -> None:
    _, healer, _ = parts(fleet, tmp_path, healing={"restart_timeout_seconds": 10})
    fleet.fail_next_operation("vm-003", "restart", code="InternalExecutionError",
                              message="The VM could not be restarted.")
    failed = healer.restart_vm("vm-003")
    assert not failed.success and "InternalExecutionError" in (failed.error_message or "")
    fleet.hang_operations("vm-004", "restart")
    began = time.monotonic()
    stuck = healer.restart_vm("vm-004")
    assert not stuck.success and time.monotonic() - began < 15
    assert stuck.error_message
    outcomes = [r.outcome for r in healer.store.repairs()]
    assert outcomes == ["failed", "failed"]


def test_escalation_redeploys_after_restarts_that_did_not_help(fleet: SimulatedFleet,
                                                               tmp_path: Path) -> None:
    monitor, healer, _ = parts(fleet, tmp_path, policy="always", healing={
        "grace_period_seconds": 0, "backoff_initial_seconds": 0,
        "escalate_after_failed_restarts": 1})
    vm = "vm-001"
    # A guest-side fault that survives a reboot: the restart won't help.
    fleet.set_ssh_mode(vm, SshMode.REFUSED)
    fleet.set_guest(vm, agent="not_ready")
    first = healer.handle_failure(vm, failure_of(monitor.check_vm_health(vm)))
    assert first is not None and first.action is RepairAction.RESTART
    wait_for(lambda: booted(fleet, vm), 10, f"{vm} booted")  # still refusing connections
    second = healer.handle_failure(vm, failure_of(monitor.check_vm_health(vm)))
    assert second is not None and second.action is RepairAction.REDEPLOY and second.success
    assert [op["status"] for op in restarts(fleet, vm, "redeploy")] == ["Succeeded"]


def test_budget_survives_a_new_healer(fleet: SimulatedFleet, tmp_path: Path) -> None:
    healing = {"grace_period_seconds": 0, "backoff_initial_seconds": 0, "restart_budget": 2}
    monitor, healer, _ = parts(fleet, tmp_path, policy="always", healing=healing)
    vm = "vm-002"
    fleet.set_ssh_mode(vm, SshMode.REFUSED)
    fleet.set_guest(vm, agent="not_ready")
    for _ in range(2):
        assert healer.handle_failure(vm, failure_of(monitor.check_vm_health(vm))) is not None
    before = len(restarts(fleet, vm))
    _, fresh, hooks = parts(fleet, tmp_path, policy="always", healing=healing)
    assert fresh.handle_failure(vm, failure_of(monitor.check_vm_health(vm))) is None
    assert len(restarts(fleet, vm)) == before
    assert "restart budget spent (2 repairs in the last 1h)" in str(
        hooks.of("on_failure")[-1][1]["reason"])


def test_dry_run_against_arm_changes_nothing(fleet: SimulatedFleet, tmp_path: Path) -> None:
    monitor, healer, _ = parts(fleet, tmp_path, policy="always", healing={"dry_run": True})
    vm = "vm-003"
    fleet.set_ssh_mode(vm, SshMode.REFUSED)
    fleet.set_guest(vm, agent="not_ready")
    before = len(fleet.operations())
    result = healer.handle_failure(vm, failure_of(monitor.check_vm_health(vm)))
    assert result is not None and result.dry_run
    assert len(fleet.operations()) == before


def test_stopped_vm_is_started_with_start_not_restart(fleet: SimulatedFleet,
                                                     tmp_path: Path) -> None:
    monitor, healer, hooks = parts(fleet, tmp_path, policy="always")
    vm = "vm-004"
    fleet.set_power_state(vm, "deallocated")
    status = monitor.check_vm_health(vm)
    assert status.state is VMState.DEALLOCATED and not status.ssh_checked
    result = healer.handle_failure(vm, failure_of(status))
    assert result is not None and result.action is RepairAction.START and result.success
    assert fleet.power_state(vm) in ("running", "starting")
    assert hooks.of("on_failure") == []


def test_refused_ssh_while_the_agent_is_ready_is_held_by_azures_view(
        fleet: SimulatedFleet, tmp_path: Path) -> None:
    monitor, healer, hooks = parts(fleet, tmp_path, policy="always")
    vm = "vm-003"
    fleet.set_power_state(vm, "running")  # up and booted (an earlier test failed its restart)
    fleet.set_ssh_mode(vm, SshMode.REFUSED)  # sshd down, OS and agent up
    assert next(v for v in fleet.status()["vms"] if v["name"] == vm)["agent_ready"]
    before = len(fleet.operations())
    result = healer.handle_failure(vm, failure_of(monitor.check_vm_health(vm)))
    assert result is None and len(fleet.operations()) == before
    reason = str(hooks.of("on_failure")[-1][1]["reason"])
    assert "held back: Azure: VM agent: Ready (reported " in reason
    assert healer.store.healing_state(vm).evidence is not None
