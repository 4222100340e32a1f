"""The daemon with its real adapters (Azure SDK, SSH, hook scripts) against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.daemon import LifecycleDaemon
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from tests.support.inprocess import running_daemon
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

HOOK = """#!/bin/sh
echo "$EVENT_TYPE $VM_NAME failures=$FAILURE_COUNT result=$RESTART_RESULT reason=$REASON" >> {log}
"""



@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 3, boot_seconds=2.0, operation_seconds=1.0) as f:
        yield f


@pytest.fixture
def running(fleet: SimulatedFleet, tmp_path: Path,
            isolated_dirs: Path) -> Iterator[tuple[LifecycleDaemon, Path]]:
    hook_log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(log=hook_log))
    hook.chmod(0o755)
    fleet.write_config(
        isolated_dirs / "lifecycle-config.toml", restart_policy="on-failure",
        check_interval_seconds=10,
        hooks={h: str(hook) for h in ("on_failure", "on_restart", "on_healthy")},
        extra_toml={"daemon": {"ssh_timeout_seconds": 2.0},
                    "healing": {"grace_period_seconds": 5},
                    "vms": {vm: {"ssh_failure_threshold": 1} for vm in fleet.vm_names}})
    with running_daemon(isolated_dirs / "lifecycle-config.toml") as daemon:
        yield daemon, hook_log


def hook_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_hung_vm_is_detected_restarted_and_healthy_again(
        fleet: SimulatedFleet, running: tuple[LifecycleDaemon, Path]) -> None:
    daemon, hook_log = running
    wait_for(lambda: daemon.get_status().healthy == 3, 30, "3 healthy VMs")
    wait_for(lambda: len(hook_lines(hook_log)) == 3, 10, "3 on_healthy hooks")
    assert sorted(line.split()[1] for line in hook_lines(hook_log)) == fleet.vm_names
    fleet.set_ssh_mode("vm-002", SshMode.HUNG)
    wait_for(lambda: any(op["vm"] == "vm-002" and op["action"] == "restart"
                         for op in fleet.operations()), 30, "the restart through ARM")
    wait_for(lambda: any(line.startswith("on_restart vm-002") for line in hook_lines(hook_log)),
             20, "on_restart")
    wait_for(lambda: daemon.get_status().healthy == 3, 30, "vm-002 healthy again")
    wait_for(lambda: hook_lines(hook_log)[-1].startswith("on_healthy vm-002"), 10,
             "on_healthy of vm-002")
    lines = hook_lines(hook_log)
    failure = next(line for line in lines if line.startswith("on_failure vm-002"))
    assert "failures=1" in failure and "reason=SSH timed out (hung)" in failure
    assert any(line.startswith("on_restart vm-002") and "result=success" in line
               for line in lines)
    assert lines[-1].startswith("on_healthy vm-002")
    ops = [op for op in fleet.operations() if op["vm"] == "vm-002"]
    assert [(op["action"], op["status"]) for op in ops] == [("restart", "Succeeded")]
    history = [h.healthy for h in daemon.monitor.get_health_history("vm-002")]
    assert history[0] is True and False in history and history[-1] is True


def test_whole_fleet_failing_opens_the_breaker_and_recovers(
        fleet: SimulatedFleet, running: tuple[LifecycleDaemon, Path]) -> None:
    daemon, _ = running
    for vm in fleet.vm_names:
        fleet.set_ssh_mode(vm, SshMode.REFUSED)
    wait_for(lambda: daemon.get_status().breaker_open, 30, "the breaker to open")
    assert "circuit breaker open" in daemon.get_status().status_text
    for vm in fleet.vm_names:
        fleet.set_ssh_mode(vm, SshMode.UP)
    wait_for(lambda: not daemon.get_status().breaker_open, 30, "the breaker to close")
    assert fleet.operations() == []  # nothing was restarted
