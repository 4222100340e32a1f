"""After a kill: no announcement lost or repeated, and no hung VM left waiting for a repair
Azure never received. Each test leaves the state store exactly as a daemon SIGKILLed in
one window leaves it (the daemon writes nothing else: every change is a committed SQLite
transaction), then starts a real daemon against the simulator (real Azure SDK, real SSH).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import Announced, AzureMark, RepairAction, RepairOutcome, VMState
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.targets import resolve_target
from azlin_lifecycle.wiring import build_compute, monitor_for
from tests.support.inprocess import running_daemon
from tests.support.journal_events import Events, caught_events
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

HOOK = """#!/bin/sh
echo "$EVENT_TYPE $VM_NAME result=$RESTART_RESULT error=$ERROR" >> {log}
"""
RESTART_TIMEOUT = 600  # the default: a wrongly held VM would wait 600 + grace seconds


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 2, boot_seconds=1.0, operation_seconds=1.0) as f:
        yield f


@pytest.fixture
def config(fleet: SimulatedFleet, tmp_path: Path, isolated_dirs: Path) -> Path:
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(log=tmp_path / "hooks.log"))
    hook.chmod(0o755)
    path = isolated_dirs / "lifecycle-config.toml"
    fleet.write_config(
        path, restart_policy="on-failure", check_interval_seconds=10,
        hooks={h: str(hook) for h in ("on_failure", "on_restart", "on_healthy")},
        extra_toml={"daemon": {"ssh_timeout_seconds": 3.0},
                    "healing": {"grace_period_seconds": 5,
                                "restart_timeout_seconds": RESTART_TIMEOUT},
                    "vms": {vm: {"ssh_failure_threshold": 1} for vm in fleet.vm_names}})
    return path


@pytest.fixture
def events() -> Iterator[Events]:
    with caught_events() as handler:
        yield handler


def hooks_fired(tmp_path: Path) -> list[str]:
    log = tmp_path / "hooks.log"
    return log.read_text().splitlines() if log.exists() else []


def restarts(fleet: SimulatedFleet, vm: str) -> list[dict[str, object]]:
    return [op for op in fleet.operations() if op["vm"] == vm and op["action"] == "restart"]


def intent_as_a_kill_leaves_it(config: Path, vm: str) -> int:
    """The daemon decided to restart ``vm`` (one failed check counted), read Azure's view,
    committed the intent — and was killed before its POST left."""
    cfg = LifecycleManager(config).load()
    compute = build_compute(cfg)
    try:
        view = compute.instance_view(resolve_target(cfg, vm))
    finally:
        compute.close()
    monitor_for(cfg).check_vm_health(vm)  # the failed check, stored
    store = StateStore()
    started = time.time()
    return store.begin_repair(vm, RepairAction.RESTART, dry_run=False, now=started,
                              grace_until=started + RESTART_TIMEOUT + 5,
                              before=AzureMark.of(view))


def test_a_kill_between_the_intent_and_the_post_costs_no_quarter_hour(
        fleet: SimulatedFleet, config: Path, tmp_path: Path, events: Events) -> None:
    fleet.set_ssh_mode("vm-002", SshMode.HUNG)
    repair_id = intent_as_a_kill_leaves_it(config, "vm-002")
    assert restarts(fleet, "vm-002") == []
    started = time.monotonic()
    with running_daemon(config) as daemon:
        wait_for(lambda: len(restarts(fleet, "vm-002")) == 1, 30, "one restart POST")
        waited = time.monotonic() - started
        wait_for(lambda: daemon.get_status().healthy == 2, 30, "vm-002 healthy again")
        time.sleep(3)
    assert waited < 20, f"the restart waited {waited:.0f} s (a held VM waits 600 + 5)"
    assert len(restarts(fleet, "vm-002")) == 1
    records = {r.id: r for r in StateStore().repairs("vm-002")}
    assert records[repair_id].outcome is RepairOutcome.NOT_SENT
    assert "never reached Azure" in (records[repair_id].error or "")
    assert not records[repair_id].counts_against_budget
    real = [r for r in records.values() if r.id != repair_id]
    assert [(r.action, r.outcome) for r in real] == [(RepairAction.RESTART,
                                                      RepairOutcome.SUCCEEDED)]
    assert [getattr(r, "SENT", None) for r in events.of("repair_settled")] == ["false"]
    # not announced as a failed repair: nothing reached Azure
    assert not any("interrupted" in line for line in hooks_fired(tmp_path))


def test_a_kill_after_the_post_keeps_the_hold_and_never_posts_twice(
        fleet: SimulatedFleet, config: Path, tmp_path: Path, events: Events) -> None:
    fleet.set_ssh_mode("vm-002", SshMode.HUNG)
    fleet.hang_operations("vm-002")  # Azure works on it for longer than this test
    repair_id = intent_as_a_kill_leaves_it(config, "vm-002")
    cfg = LifecycleManager(config).load()
    fleet.state.begin("vm-002", "restart")  # the POST reached Azure; then the kill
    with running_daemon(config) as daemon:
        wait_for(lambda: events.of("repair_settled") != [], 20, "the settlement")
        wait_for(lambda: any(line.startswith("on_restart vm-002 result=failure")
                             for line in hooks_fired(tmp_path)), 10, "on_restart: interrupted")
        time.sleep(12)  # past the next check of vm-002 (interval 10 s)
        status = daemon.get_status()
    assert len(restarts(fleet, "vm-002")) == 1, "a restart Azure received is never repeated"
    assert "recovering (vm-002)" in status.status_text, status.status_text
    reason = StateStore().latest(["vm-002"])["vm-002"].reason or ""
    assert "grace period after a repair: not counted" in reason, reason
    record = next(r for r in StateStore().repairs("vm-002") if r.id == repair_id)
    assert record.outcome is RepairOutcome.INTERRUPTED and record.counts_against_budget
    assert "under way" in (record.error or "")
    assert [getattr(r, "SENT", None) for r in events.of("repair_settled")] == ["true"]
    assert resolve_target(cfg, "vm-002")  # the config still names it


def test_a_kill_between_a_stored_check_and_its_hook_fires_the_hook_once(
        fleet: SimulatedFleet, config: Path, tmp_path: Path) -> None:
    cfg = LifecycleManager(config).load()
    store = StateStore()
    # The last daemon told vm-001 was failing; its recovery check was stored, then the
    # kill came before on_healthy fired.
    store.announce({"vm-001": Announced(VMState.RUNNING, healthy=False)}, [])
    assert monitor_for(cfg).check_vm_health("vm-001").healthy
    assert store.latest(["vm-001"])["vm-001"].healthy
    for _ in range(2):  # a first daemon fires it; a second one (after a stop) does not
        with running_daemon(config) as daemon:
            wait_for(lambda: daemon.get_status().healthy == 2, 30, "both healthy")
            time.sleep(1.5)  # hooks run on their own pool
    healthy_hooks = [line for line in hooks_fired(tmp_path)
                     if line.startswith("on_healthy vm-001")]
    assert len(healthy_hooks) == 1, hooks_fired(tmp_path)


def test_an_owed_hook_left_by_a_kill_fires_once(
        fleet: SimulatedFleet, config: Path, tmp_path: Path) -> None:
    store = StateStore()
    # Recorded as owed with what was told (one transaction), then killed before it ran.
    store.announce({"vm-001": Announced(VMState.RUNNING, healthy=True)},
                   [("vm-001", "on_healthy", {"state": "running"})])
    assert len(store.owed_hooks()) == 1
    for _ in range(2):
        with running_daemon(config) as daemon:
            wait_for(lambda: daemon.get_status().healthy == 2, 30, "both healthy")
            wait_for(lambda: StateStore().owed_hooks() == [], 10, "the outbox emptied")
    healthy_hooks = [line for line in hooks_fired(tmp_path)
                     if line.startswith("on_healthy vm-001")]
    assert len(healthy_hooks) == 1, hooks_fired(tmp_path)


def test_a_vm_s_hooks_do_not_wait_for_a_hung_neighbour_in_its_batch(
        fleet: SimulatedFleet, config: Path, tmp_path: Path) -> None:
    store = StateStore()
    store.announce({"vm-001": Announced(VMState.RUNNING, healthy=False)}, [])
    fleet.set_ssh_mode("vm-002", SshMode.HUNG)  # its check takes the whole 3 s timeout
    started = time.monotonic()
    with running_daemon(config):
        wait_for(lambda: any(line.startswith("on_healthy vm-001")
                             for line in hooks_fired(tmp_path)), 10, "on_healthy of vm-001")
        announced_after = time.monotonic() - started
        wait_for(lambda: any(line.startswith("on_failure vm-002")
                             for line in hooks_fired(tmp_path)), 10, "on_failure of vm-002")
    lines = hooks_fired(tmp_path)
    first_healthy = next(i for i, x in enumerate(lines) if x.startswith("on_healthy vm-001"))
    first_failure = next(i for i, x in enumerate(lines) if x.startswith("on_failure vm-002"))
    assert first_healthy < first_failure, lines
    assert announced_after < 3.0, f"on_healthy waited {announced_after:.1f} s for vm-002"
