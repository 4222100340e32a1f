"""End to end, a fleet as azlin makes it: private VMs (no public IP) behind an Azure
Bastion, their address and user resolved from Azure, checked by a real daemon through its
own tunnels (the real Azure SDK, websocket-client, TLS and paramiko against the stand-in
Azure and Bastion on 127.0.0.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.daemon import LifecycleDaemon
from azlin_lifecycle.models import SshFault
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.simulator.bastion import BastionMode
from azlin_lifecycle.state import StateStore
from tests.support.inprocess import running_daemon
from tests.support.waiting import wait_for

INTERVAL = 10


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path / "sim", 3, boot_seconds=2.0, operation_seconds=1.0) as f:
        assert all(f.public_ip(vm) is None for vm in f.vm_names)  # private, as azlin's
        for key, value in f.env().items():
            monkeypatch.setenv(key, value)
        yield f


@pytest.fixture
def daemon(fleet: SimulatedFleet, isolated_dirs: Path) -> Iterator[LifecycleDaemon]:
    config = isolated_dirs / "lifecycle-config.toml"
    fleet.write_config(
        config, resolve_ssh=True, restart_policy="on-failure", check_interval_seconds=INTERVAL,
        extra_toml={"daemon": {"ssh_timeout_seconds": 3.0},
                    "healing": {"grace_period_seconds": 5},
                    "vms": {vm: {"ssh_failure_threshold": 1} for vm in fleet.vm_names}})
    with running_daemon(config) as running:
        wait_for(lambda: running.get_status().healthy == 3, 40, "3 healthy VMs")
        yield running


def restarts(fleet: SimulatedFleet) -> list[dict[str, object]]:
    return [op for op in fleet.operations() if op["action"] == "restart"]


def test_a_private_vm_that_hangs_is_seen_through_bastion_restarted_once_and_healthy(
        fleet: SimulatedFleet, daemon: LifecycleDaemon) -> None:
    store = StateStore()
    assert store.latest(["vm-002"])["vm-002"].ssh_via == f"Bastion {fleet.bastion.name}"
    fleet.set_ssh_mode("vm-002", SshMode.HUNG)
    wait_for(lambda: len(restarts(fleet)) == 1, 40, "the restart through ARM")
    failed = next(s for s in store.history("vm-002") if not s.healthy)
    assert failed.ssh_via == f"Bastion {fleet.bastion.name}"
    assert failed.fault is SshFault.HUNG  # the tunnel opened, the guest never answered
    wait_for(lambda: (s := store.latest(["vm-002"])["vm-002"]).healthy
             and s.ssh_via == f"Bastion {fleet.bastion.name}", 40, "healthy, through Bastion")
    time.sleep(INTERVAL + 1)
    assert [(op["vm"], op["status"]) for op in restarts(fleet)] == [("vm-002", "Succeeded")]


@pytest.mark.parametrize("mode", [BastionMode.DOWN, BastionMode.HANG])
def test_bastion_down_for_every_vm_for_a_minute_restarts_nothing(
        fleet: SimulatedFleet, daemon: LifecycleDaemon, mode: BastionMode) -> None:
    fleet.bastion.set_mode(BastionMode.DROP)  # the open tunnels are cut ...
    fleet.set_bastion_mode(mode)  # ... and new ones cannot be had, for a minute
    started = time.monotonic()
    wait_for(lambda: all("Bastion unreachable" in (daemon.get_status().needs_you.get(vm) or "")
                         for vm in fleet.vm_names), 30, "every VM: Bastion unreachable")
    time.sleep(max(0.0, 60 - (time.monotonic() - started)))
    status = daemon.get_status()
    assert sorted(status.needs_you) == fleet.vm_names, status.needs_you
    assert restarts(fleet) == []
    history = StateStore().history("vm-001")
    assert all(s.ssh_failures == 0 for s in history)  # never counted toward a restart
    fleet.set_bastion_mode(BastionMode.UP)
    wait_for(lambda: daemon.get_status().healthy == 3, 3 * INTERVAL, "healthy again")
    assert restarts(fleet) == []
