"""The daemon's loop with fake adapters: decisions, hooks, breaker, reload, status."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.config import LifecycleConfig, parse_toml, render_toml
from azlin_lifecycle.daemon import LifecycleDaemon
from azlin_lifecycle.models import RepairAction, VMState
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeAddresses, FakeCompute, FakeSsh, RecordingHooks
from tests.support.waiting import wait_for

BASE = """
[azure]
subscription_id = "sub"
resource_group = "rg"
[healing]
grace_period_seconds = 60
{healing}
[vms.vm1]
restart_policy = "on-failure"
ssh_failure_threshold = 1
[vms.vm2]
restart_policy = "on-failure"
ssh_failure_threshold = 1
[vms.vm3]
restart_policy = "on-failure"
ssh_failure_threshold = 1
"""



class Harness:
    def __init__(self, tmp_path: Path, healing: str = "") -> None:
        self.path = tmp_path / "lifecycle-config.toml"
        self.path.write_text(BASE.format(healing=healing))
        self.compute = FakeCompute({v: VMState.RUNNING for v in ("vm1", "vm2", "vm3")})
        self.ssh = FakeSsh()
        self.hooks = RecordingHooks()
        self.store = StateStore(tmp_path / "state.db")
        self.addresses = FakeAddresses()
        self.daemon = LifecycleDaemon(self.path, compute=self.compute, ssh=self.ssh,
                                      hooks=self.hooks, store=self.store, foreground=True,
                                      addresses=self.addresses)
        self.thread = threading.Thread(target=self.daemon.start)

    def __enter__(self) -> Harness:
        self.thread.start()
        wait_for(lambda: self.daemon.get_status().running)
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def checked(self, n: int) -> Callable[[], bool]:
        return lambda: len(self.ssh.probes) >= n


@pytest.fixture(autouse=True)
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_first_sweep_heals_the_failing_vm_and_greets_the_healthy(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.ssh.down["vm2"] = "timed out (hung)"
    with h:
        wait_for(lambda: ("restart", "vm2") in h.compute.calls)
        wait_for(lambda: bool(h.hooks.of("on_restart")))
        status = h.daemon.get_status()
    assert h.compute.list_calls >= 1  # one list call for the group, not one per VM
    # No per-VM reads in the sweep; one instance view, at decision time, of the VM repaired.
    assert [c for c in h.compute.calls if c[0] == "instance_view"] == [("instance_view", "vm2")]
    assert sorted(vm for vm, _ in h.hooks.of("on_healthy")) == ["vm1", "vm3"]
    (vm, ctx), = h.hooks.of("on_failure")
    assert vm == "vm2" and ctx["failure_count"] == 1 and ctx["reason"] == "SSH timed out (hung)"
    assert h.hooks.of("on_restart")[0][1]["restart_result"] == "success"
    assert status.monitored_vms == ["vm1", "vm2", "vm3"] and status.healthy == 2
    assert h.ssh.forgotten == ["vm2"]
    assert h.store.daemon_facts()["status_text"].startswith("3 VMs: 2 healthy, 1 failing (vm2)")


def test_breaker_opens_when_the_whole_fleet_fails(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    for vm in ("vm1", "vm2", "vm3"):
        h.ssh.down[vm] = "timed out"
    with h:
        wait_for(lambda: h.daemon.get_status().breaker_open)
        wait_for(lambda: len(h.hooks.of("on_failure")) == 1)
        status = h.daemon.get_status()
    # One page for the three, not three: they share the (unset) target, and 3 of 3 is
    # the breaker's "many".
    [(first, digest)] = h.hooks.of("on_failure")
    assert (first, digest["digest"], digest["vm_names"], digest["vm_count"]) == (
        "vm1", 1, "vm1,vm2,vm3", 3)
    assert digest["outcome"] == "held" and digest["alert"] == "first"
    assert str(digest["reason"]).startswith("3 VMs failed in one sweep: vm1: SSH timed out")
    assert not [c for c in h.compute.calls if c[0] == "restart"]
    err = capsys.readouterr().err
    assert err.count("breaker_open: circuit breaker open: 3 of 3 running VMs") == 1
    assert all("circuit breaker open" in reason for reason in status.held.values())
    assert "healing held: circuit breaker open" in status.status_text


def test_dry_run_only_says_would_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path, healing="dry_run = true")
    h.ssh.down["vm1"] = "connection refused"
    with h:
        wait_for(lambda: [r.outcome for r in h.store.repairs("vm1")] == ["dry_run"])
        assert "dry run (observe only)" in h.daemon.get_status().status_text
    assert not [c for c in h.compute.calls if c[0] == "restart"]


def test_bad_reload_keeps_the_old_config_and_says_why(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with h:
        wait_for(h.checked(3))
        h.path.write_text(h.path.read_text().replace("ssh_failure_threshold = 1\n[vms.vm2]",
                                                     "ssh_failure_threshold = 0\n[vms.vm2]"))
        h.daemon.reload_config()
        wait_for(lambda: h.daemon.get_status().config_error is not None)
        status = h.daemon.get_status()
        assert "ssh_failure_threshold = 0 is not allowed" in (status.config_error or "")
        assert "config reload failed" in status.status_text
        assert status.monitored_vms == ["vm1", "vm2", "vm3"]
        # A good file: applied, a new VM is checked at once, the error clears.
        cfg = parse_toml(BASE.format(healing=""), "base")
        h.path.write_text(render_toml(cfg) + '\n[vms.vm4]\nenabled = true\n')
        h.compute.states["vm4"] = VMState.RUNNING
        h.daemon.reload_config()
        wait_for(lambda: "vm4" in h.ssh.probes)
        status = h.daemon.get_status()
    assert status.config_error is None and "vm4" in status.monitored_vms


def test_config_file_change_is_picked_up_without_a_signal(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with h:
        wait_for(h.checked(3))
        cfg: LifecycleConfig = parse_toml(h.path.read_text(), "x")
        h.path.write_text(render_toml(cfg.with_vm("vm3", None)))
        wait_for(lambda: h.daemon.get_status().monitored_vms == ["vm1", "vm2"], timeout=8)


def test_stop_power_change_fires_on_stop_and_no_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.compute.states["vm1"] = VMState.RUNNING
    with h:
        wait_for(h.checked(3))
    h.compute.states["vm1"] = VMState.DEALLOCATED
    h2 = Harness.__new__(Harness)
    h2.__dict__.update(h.__dict__)
    h2.daemon = LifecycleDaemon(h.path, compute=h.compute, ssh=h.ssh, hooks=h.hooks,
                                store=h.store, foreground=True, addresses=h.addresses)
    h2.thread = threading.Thread(target=h2.daemon.start)
    with h2:  # a restarted daemon remembers the last state from the store
        wait_for(lambda: bool(h.hooks.of("on_stop")))
    (vm, ctx), = h.hooks.of("on_stop")
    assert vm == "vm1" and ctx["state"] == "deallocated" and ctx["previous_state"] == "running"
    assert h.hooks.of("on_failure") == []


def test_a_repair_interrupted_by_a_crash_fires_on_restart_and_is_not_repeated(
        tmp_path: Path) -> None:
    from azlin_lifecycle.models import RepairAction

    h = Harness(tmp_path)
    h.store.begin_repair("vm2", RepairAction.RESTART, dry_run=False,
                         grace_until=time.time() + 300)  # as a SIGKILLed daemon left it
    h.ssh.down["vm2"] = "connection refused"
    with h:
        wait_for(lambda: bool(h.hooks.of("on_restart")))
        wait_for(h.checked(3))
    (vm, ctx), = h.hooks.of("on_restart")
    assert vm == "vm2" and ctx["restart_result"] == "failure"
    assert "interrupted" in str(ctx["error"])
    assert [r.outcome for r in h.store.repairs("vm2")] == ["interrupted"]
    assert not [c for c in h.compute.calls if c[0] == "restart"]  # its grace period stands


def test_reload_events_name_the_file_version_they_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    seen: list[str] = []

    def reloaded() -> bool:
        seen.append(capsys.readouterr().err)
        return "config_reloaded" in "".join(seen)

    with h:
        wait_for(h.checked(3))
        h.daemon.reload_config()
        wait_for(reloaded)
    line = next(x for x in "".join(seen).splitlines() if "config_reloaded" in x)
    assert f"config_mtime_ns={h.path.stat().st_mtime_ns}" in line


def test_a_fault_a_restart_cannot_fix_needs_you_and_never_restarts(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.ssh.down["vm2"] = "authentication failed"
    with h:
        wait_for(h.checked(3))
        wait_for(lambda: bool(h.hooks.of("on_failure")))
        status = h.daemon.get_status()
    assert not [c for c in h.compute.calls if c[0] == "restart"]
    assert status.failing == [] and list(status.needs_you) == ["vm2"]
    assert "a restart cannot fix this" in status.needs_you["vm2"]
    (vm, ctx), = h.hooks.of("on_failure")
    assert vm == "vm2" and "check ssh_user and ssh_key" in str(ctx["reason"])
    text = h.store.daemon_facts()["status_text"]
    assert text.startswith("3 VMs: 2 healthy, 0 failing, 1 need you (vm2)")


def test_one_definition_of_failing_a_vm_in_grace_is_recovering(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.store.begin_repair("vm2", RepairAction.RESTART, dry_run=False,
                         grace_until=time.time() + 600)
    h.store.end_repair(1, success=True, error=None, grace_until=time.time() + 600)
    h.ssh.down["vm2"] = "connection refused"
    with h:
        wait_for(h.checked(3))
        wait_for(lambda: "recovering" in h.daemon.get_status().status_text)
        status = h.daemon.get_status()
    # Booting after a repair: not failing in STATUS=, get_status() or the breaker alike.
    assert status.failing == [] and not status.breaker_open and status.needs_you == {}
    assert status.status_text.startswith("3 VMs: 2 healthy, 0 failing, 1 recovering (vm2)")
    assert not [c for c in h.compute.calls if c[0] == "restart"]


def test_a_daemon_never_started_reports_no_pid(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    status = h.daemon.get_status()
    assert status.pid is None and not status.running
    with h:
        assert h.daemon.get_status().pid is not None


def test_a_decision_waiting_on_a_slow_azure_does_not_stall_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (the chaos soak, issue 21): repair decisions read Azure, and made on the
    loop, a throttled Azure kept it from pinging systemd's watchdog until systemd killed
    the daemon, again and again. Decided off the loop, the pings go on."""
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "600000")  # a ping every 0.3 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    h = Harness(tmp_path, healing="breaker_min_failing = 3")  # 2 of 3 failing: no breaker
    h.compute.view_seconds = 3.0  # each decision's instance view: 3 s
    for vm in ("vm1", "vm2"):
        h.ssh.down[vm] = "timed out (hung)"
    pings: list[float] = []

    def listen() -> None:  # every WATCHDOG=1 as it arrives, for the whole run
        while not sock_done.is_set():
            try:
                if sock.recv(4096) == b"WATCHDOG=1":
                    pings.append(time.monotonic())
            except TimeoutError:
                pass

    sock_done = threading.Event()
    listener = threading.Thread(target=listen)
    listener.start()
    with h:
        wait_for(lambda: len([c for c in h.compute.calls if c[0] == "restart"]) == 1, 15)
        time.sleep(1.0)
    sock_done.set()
    listener.join()
    sock.close()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 8 and max(gaps) < 1.0, gaps
    # One at a time, so the in-flight cap (1 below 20 VMs) saw the first repair: the
    # second VM was held, not restarted alongside.
    assert [c for c in h.compute.calls if c[0] == "restart"] in (
        [("restart", "vm1")], [("restart", "vm2")])


def test_a_fault_no_restart_fixes_on_many_vms_at_once_pages_one_digest(tmp_path: Path) -> None:
    """Decided as each check ends (no fleet view needed), their alerts still wait for the
    sweep's end: one digest, not one page each (a rotated key breaks every VM at once)."""
    h = Harness(tmp_path)
    for vm in ("vm1", "vm2", "vm3"):
        h.ssh.down[vm] = "authentication failed"
    with h:
        wait_for(lambda: len(h.hooks.of("on_failure")) == 1)
        time.sleep(0.5)
    [(first, digest)] = h.hooks.of("on_failure")
    assert (first, digest["vm_names"], digest["outcome"]) == ("vm1", "vm1,vm2,vm3", "needs_you")
