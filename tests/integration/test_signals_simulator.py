"""Asking Azure before and after a repair, with the real SDKs over HTTPS against the
stand-in: Resource Health and maintenance gates (each hold in the journal, on_failure's
REASON and `status`, with what ends it), the post-mortem (serial log, time box, boot
diagnostics off, SAS URLs never written anywhere), a restart Azure accepted but has not
started, and the daemon end to end: hung VM -> serial log -> restart -> `postmortem`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.health import HealthMonitor, failure_of
from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import HealthFailure, HoldKind, RepairAction, VMState
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import build_signals, monitor_for
from tests.support.fakes import RecordingHooks
from tests.support.inprocess import running_daemon
from tests.support.simulated import reset_vms
from tests.support.waiting import wait_for

TRACE = "INFO: task jbd2/sda1-8:245 blocked for more than 120 seconds."


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


def parts(fleet: SimulatedFleet, config_dir: Path, policy: str = "always",
          healing: dict[str, object] | None = None,
          ) -> tuple[HealthMonitor, SelfHealer, RecordingHooks]:
    """The real Azure adapters (and Resource Health and boot diagnostics) on the default
    config and state paths, which `status` and `postmortem` read."""
    path = config_dir / "lifecycle-config.toml"
    fleet.write_config(path, restart_policy=policy, extra_toml={
        "daemon": {"ssh_timeout_seconds": 2.0},
        "healing": {"grace_period_seconds": 0, "backoff_initial_seconds": 0, **(healing or {})}})
    config = LifecycleManager(path).load()
    store = StateStore()
    monitor = monitor_for(config, store)
    hooks = RecordingHooks()
    healer = SelfHealer(config, compute=monitor.compute, store=store, hooks=hooks,
                        on_repaired=monitor.reset_failures,
                        signals=build_signals(monitor.compute))
    return monitor, healer, hooks


def down(fleet: SimulatedFleet, vm: str, monitor: HealthMonitor,
         mode: SshMode = SshMode.REFUSED) -> HealthFailure:
    """``vm`` fails its check (sshd down, and Azure's agent agrees the guest is)."""
    fleet.set_ssh_mode(vm, mode)
    fleet.set_guest(vm, agent="not_ready")
    return failure_of(monitor.check_vm_health(vm))


def status() -> str:
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    return result.output


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "EVENT", "") == name]


def ops(fleet: SimulatedFleet, vm: str, since: float = 0.0) -> list[tuple[str, str]]:
    return [(op["action"], op["status"]) for op in fleet.operations()
            if op["vm"] == vm and op["started"] >= since]


@pytest.fixture
def began() -> float:
    """When the test began (the stand-in's operations log spans the module's tests)."""
    return time.time()


# ------------------------------------------------------------------ Resource Health
def test_azure_repairing_the_host_holds_the_restart_until_the_margin_after_it_clears(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture,
        began: float) -> None:
    monitor, healer, _ = parts(fleet, isolated_dirs, healing={"platform_margin_seconds": 3})
    vm = "vm-001"
    failure = down(fleet, vm, monitor)
    fleet.set_health(vm, "unavailable", annotation="VirtualMachineHostCrashed")
    reads = fleet.arm_requests
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        decision = healer.plan(vm, failure)
    assert fleet.arm_requests - reads == 1  # Resource Health only: held before the guest read
    assert decision.held and decision.hold_kind is HoldKind.PLATFORM
    (held,) = events(caplog, "healing_held")
    assert held.__dict__["HOLD"] == "azure_repairing"
    assert "held back: Azure is repairing the host (VirtualMachineHostCrashed) since " in \
        held.getMessage()
    alert = healer.alert_context(failure, decision)  # what the daemon's on_failure says
    assert alert is not None
    reason = str(alert["reason"])
    assert reason == decision.reason and "healing resumes 3 s after Azure reports the VM " \
        "available again ([healing] platform_margin_seconds)" in reason
    text = status()
    assert f"{vm}: healing held back: " in text and "Azure is repairing the host " \
        "(VirtualMachineHostCrashed) since " in text
    assert healer.store.repairs() == [] and ops(fleet, vm, began) == []  # no budget, no POST
    # Azure says it is over (recentlyResolved): the VM gets the margin, then the restart.
    fleet.set_health(vm, "auto")
    again = healer.plan(vm, failure)
    assert again.hold_kind is HoldKind.PLATFORM and "to come back" in again.reason
    time.sleep(3.2)
    reads = fleet.arm_requests
    go = healer.decide(vm, failure)
    assert go.action is RepairAction.RESTART
    assert fleet.arm_requests - reads == 2  # one more ARM read than before: Resource Health
    assert go.evidence == "Resource Health: Available; VM agent: Not Ready (VM Agent is unresponsive.)"


