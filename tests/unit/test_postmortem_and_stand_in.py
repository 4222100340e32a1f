"""The post-mortem store (directories, pruning, the webhook's tail) and the stand-in's
pure parts for what Azure knows of a VM (Resource Health, the serial log, the approval
wait), with a hand-driven clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from azlin_lifecycle import postmortem
from azlin_lifecycle.config import (
    AzureSettings,
    HealingSettings,
    HookType,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.hooks import build_payload
from azlin_lifecycle.models import HealthFailure, VMState
from azlin_lifecycle.signals import Capture, Cause
from azlin_lifecycle.simulator import signals_api
from azlin_lifecycle.simulator.state import FleetState, SshMode
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeClock, FakeCompute, FakeSignals, RecordingHooks

T0 = 1_796_000_000.0


# ------------------------------------------------------------------ the store
def test_attempts_are_kept_newest_first_up_to_the_limit(tmp_path: Path) -> None:
    base = postmortem.root(tmp_path)
    made = []
    for n in range(4):
        directory = postmortem.new_directory(base, "vm1", T0 + n // 2)  # two per second
        log = directory / "serial.log"
        log.write_text(f"boot {n}\n")
        postmortem.record(Capture(directory, log, None, f"serial log {n}"), vm="vm1",
                          action="restart", reason="hung", now=T0 + n)
        made.append(directory)
    stamp = dt.datetime.fromtimestamp(T0, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    assert [d.name for d in made][:2] == [stamp, f"{stamp}-2"]
    assert made[0].stat().st_mode & 0o777 == 0o700
    removed = postmortem.prune(base, "vm1", keep=3)
    assert removed == [made[0]] and not made[0].exists()
    kept = postmortem.listing(base, "vm1")
    assert [p.directory for p in kept] == made[:0:-1]  # newest first
    assert kept[0].info["note"] == "serial log 3" and kept[0].serial_log == made[3] / "serial.log"
    assert kept[0].to_json()["serial_log_bytes"] == len("boot 3\n")
    assert postmortem.listing(base, "vm2") == []


def test_the_tail_is_whole_lines_within_4_kb(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    lines = [f"[{n:8d}.000000] line {n} " + "x" * 40 for n in range(500)]
    log.write_text("\n".join(lines) + "\n")
    tail = postmortem.tail(log)
    assert len(tail.encode()) <= 4096 and tail.endswith(lines[-1] + "\n")
    assert tail.splitlines()[0] in lines  # no partial first line
    assert postmortem.tail(None) == "" and postmortem.tail(tmp_path / "missing") == ""


def test_a_webhook_gets_the_serial_logs_last_lines_within_4_kb(tmp_path: Path) -> None:
    signals = FakeSignals(serial="".join(f"[{n:6d}.000] kernel line {n}\n" for n in range(2000))
                          + "INFO: task sshd:1187 blocked for more than 120 seconds.\n")
    hooks = RecordingHooks()
    config = LifecycleConfig(azure=AzureSettings(subscription_id="s", resource_group="rg"),
                             healing=HealingSettings(),
                             vms={"vm1": MonitoringConfig(restart_policy=RestartPolicy.ALWAYS)})
    healer = SelfHealer(config, compute=FakeCompute({"vm1": VMState.RUNNING},
                                                    agents={"vm1": "Not Ready"}),
                        store=StateStore(tmp_path / "state.db"), hooks=hooks, signals=signals)
    healer.handle_failure("vm1", HealthFailure("vm1", 3, "SSH timed out (hung)"))
    ((_, context),) = hooks.of("on_restart")
    payload = build_payload(HookType.ON_RESTART, "vm1", context, "2026-12-05T09:30:00Z")
    tail = payload["serial_log_tail"]
    assert 3000 < len(tail.encode()) <= 4096
    assert tail.endswith("INFO: task sshd:1187 blocked for more than 120 seconds.\n")
    assert payload["serial_log"] == context["serial_log"]
    assert json.dumps(payload)  # a webhook's JSON body


# ------------------------------------------------------------------ the stand-in


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> FleetState:
    fleet = FleetState(clock, resource_group="rg", boot_seconds=5, operation_seconds=1)
    fleet.add_vm("vm-1", 2201)
    return fleet


def cause_of(state: FleetState) -> Cause:
    from azlin_lifecycle.adapters.azure.resource_health import platform_health_from_json

    return platform_health_from_json(signals_api.availability_body(
        state.require("vm-1"), "sub", "rg")).cause


def test_resource_health_follows_the_power_state_and_who_stopped_it(
        state: FleetState, clock: FakeClock) -> None:
    assert cause_of(state) is Cause.NONE  # running: Available
    state.begin("vm-1", "deallocate")
    clock.advance(1)
    assert cause_of(state) is Cause.CUSTOMER  # through ARM: a person or a tool
    props = signals_api.availability_body(state.require("vm-1"), "sub", "rg")["properties"]
    assert props["annotationName"] == "VirtualMachineDeallocationInitiated"
    state.set_power_state("vm-1", "stopped")  # from outside: not attributed
    assert cause_of(state) is Cause.NONE
    state.set_power_state("vm-1", "running")
    state.set_health("vm-1", signals_api.health_properties(
        "unavailable", annotation="VirtualMachineHostCrashed"))
    assert cause_of(state) is Cause.PLATFORM
    state.set_health("vm-1", None)  # cleared: recentlyResolved
    props = signals_api.availability_body(state.require("vm-1"), "sub", "rg")["properties"]
    assert props["availabilityState"] == "Available" and "resolvedTime" in props[
        "recentlyResolved"]
    with pytest.raises(ValueError, match="unknown Resource Health state"):
        signals_api.health_properties("sideways")


def test_the_serial_log_shows_a_hung_guest_and_is_past_a_megabyte(state: FleetState,
                                                                   clock: FakeClock) -> None:
    state.set_ssh_mode("vm-1", SshMode.HUNG)
    log = signals_api.serial_log(state.require("vm-1"))
    assert len(log) > 1 << 20
    assert log.decode().rstrip().endswith("INFO: task sshd:1187 blocked for more than 120 "
                                          "seconds.")
    state.begin("vm-1", "restart")  # a reboot cures the hang, and boots again
    clock.advance(5)
    after = signals_api.serial_log(state.require("vm-1")).decode()
    assert "(boot 2)" in after and not after.rstrip().endswith("seconds.")
    shot = signals_api.screenshot()
    assert shot[:2] == b"BM" and int.from_bytes(shot[2:6], "little") == len(shot)


def test_a_restart_waits_for_the_guests_approval_before_the_vm_goes_down(
        state: FleetState, clock: FakeClock) -> None:
    state.set_ssh_mode("vm-1", SshMode.HUNG)
    state.set_platform("vm-1", approval_seconds=10)
    op = state.begin("vm-1", "restart")
    vm = state.require("vm-1")
    clock.advance(9)
    assert op.status == "InProgress" and vm.provisioning == "succeeded"
    assert vm.ssh_effective is SshMode.HUNG  # accepted, not started: still hung
    clock.advance(1)
    assert vm.provisioning == "updating" and vm.ssh_effective is SshMode.REFUSED
    clock.advance(1)
    assert op.status == "Succeeded"


def test_a_blob_error_never_quotes_its_url() -> None:
    import http.client

    from azlin_lifecycle.adapters.azure.boot_diagnostics import _describe

    url = "https://acct.blob.core.windows.net/c/vm.serialconsole.log?sv=1&sig=SECRETTOKEN"
    for exc in (http.client.InvalidURL(f"URL can't contain control characters. {url!r}"),
                ValueError(url), ConnectionRefusedError(111, "Connection refused")):
        assert "SECRETTOKEN" not in _describe(exc)
    assert _describe(ConnectionRefusedError(111, "Connection refused")) == \
        "ConnectionRefusedError (Connection refused)"
