from __future__ import annotations

import time
from pathlib import Path

import pytest

from azlin_lifecycle.config import (
    AzureSettings,
    HealingSettings,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from azlin_lifecycle.errors import SelfHealingError
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.models import HealthFailure, RepairAction, VMState
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeCompute, RecordingHooks


def healer(tmp_path: Path, compute: FakeCompute, hooks: RecordingHooks,
           healing: HealingSettings | None = None,
           policy: RestartPolicy = RestartPolicy.ON_FAILURE) -> SelfHealer:
    cfg = LifecycleConfig(azure=AzureSettings(subscription_id="s", resource_group="rg"),
                          healing=healing or HealingSettings(),
                          vms={"vm1": MonitoringConfig(restart_policy=policy)})
    return SelfHealer(config=cfg, compute=compute, hooks=hooks,
                      store=StateStore(tmp_path / "state.db"))


FAIL3 = HealthFailure("vm1", 3, "SSH connection refused")


def test_should_restart_follows_policy_and_threshold(tmp_path: Path) -> None:
    h = healer(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), RecordingHooks())
    assert h.should_restart("vm1", FAIL3)
    assert not h.should_restart("vm1", HealthFailure("vm1", 2, "x"))
    never = healer(tmp_path, FakeCompute(), RecordingHooks(), policy=RestartPolicy.NEVER)
    assert not never.should_restart("vm1", FAIL3)


def test_handle_failure_restarts_records_and_fires_hooks(tmp_path: Path) -> None:
    compute, hooks = FakeCompute({"vm1": VMState.RUNNING}), RecordingHooks()
    h = healer(tmp_path, compute, hooks)
    result = h.handle_failure("vm1", FAIL3)
    assert result is not None and result.success and result.action is RepairAction.RESTART
    # Azure's own view of the guest is read once, at decision time, before the restart.
    assert compute.calls == [("instance_view", "vm1"), ("restart", "vm1")]
    assert [vm for vm, _ in hooks.of("on_failure")] == ["vm1"]
    (_, ctx), = hooks.of("on_restart")
    assert ctx["restart_result"] == "success"
    grace = h.store.healing_state("vm1").grace_until
    assert grace > time.time() + 250  # grace period started (default 300 s)
    # Immediately again: held by the grace period, and on_failure says so.
    assert h.handle_failure("vm1", FAIL3) is None
    assert "grace period" in str(hooks.of("on_failure")[-1][1]["reason"])


def test_azure_failure_lands_in_the_result(tmp_path: Path) -> None:
    compute = FakeCompute({"vm1": VMState.RUNNING}, fail_actions={"vm1": "boom (InternalError)"})
    hooks = RecordingHooks()
    result = healer(tmp_path, compute, hooks).restart_vm("vm1")
    assert not result.success and result.error_message == "boom (InternalError)"
    assert hooks.of("on_restart")[0][1]["restart_result"] == "failure"


def test_budget_persists_across_a_new_healer(tmp_path: Path) -> None:
    heal = HealingSettings(grace_period_seconds=0, backoff_initial_seconds=0)
    compute, hooks = FakeCompute({"vm1": VMState.RUNNING}), RecordingHooks()
    for _ in range(3):
        assert healer(tmp_path, compute, hooks, heal).handle_failure("vm1", FAIL3) is not None
    fresh = healer(tmp_path, compute, hooks, heal)  # as after a daemon crash
    assert fresh.handle_failure("vm1", FAIL3) is None
    assert len([c for c in compute.calls if c[0] == "restart"]) == 3
    reason = str(hooks.of("on_failure")[-1][1]["reason"])
    assert "restart budget spent" in reason and "paused until" in reason
    assert fresh.store.healing_state("vm1").held_reason == fresh.decide("vm1", FAIL3).reason


def test_stopped_vm_is_started_only_under_always(tmp_path: Path) -> None:
    stopped = HealthFailure("vm1", 0, "VM is stopped in Azure", VMState.STOPPED)
    compute, hooks = FakeCompute({"vm1": VMState.STOPPED}), RecordingHooks()
    assert healer(tmp_path, compute, hooks).handle_failure("vm1", stopped) is None
    result = healer(tmp_path, compute, hooks, policy=RestartPolicy.ALWAYS).handle_failure(
        "vm1", stopped)
    assert result is not None and result.action is RepairAction.START
    assert compute.calls == [("start", "vm1")]
    assert hooks.of("on_failure") == []  # stopped on purpose is not a failure


def test_dry_run_records_and_does_not_act(tmp_path: Path) -> None:
    compute, hooks = FakeCompute({"vm1": VMState.RUNNING}), RecordingHooks()
    h = healer(tmp_path, compute, hooks, HealingSettings(dry_run=True))
    result = h.handle_failure("vm1", FAIL3)
    assert result is not None and result.dry_run
    assert compute.calls == [("instance_view", "vm1")]  # corroborated, never acted
    assert [r.outcome for r in h.store.repairs("vm1")] == ["dry_run"]


def test_misuse_raises_self_healing_error(tmp_path: Path) -> None:
    h = healer(tmp_path, FakeCompute(), RecordingHooks())
    with pytest.raises(SelfHealingError, match="'ghost' is not configured"):
        h.restart_vm("ghost")
    with pytest.raises(SelfHealingError, match="failure is for 'vm2', not 'vm1'"):
        h.should_restart("vm1", HealthFailure("vm2", 3, "x"))