def test_an_open_maintenance_window_holds_the_restart(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture,
        began: float) -> None:
    monitor, healer, hooks = parts(fleet, isolated_dirs)
    vm = "vm-002"
    failure = down(fleet, vm, monitor)
    fleet.set_maintenance(vm, starts_in=-60, lasts=3600)
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        assert healer.handle_failure(vm, failure) is None
    (held,) = events(caplog, "healing_held")
    assert held.__dict__["HOLD"] == "maintenance"
    reason = str(hooks.of("on_failure")[-1][1]["reason"])
    assert "held back: Azure's planned maintenance window is open until " in reason
    assert "healing resumes when the window closes" in reason
    assert "Azure's planned maintenance window is open until" in status()
    assert ops(fleet, vm, began) == []
    fleet.set_maintenance(vm, None)
    assert healer.decide(vm, failure).action is RepairAction.RESTART


def test_a_vm_a_user_deallocated_is_not_started_back_unless_allowed(
        fleet: SimulatedFleet, isolated_dirs: Path, began: float,
        caplog: pytest.LogCaptureFixture) -> None:
    monitor, healer, hooks = parts(fleet, isolated_dirs)
    vm = "vm-003"
    compute = monitor.compute
    client = compute.client(fleet.subscription_id)  # type: ignore[attr-defined]
    client.virtual_machines.begin_deallocate(fleet.resource_group, vm, polling_interval=0.2
                                             ).result()
    stopped = monitor.check_vm_health(vm)
    assert stopped.state is VMState.DEALLOCATED
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        assert healer.handle_failure(vm, failure_of(stopped)) is None
    (held,) = events(caplog, "healing_held")
    assert held.__dict__["HOLD"] == "user_stopped" and "stopped by a user at" in \
        held.getMessage()
    reason = str(hooks.of("on_failure")[-1][1]["reason"])
    assert "VM is deallocated; restart policy always; held back: stopped by a user at " in reason
    assert "(Resource Health: VirtualMachineDeallocationInitiated)" in reason
    assert "[healing] start_user_stopped = true" in status()
    assert ops(fleet, vm, began) == [("deallocate", "Succeeded")]
    _, allowed, _ = parts(fleet, isolated_dirs, healing={"start_user_stopped": True})
    result = allowed.handle_failure(vm, failure_of(stopped))
    assert result is not None and result.action is RepairAction.START and result.success


def test_a_vm_stopped_from_outside_is_started_as_before(fleet: SimulatedFleet,
                                                        isolated_dirs: Path) -> None:
    monitor, healer, _ = parts(fleet, isolated_dirs)
    vm = "vm-004"
    fleet.set_power_state(vm, "stopped")  # not attributed to a user by Resource Health
    decision = healer.decide(vm, failure_of(monitor.check_vm_health(vm)))
    assert decision.action is RepairAction.START
    assert decision.evidence is not None and "Resource Health: Unavailable (Unknown)" in \
        decision.evidence


