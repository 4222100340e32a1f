"""Two `daemon run` processes, separate state and config dirs, one Azurite, one fleet on the
stand-in Azure (real SDKs, real SSH): exactly one acts, a failover never repeats a
restart, and when storage is gone or cut off nobody repairs and both say why.

[ha] lease 15 s (renewed every 5 s), checks every 10 s, threshold 2.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.simulator.azurite import Azurite, azurite_available
from azlin_lifecycle.state import StateStore
from tests.integration.conftest import require
from tests.support.tcp_forward import TcpForward
from tests.support.waiting import wait_for

LEASE = 15
INTERVAL = 10
HOOK = """#!/bin/sh
echo "$EVENT_TYPE|$RESTART_RESULT|$ERROR" >> {log}
"""


@dataclass
class Monitor:
    name: str
    home: Path
    proc: subprocess.Popen[str]
    store: StateStore

    @property
    def log(self) -> str:
        return (self.home / "daemon.log").read_text(errors="replace")

    def ha(self) -> dict[str, Any]:
        return dict(self.store.daemon_facts().get("ha") or {})

    def role(self) -> str | None:
        return self.ha().get("role")

    def status_text(self) -> str:
        return str(self.store.daemon_facts().get("status_text", ""))

    def hooks(self) -> list[list[str]]:
        path = self.home / "hooks.log"
        return [line.split("|") for line in path.read_text().splitlines()] if path.exists() \
            else []

    def status(self) -> str:
        """`azlin-lifecycle status` as the user runs it on this monitor's machine."""
        env = {**os.environ, "AZLIN_CONFIG_DIR": str(self.home / "azlin"),
               "XDG_STATE_HOME": str(self.home / "state")}
        return subprocess.run([sys.executable, "-m", "azlin_lifecycle", "status"], env=env,
                              capture_output=True, text=True, timeout=60, check=True).stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.store.close()


def start_monitor(fleet: SimulatedFleet, base: Path, name: str, account_url: str) -> Monitor:
    home = base / name
    home.mkdir(parents=True)
    hook = home / "hook.sh"
    hook.write_text(HOOK.format(log=home / "hooks.log"))
    hook.chmod(0o755)
    config_dir = home / "azlin"
    fleet.write_config(
        config_dir / "lifecycle-config.toml", restart_policy="on-failure",
        check_interval_seconds=INTERVAL,
        hooks={h: str(hook) for h in ("on_failure", "on_restart", "on_healthy")},
        extra_toml={"daemon": {"ssh_timeout_seconds": 3.0},
                    "healing": {"grace_period_seconds": 30, "restart_timeout_seconds": 120},
                    "ha": {"enabled": True, "account_url": account_url,
                           "credential": "azurite", "lease_seconds": LEASE},
                    "vms": {vm: {"ssh_failure_threshold": 2} for vm in fleet.vm_names}})
    env = {**fleet.env(), "AZLIN_CONFIG_DIR": str(config_dir),
           "XDG_STATE_HOME": str(home / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle", "daemon", "run"],
                            env=env, stdout=subprocess.DEVNULL,
                            stderr=(home / "daemon.log").open("w"), text=True)
    db = home / "state" / "azlin-lifecycle" / "state.db"
    wait_for(db.exists, 30, f"{name}'s state database")
    return Monitor(name, home, proc, StateStore(db))


def restarts(fleet: SimulatedFleet) -> list[dict[str, Any]]:
    return [op for op in fleet.operations() if op["action"] == "restart"]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Azurite]:
    require(azurite_available(), "Azurite is not installed (make setup installs it)")
    with Azurite(tmp_path / "azurite" / "azurite.log") as azurite:
        yield azurite


def leader_and_standby(*monitors: Monitor) -> tuple[Monitor, Monitor]:
    wait_for(lambda: sorted(str(m.role()) for m in monitors) == ["leader", "standby"]
             and all(m.ha().get("leader") for m in monitors), 40, "one leader, one standby")
    leader = next(m for m in monitors if m.role() == "leader")
    standby = next(m for m in monitors if m is not leader)
    return leader, standby


def test_one_acts_and_a_leader_killed_mid_restart_is_not_restarted_twice(
        tmp_path: Path, storage: Azurite) -> None:
    with SimulatedFleet(tmp_path / "sim", 1, boot_seconds=2.0, operation_seconds=30.0) as fleet:
        vm = fleet.vm_names[0]
        a = start_monitor(fleet, tmp_path, "a", storage.account_url)
        b = start_monitor(fleet, tmp_path, "b", storage.account_url)
        try:
            leader, standby = leader_and_standby(a, b)
            assert standby.ha()["leader"] == leader.ha()["leader"]  # who leads, by name
            assert leader.status_text().startswith("leader: ")
            assert standby.status_text().startswith("standby: ")
            assert "not repairing" in standby.status_text()
            leader_name = leader.ha()["leader"]
            assert re.search(rf"^leadership: leader since \d\d:\d\d:\d\d UTC \({leader_name}\); "
                             r"lease expires \d\d:\d\d:\d\d UTC unless renewed$",
                             leader.status(), re.M)
            assert re.search(rf"^leadership: standby since .* UTC; {leader_name} leads since .*; "
                             "this monitor takes over if its lease of 15s expires$",
                             standby.status(), re.M)
            wait_for(lambda: all(m.store.latest().get(vm) is not None
                                 and m.store.latest()[vm].healthy for m in (a, b)), 40,
                     "both see the VM healthy")
            fleet.set_ssh_mode(vm, SshMode.HUNG)  # its agent reports Not Ready
            wait_for(lambda: len(restarts(fleet)) == 1, 60, "a restart")
            # Exactly one acts: the leader asked, fired the hooks; the standby did neither.
            assert "restart_requested" in leader.log
            assert "restart_requested" not in standby.log
            assert any(h[0] == "on_failure" for h in leader.hooks())
            assert standby.hooks() == []
            assert standby.store.latest()[vm].failing  # the standby checks all the same
            time.sleep(1.0)
            leader.proc.send_signal(signal.SIGKILL)  # mid-restart (the operation takes 30 s)
            killed = time.time()
            leader.proc.wait(10)
            wait_for(lambda: standby.role() == "leader", LEASE + INTERVAL, "the standby leads")
            failover = standby.ha()["since"] - killed
            assert failover <= LEASE + 1.0
            # The new leader asks Azure about it first (one instance view): under way.
            wait_for(lambda: "interrupted by a failover" in standby.log, 10, "the announcement")
            assert re.search(r"repair_settled: .*operation under way.*sent=true", standby.log)
            wait_for(lambda: standby.store.latest()[vm].healthy, 60, "healthy after the restart")
            time.sleep(INTERVAL * 2)
            assert len(restarts(fleet)) == 1  # the new leader never repeated it
            assert "restart_requested" not in standby.log
            assert standby.hooks()[0][:2] == ["on_restart", "failure"]  # told: interrupted
        finally:
            a.stop()
            b.stop()
    print(f"failover after SIGKILL of the leader: {failover:.1f} s (lease {LEASE} s)")


