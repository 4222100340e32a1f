"""A restart only for a fault a restart can fix, and only when Azure does not say the guest
is alive: one-VM fleets (the circuit breaker needs two failing VMs, so it cannot help),
each watched by its own `daemon run` process through the real Azure SDK and real SSH
against the stand-in Azure; threshold 2, checks every 10 s, 60 s of watching.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore
from tests.support.waiting import wait_for

HOOK = """#!/bin/sh
echo "$EVENT_TYPE|$FAILURE_COUNT|$REASON|$RESTART_RESULT" >> {log}
"""
WATCH_SECONDS = 60.0
# One VM each: (name, what breaks, its config beyond the stand-in's).
SCENARIOS = ["auth", "host_key", "unresolvable", "missing_key", "hung_not_ready",
             "hung_agent_ready"]


@dataclass
class Watched:
    vm: str
    proc: subprocess.Popen[str]
    store: StateStore
    hook_log: Path

    def hooks(self) -> list[list[str]]:
        if not self.hook_log.exists():
            return []
        return [line.split("|") for line in self.hook_log.read_text().splitlines()]

    def latest(self) -> Any:
        return self.store.latest([self.vm]).get(self.vm)



@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[SimulatedFleet, dict[str, Watched]]]:
    base = tmp_path_factory.mktemp("taxonomy")
    with SimulatedFleet(base / "sim", len(SCENARIOS), boot_seconds=2.0,
                        operation_seconds=1.0) as fleet:
        vms = dict(zip(SCENARIOS, fleet.vm_names, strict=True))
        running: dict[str, Watched] = {}
        try:
            for scenario, vm in vms.items():
                running[scenario] = _start(fleet, base / scenario, vm, vms, scenario)
            for w in running.values():  # first a healthy contact (host key recorded)
                wait_for(lambda w=w: w.latest() is not None and w.latest().healthy, 30,
                         f"{w.vm} healthy")
            _break(fleet, vms, base)
            time.sleep(WATCH_SECONDS)
            yield fleet, running
        finally:
            for w in running.values():
                w.proc.terminate()
            for w in running.values():
                try:
                    w.proc.wait(20)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                w.store.close()


def _start(fleet: SimulatedFleet, home: Path, vm: str, vms: dict[str, str],
           scenario: str) -> Watched:
    hook_log, hook = home / "hooks.log", home / "hook.sh"
    home.mkdir(parents=True)
    hook.write_text(HOOK.format(log=hook_log))
    hook.chmod(0o755)
    own: dict[str, Any] = {"ssh_failure_threshold": 2}
    if scenario == "unresolvable":
        own["ssh_host"] = "vm gone"  # fails inside the resolver: no DNS query leaves
    config_dir = home / "azlin"
    fleet.write_config(
        config_dir / "lifecycle-config.toml", restart_policy="on-failure",
        check_interval_seconds=10,
        hooks={h: str(hook) for h in ("on_failure", "on_restart")},
        extra_toml={"daemon": {"ssh_timeout_seconds": 3.0},
                    "healing": {"grace_period_seconds": 30, "agent_ready_override_failures": 4},
                    "vms": {other: ({"enabled": True} | own if other == vm else
                                    {"enabled": False}) for other in vms.values()}})
    if scenario == "unresolvable":
        # Healthy first at its real address, so the change of address is the fault.
        good = (config_dir / "lifecycle-config.toml").read_text()
        (home / "bad-config.toml").write_text(good)
        fixed = good.replace('ssh_host = "vm gone"', 'ssh_host = "127.0.0.1"')
        (config_dir / "lifecycle-config.toml").write_text(fixed)
    env = {**fleet.env(), "AZLIN_CONFIG_DIR": str(config_dir),
           "XDG_STATE_HOME": str(home / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle", "daemon", "run"],
                            env=env, stdout=subprocess.DEVNULL,
                            stderr=(home / "daemon.log").open("w"), text=True)
    store = StateStore(home / "state" / "azlin-lifecycle" / "state.db")
    return Watched(vm, proc, store, hook_log)


def _break(fleet: SimulatedFleet, vms: dict[str, str], base: Path) -> None:
    fleet.set_ssh_mode(vms["auth"], SshMode.AUTH_FAIL)
    fleet.set_ssh_mode(vms["host_key"], SshMode.HOST_KEY_CHANGED)
    config = base / "unresolvable" / "azlin" / "lifecycle-config.toml"
    config.write_text((base / "unresolvable" / "bad-config.toml").read_text())
    missing = base / "missing_key" / "azlin" / "lifecycle-config.toml"
    text = missing.read_text()
    key_line = next(line for line in text.splitlines() if line.startswith("ssh_key"))
    missing.write_text(text.replace(key_line, f'ssh_key = "{base}/no-such-key"'))
    fleet.set_ssh_mode(vms["hung_not_ready"], SshMode.HUNG)  # its agent stops: Not Ready
    fleet.set_guest(vms["hung_agent_ready"], agent="ready")
    fleet.set_ssh_mode(vms["hung_agent_ready"], SshMode.HUNG)


def restarts(fleet: SimulatedFleet, vm: str) -> list[dict[str, Any]]:
    return [op for op in fleet.operations() if op["vm"] == vm and op["action"] == "restart"]


@pytest.mark.parametrize(("scenario", "words"), [
    ("auth", "authentication failed"),
    ("host_key", "host key changed"),
    ("unresolvable", "name resolution failed"),
    ("missing_key", "private key missing or unreadable"),
])
def test_a_fault_a_restart_cannot_fix_never_restarts(
        watched: tuple[SimulatedFleet, dict[str, Watched]], scenario: str, words: str) -> None:
    fleet, running = watched
    w = running[scenario]
    assert restarts(fleet, w.vm) == []  # zero restart POSTs in 60 s
    failures = [h for h in w.hooks() if h[0] == "on_failure"]
    assert len(failures) == 1  # paged once for the incident, not on each of its checks
    for _, count, reason, _ in failures:
        assert count == "0" and reason.startswith(f"SSH {words}")
        assert "a restart cannot fix this" in reason
    status = w.latest()
    assert status.needs_you and status.ssh_failures == 0


def test_hung_guest_whose_agent_is_not_ready_is_restarted_once(
        watched: tuple[SimulatedFleet, dict[str, Watched]]) -> None:
    fleet, running = watched
    w = running["hung_not_ready"]
    assert len(restarts(fleet, w.vm)) == 1  # then its grace period and the budget's backoff
    restarted = [h for h in w.hooks() if h[0] == "on_restart"]
    assert [h[3] for h in restarted] == ["success"]


def test_hung_guest_whose_agent_is_ready_is_held_then_the_documented_rule(
        watched: tuple[SimulatedFleet, dict[str, Watched]]) -> None:
    fleet, running = watched
    w = running["hung_agent_ready"]
    failures = [h for h in w.hooks() if h[0] == "on_failure"]
    held = [h for h in failures if "held back: Azure: VM agent: Ready" in h[2]]
    # Below the threshold (2): paged, no repair wanted yet; at 2 and 3 held, saying why
    # (paged at 2, when the outcome changed); agent_ready_override_failures = 4: repairing
    # (paged again: the outcome changed).
    assert [h[1] for h in failures][:3] == ["1", "2", "4"]
    assert [h[1] for h in held] == ["2"]
    assert "repairing once SSH has failed 4 times in a row" in held[0][2]
    assert len(restarts(fleet, w.vm)) == 1
    assert [h[3] for h in w.hooks() if h[0] == "on_restart"] == ["success"]