def test_degraded_hardware_redeploys_where_escalation_is_on(
        fleet: SimulatedFleet, isolated_dirs: Path, began: float) -> None:
    monitor, healer, _ = parts(fleet, isolated_dirs,
                               healing={"escalate_after_failed_restarts": 3})
    vm = "vm-001"
    failure = down(fleet, vm, monitor)
    fleet.set_health(vm, "degraded",
                     annotation="VirtualMachinePossiblyDegradedDueToHardwareFailure")
    result = healer.handle_failure(vm, failure)
    assert result is not None and result.action is RepairAction.REDEPLOY and result.success
    assert ops(fleet, vm, began) == [("redeploy", "Succeeded")]


def test_unknown_decides_as_before_and_the_evidence_says_so(fleet: SimulatedFleet,
                                                            isolated_dirs: Path) -> None:
    monitor, healer, _ = parts(fleet, isolated_dirs)
    vm = "vm-002"
    failure = down(fleet, vm, monitor)
    fleet.set_health(vm, "unknown")
    result = healer.handle_failure(vm, failure)
    assert result is not None and result.action is RepairAction.RESTART
    assert "Azure's view at the last repair decision: Resource Health: Unknown (Azure has had " \
        "no signal from the VM for over 10 minutes): no information, decided without it" \
        in status()