def test_storage_gone_nobody_repairs_and_both_say_why(tmp_path: Path, storage: Azurite) -> None:
    with SimulatedFleet(tmp_path / "sim", 1, boot_seconds=2.0) as fleet:
        vm = fleet.vm_names[0]
        a = start_monitor(fleet, tmp_path, "a", storage.account_url)
        b = start_monitor(fleet, tmp_path, "b", storage.account_url)
        try:
            leader, _ = leader_and_standby(a, b)
            storage.stop()
            wait_for(lambda: all(m.role() == "standby" and "nobody can lead" in m.ha()["reason"]
                                 for m in (a, b)), LEASE, "both stand by")
            assert "leadership_lost" in leader.log
            fleet.set_ssh_mode(vm, SshMode.HUNG)
            wait_for(lambda: all(m.store.latest()[vm].ssh_failures >= 3 for m in (a, b)), 60,
                     "three failed checks on both")
            assert restarts(fleet) == []
            for m in (a, b):
                text = m.status_text()
                assert text.startswith("standby: ")
                assert f"not repairing: nobody can lead: storage {storage.account_url}" in text
                assert "unreachable" in text
                assert "restart_requested" not in m.log
        finally:
            a.stop()
            b.stop()


def test_a_leader_cut_off_from_storage_stops_repairing_before_the_other_starts(
        tmp_path: Path, storage: Azurite) -> None:
    with SimulatedFleet(tmp_path / "sim", 1, boot_seconds=2.0) as fleet, \
            TcpForward(("127.0.0.1", storage.port)) as link:
        vm = fleet.vm_names[0]
        a = start_monitor(fleet, tmp_path, "a", f"http://127.0.0.1:{link.port}/devstoreaccount1")
        wait_for(lambda: a.role() == "leader", 30, "a leads")
        b = start_monitor(fleet, tmp_path, "b", storage.account_url)
        try:
            leader_and_standby(a, b)
            wait_for(lambda: b.store.latest().get(vm) is not None, 40, "b checked the VM")
            link.pause()  # a's packets to storage are held, nothing is refused
            cut = time.time()
            wait_for(lambda: b.role() == "leader", LEASE + 10, "b leads")
            stepped_down, took_over = a.ha()["since"], b.ha()["since"]
            assert a.role() == "standby" and "renewing the lease failed" in a.log
            assert stepped_down < took_over  # a stopped repairing before b could start
            assert stepped_down - cut < LEASE / 3 + LEASE / 6 + 1  # at its next renewal
            fleet.set_ssh_mode(vm, SshMode.HUNG)
            wait_for(lambda: len(restarts(fleet)) == 1, 60, "b restarts the VM")
            time.sleep(2)
            assert "restart_requested" in b.log and "restart_requested" not in a.log
            link.resume()
            wait_for(lambda: a.ha().get("leader") == b.ha()["leader"], 30,
                     "a, reconnected, sees b lead")
            assert a.role() == "standby" and len(restarts(fleet)) == 1
        finally:
            a.stop()
            b.stop()


def test_without_ha_a_daemon_needs_no_storage(tmp_path: Path) -> None:
    """[ha] is off by default: no lease, no role in STATUS=."""
    with SimulatedFleet(tmp_path / "sim", 1, boot_seconds=2.0) as fleet:
        config_dir = tmp_path / "azlin"
        fleet.write_config(config_dir / "lifecycle-config.toml", restart_policy="never")
        env = {**fleet.env(), "AZLIN_CONFIG_DIR": str(config_dir),
               "XDG_STATE_HOME": str(tmp_path / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle", "daemon", "run"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        db = tmp_path / "state" / "azlin-lifecycle" / "state.db"
        try:
            wait_for(db.exists, 30, "the state database")
            store = StateStore(db)
            wait_for(lambda: "1 healthy" in str(store.daemon_facts().get("status_text")), 40,
                     "a healthy sweep")
            facts = store.daemon_facts()
            store.close()
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert "ha" not in facts
    assert str(facts["status_text"]).startswith("1 VMs: 1 healthy")
    assert "leader" not in err and "standby" not in err
