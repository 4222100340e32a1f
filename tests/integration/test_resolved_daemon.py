"""The daemon reaches VMs the way it reaches azlin's: no ssh_host or ssh_user in the config,
the address and admin user from Azure (VM -> NIC -> public IP), through the real SDK pipeline
and real SSH against the stand-in; a new address after a deallocate and start is followed;
a private-only VM is judged by Azure's view, and on_restart comes before on_healthy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.daemon import LifecycleDaemon
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore
from tests.support.inprocess import running_daemon
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

HOOK = """#!/bin/sh
echo "$EVENT_TYPE $VM_NAME" >> {log}
"""



@pytest.fixture
def running(tmp_path: Path, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[SimulatedFleet, LifecycleDaemon, StateStore, Path]]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 3, boot_seconds=2.0, operation_seconds=1.0,
                        private=False) as fleet:
        fleet.set_public_ip("vm-003", False)  # private-only, no tunnel: SSH not applicable
        hook_log, hook = tmp_path / "hooks.log", tmp_path / "hook.sh"
        hook.write_text(HOOK.format(log=hook_log))
        hook.chmod(0o755)
        fleet.write_config(
            isolated_dirs / "lifecycle-config.toml", restart_policy="always",
            check_interval_seconds=10, resolve_ssh=True,
            hooks={h: str(hook) for h in ("on_restart", "on_healthy", "on_start")},
            extra_toml={"daemon": {"ssh_timeout_seconds": 2.0},
                        "healing": {"grace_period_seconds": 5, "operation_poll_seconds": 1},
                        "vms": {vm: {"ssh_failure_threshold": 1} for vm in fleet.vm_names}})
        with running_daemon(isolated_dirs / "lifecycle-config.toml") as daemon:
            wait_for(lambda: daemon.get_status().running, 10, "the daemon")
            yield fleet, daemon, daemon.store, hook_log


def latest(store: StateStore, vm: str):  # type: ignore[no-untyped-def]
    return store.latest([vm]).get(vm)


def test_addresses_from_azure_are_used_and_followed_after_a_new_ip(
        running: tuple[SimulatedFleet, LifecycleDaemon, StateStore, Path]) -> None:
    fleet, _daemon, store, _hooks = running
    first_ip = fleet.public_ip("vm-001")
    wait_for(lambda: (s := latest(store, "vm-001")) is not None and s.healthy, 30, "vm-001")
    assert latest(store, "vm-001").ssh_via == f"public IP {first_ip}"
    # Deallocated (its dynamic IP is released), started again by the daemon (policy always):
    fleet.set_power_state("vm-001", "deallocated")
    wait_for(lambda: any(op["vm"] == "vm-001" and op["action"] == "start"
                         for op in fleet.operations()), 30, "the start through ARM")
    wait_for(lambda: fleet.public_ip("vm-001") not in (None, first_ip), 10, "a new IP")
    new_ip = fleet.public_ip("vm-001")
    wait_for(lambda: (s := latest(store, "vm-001")) is not None and s.healthy
             and s.ssh_via == f"public IP {new_ip}", 40, "vm-001 healthy at its new IP")


def test_private_only_vm_is_judged_by_azure_and_restarted_when_its_agent_is_down(
        running: tuple[SimulatedFleet, LifecycleDaemon, StateStore, Path]) -> None:
    fleet, daemon, store, hooks = running
    wait_for(lambda: (s := latest(store, "vm-003")) is not None and s.healthy, 30, "vm-003")
    s = latest(store, "vm-003")
    assert not s.ssh_checked and s.ssh_via is not None
    assert s.ssh_via.startswith("SSH not applicable: only private IP 127.2.")
    assert "judged by Azure's view: VM agent: Ready" in (s.reason or "")
    assert "vm-003" not in daemon.get_status().failing
    fleet.set_ssh_mode("vm-003", SshMode.HUNG)  # the guest hangs: its agent stops reporting
    wait_for(lambda: any(op["vm"] == "vm-003" and op["action"] == "restart"
                         for op in fleet.operations()), 30, "the restart through ARM")
    wait_for(lambda: hooks.read_text().splitlines().count("on_healthy vm-003") == 2, 40,
             "vm-003 healthy again")
    lines = [line for line in hooks.read_text().splitlines() if line.endswith("vm-003")]
    # Greeted once at start, then: the restart's end before "healthy again".
    assert lines == ["on_healthy vm-003", "on_restart vm-003", "on_healthy vm-003"]