# ------------------------------------------------------------------ the post-mortem
def test_the_capture_is_time_boxed_against_a_blob_server_that_hangs(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor, healer, hooks = parts(fleet, isolated_dirs, healing={"capture_seconds": 3})
    vm = "vm-003"
    failure = down(fleet, vm, monitor, SshMode.HUNG)
    fleet.set_boot_diagnostics(vm, "hang")
    began = time.time()
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        result = healer.handle_failure(vm, failure)
    assert result is not None and result.success
    (restart,) = [op for op in fleet.operations() if op["vm"] == vm and op["started"] >= began]
    assert restart["started"] - began < 3.0 + 1.0  # the decision, then at most the box
    (caught,) = events(caplog, "postmortem")
    assert caught.levelno == logging.INFO
    assert caught.__dict__["NOTE"] == ("no capture: the serial log did not arrive within the "
                                       "time box")
    assert hooks.of("on_restart")[0][1]["serial_log"] is None


def test_boot_diagnostics_off_is_no_capture_never_an_error(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor, healer, _ = parts(fleet, isolated_dirs)
    vm = "vm-004"
    fleet.set_boot_diagnostics(vm, "off")
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        result = healer.handle_failure(vm, down(fleet, vm, monitor))
    assert result is not None and result.success
    (caught,) = events(caplog, "postmortem")
    assert caught.levelno == logging.INFO and caught.getMessage().endswith(
        "no capture: boot diagnostics are off (az vm boot-diagnostics enable --name VM "
        "--resource-group RG, then the log fills from the next boot)")
    listed = CliRunner().invoke(cli, ["postmortem", vm, "--list"]).output
    assert "no capture: boot diagnostics are off" in listed


def test_sas_urls_are_never_logged_stored_or_told(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor, healer, hooks = parts(fleet, isolated_dirs)
    vm = "vm-001"
    failure = down(fleet, vm, monitor, SshMode.HUNG)
    issued_before = set(fleet.blobs.issued)
    with caplog.at_level(logging.DEBUG):  # every logger, the SDKs' included
        result = healer.handle_failure(vm, failure)
    assert result is not None and result.success
    tokens = set(fleet.blobs.issued) - issued_before
    assert len(tokens) == 2  # the serial log's and the screenshot's
    assert [r["range"] for r in fleet.blobs.requests[-3:-1]] == [
        None, f"bytes={fleet.blobs.requests[-2]['range'].split('=')[1]}"]
    said = [r.getMessage() for r in caplog.records] + [
        str(v) for r in caplog.records for v in vars(r).values()]
    said += [str(context) for _, _, context in hooks.fired]
    state_dir = Path(str(healer.store.path.parent))
    files = [p.read_bytes().decode("latin-1") for p in state_dir.rglob("*") if p.is_file()]
    for token in tokens:
        for quoted in (token, token.replace("-", "%2D")):
            assert not any(quoted in text for text in said), "a SAS token was logged"
            assert not any(quoted in text for text in files), "a SAS token was stored"
    log = Path(str(hooks.of("on_restart")[0][1]["serial_log"]))
    assert log.stat().st_size == 1 << 20 and log.read_text().rstrip().endswith(
        "INFO: task sshd:1187 blocked for more than 120 seconds.")


# ------------------------------------------------------------------ a restart that waits
def test_status_says_azure_accepted_the_restart_but_has_not_started_it(
        fleet: SimulatedFleet, isolated_dirs: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor, healer, hooks = parts(fleet, isolated_dirs)
    vm = "vm-002"
    failure = down(fleet, vm, monitor, SshMode.HUNG)
    fleet.set_approval(vm, 6.0)  # the guest's approval of its Scheduled Event
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        repair = threading.Thread(target=healer.handle_failure, args=(vm, failure))
        repair.start()
        try:
            wait_for(lambda: healer.store.healing_state(vm).phase is not None, 15,
                     "Azure's acceptance")
            monitor.check_vm_health(vm)  # still hung: Azure has not started it
            assert f"{vm}: restart accepted, Azure has not started it yet (accepted " in status()
            wait_for(lambda: fleet.provisioning_state(vm) == "updating", 15,
                     "the approval")
            monitor.check_vm_health(vm)  # going down now: refused
            text = status()  # the operation ends at the next poll, up to 5 s on
            assert f"{vm}: restart accepted (" in text and "under way: the VM is" in text
        finally:
            repair.join(60)
    (accepted,) = events(caplog, "repair_accepted")
    assert "Azure has not started it yet (a restart or redeploy can wait ~15 min" in \
        accepted.getMessage()
    assert hooks.of("on_restart")[0][1]["restart_result"] == "success"
    assert healer.store.healing_state(vm).phase is None and "accepted" not in status()


# ------------------------------------------------------------------ end to end
HOOK = """#!/bin/sh
echo "$EVENT_TYPE $VM_NAME serial=$SERIAL_LOG" >> {log}
"""


def test_daemon_hung_vm_serial_log_restart_and_postmortem(tmp_path: Path,
                                                          isolated_dirs: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    hook_log, hook = tmp_path / "hooks.log", tmp_path / "hook.sh"
    hook.write_text(HOOK.format(log=hook_log))
    hook.chmod(0o755)
    with SimulatedFleet(tmp_path / "sim", 2, boot_seconds=1.0, operation_seconds=0.5) as sim:
        for key, value in sim.env().items():
            monkeypatch.setenv(key, value)
        config = isolated_dirs / "lifecycle-config.toml"
        sim.write_config(config, restart_policy="on-failure", check_interval_seconds=10,
                         hooks={"on_restart": str(hook)},
                         extra_toml={"daemon": {"ssh_timeout_seconds": 2.0},
                                     "healing": {"grace_period_seconds": 5},
                                     "vms": {vm: {"ssh_failure_threshold": 1}
                                             for vm in sim.vm_names}})
        with running_daemon(config) as daemon:
            wait_for(lambda: daemon.get_status().healthy == 2, 30, "2 healthy VMs")
            sim.set_ssh_mode("vm-002", SshMode.HUNG)
            wait_for(lambda: hook_log.exists() and "on_restart vm-002" in hook_log.read_text(),
                     45, "on_restart of vm-002")
            wait_for(lambda: daemon.get_status().healthy == 2, 30, "vm-002 healthy again")
    line = next(ln for ln in hook_log.read_text().splitlines() if ln.startswith("on_restart"))
    serial = Path(line.split("serial=", 1)[1])
    assert serial.name == "serial.log" and serial.parent.parent.name == "vm-002"
    assert TRACE in serial.read_text()
    shown = CliRunner().invoke(cli, ["postmortem", "vm-002"])
    assert shown.exit_code == 0, shown.output
    assert "vm-002: post-mortem of " in shown.output and "before the restart" in shown.output
    assert TRACE in shown.output and f"--- serial log {serial}, last 40 lines ---" in shown.output
