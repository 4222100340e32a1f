"""Asking Azure before a repair: Resource Health's answer classified, the gates (pure), and
the healer applying them with fakes — each hold in the journal, on_failure's REASON and the
state `status` reads, with what ends it; no budget spent; one read per decision."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.azure.resource_health import platform_health_from_json
from azlin_lifecycle.config import (
    AzureSettings,
    HealingSettings,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.models import (
    HealthFailure,
    HoldKind,
    MaintenanceWindow,
    RepairAction,
    VMState,
)
from azlin_lifecycle.policy import Decision
from azlin_lifecycle.signals import Cause, PlatformHealth, maintenance_gate, platform_gate
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeCompute, FakeSignals, RecordingHooks


def at(hh_mm: str) -> float:
    hour, minute = (int(x) for x in hh_mm.split(":"))
    return dt.datetime(2026, 12, 5, hour, minute, tzinfo=dt.UTC).timestamp()


NOW = at("09:30")
HOST_CRASHED = PlatformHealth("Unavailable", "Platform Initiated", "Unplanned", "Unplanned",
                              "VirtualMachineHostCrashed", since=at("09:14"))
USER_STOPPED = PlatformHealth("Unavailable", "Customer Initiated", None, "UserInitiated",
                              "VirtualMachineDeallocationInitiated", since=at("09:14"))
DEGRADED = PlatformHealth("Degraded", "Platform Initiated", "Unplanned", None,
                          "VirtualMachinePossiblyDegradedDueToHardwareFailure", since=at("09:00"))
VM = MonitoringConfig(restart_policy=RestartPolicy.ALWAYS)
HUNG = HealthFailure("vm1", 3, "SSH timed out (hung)")
STOPPED = HealthFailure("vm1", 0, "VM is deallocated", state=VMState.DEALLOCATED)
RESTART = Decision(RepairAction.RESTART, "SSH timed out (hung); restart policy always")
START = Decision(RepairAction.START, "VM is deallocated; restart policy always")


# ------------------------------------------------------------------ what an answer means
@pytest.mark.parametrize(("props", "cause"), [
    ({"availabilityState": "Available"}, Cause.NONE),
    ({"availabilityState": "Unknown"}, Cause.UNKNOWN),
    ({}, Cause.UNKNOWN),
    # The spec's own example: documented fields, no annotation's name.
    ({"availabilityState": "Unavailable", "reasonType": "Unplanned",
      "context": "Platform Initiated", "category": "Unplanned"}, Cause.PLATFORM),
    ({"availabilityState": "Unavailable", "annotationName": "VirtualMachineStorageOffline"},
     Cause.PLATFORM),
    ({"availabilityState": "Unavailable", "context": "Platform Initiated",
      "category": "Planned"}, Cause.PLANNED),
    ({"availabilityState": "Degraded",
      "annotationName": "VirtualMachinePlannedFreezeStarted"}, Cause.PLANNED),
    ({"availabilityState": "Unavailable", "context": "Customer Initiated",
      "reasonType": "UserInitiated"}, Cause.CUSTOMER),
    ({"availabilityState": "Degraded", "context": "Platform Initiated"}, Cause.DEGRADED),
    ({"availabilityState": "Available", "healthEventId": "AccelnetUnhealthy"}, Cause.NONE),
    ({"availabilityState": "Unavailable", "context": "VM Initiated",
      "annotationName": "VirtualMachineCrashed"}, Cause.NONE),
])
def test_an_answer_is_classified(props: dict[str, str], cause: Cause) -> None:
    assert platform_health_from_json({"properties": props}).cause is cause


def test_the_json_reader_takes_azures_times_and_names() -> None:
    health = platform_health_from_json({"properties": {
        "availabilityState": "Unavailable", "context": "Platform Initiated",
        "category": "Unplanned", "healthEventId": "VirtualMachineHostCrashed",
        "occuredTime": "2026-12-05T09:14:00.1234567Z", "resolutionETA": "2026-12-05T09:40:00Z",
        "recentlyResolved": {"resolvedTime": "2026-12-04T10:00:00Z"}}})
    assert health.annotation == "VirtualMachineHostCrashed"
    assert health.since == pytest.approx(at("09:14"), abs=1)
    assert health.resolution_eta == at("09:40")
    assert health.words() == ("Resource Health: Unavailable (VirtualMachineHostCrashed, "
                              "Platform Initiated, Unplanned) since 09:14:00 UTC")


# ------------------------------------------------------------------ the gates, pure
def gate(decision: Decision, health: PlatformHealth | None, *, failure: HealthFailure = HUNG,
         healing: HealingSettings | None = None, last_seen: float | None = None,
         now: float = NOW, error: str | None = None) -> tuple[Decision, bool]:
    return platform_gate(VM, healing or HealingSettings(), failure, decision, health, error,
                         now, last_seen)


def test_azure_repairing_the_host_holds_the_repair_and_says_until_when() -> None:
    held, repairing = gate(RESTART, HOST_CRASHED)
    assert repairing and held.action is None and held.held
    assert held.hold_kind is HoldKind.PLATFORM
    assert ("held back: Azure is repairing the host (VirtualMachineHostCrashed) since "
            "09:14:00 UTC; no budget spent; healing resumes 5 min after Azure reports the VM "
            "available again") in held.reason
    assert held.evidence is not None and "VirtualMachineHostCrashed" in held.evidence
    # start and redeploy are held alike; planned maintenance too, as "maintenance".
    assert gate(START, HOST_CRASHED, failure=STOPPED)[0].hold_kind is HoldKind.PLATFORM
    planned = PlatformHealth("Unavailable", "Platform Initiated", "Planned",
                             annotation="VirtualMachineRebootInitiatedForPlannedMaintenance")
    maintained, seen = gate(RESTART, planned)
    assert seen and maintained.hold_kind is HoldKind.MAINTENANCE
    assert "Azure's planned maintenance (VirtualMachineRebootInitiatedForPlannedMaintenance)" \
        in maintained.reason


def test_after_azures_repair_the_vm_gets_the_margin_then_the_repair_goes_ahead() -> None:
    back = PlatformHealth("Available", since=at("09:28"))
    held, repairing = gate(RESTART, back, last_seen=at("09:25"))
    assert not repairing and held.hold_kind is HoldKind.PLATFORM
    assert "the VM is given until 09:33:00 UTC to come back" in held.reason  # 09:28 + 5 min
    go, _ = gate(RESTART, back, last_seen=at("09:25"), now=at("09:34"))
    assert go.action is RepairAction.RESTART
    # Azure's own recentlyResolved counts as well (a daemon that never saw the outage).
    recent = PlatformHealth("Available", resolved_at=at("09:29"))
    assert gate(RESTART, recent)[0].hold_kind is HoldKind.PLATFORM
    assert gate(RESTART, PlatformHealth("Available"))[0].action is RepairAction.RESTART


def test_a_vm_stopped_by_a_user_is_not_started_back_unless_allowed() -> None:
    held, _ = gate(START, USER_STOPPED, failure=STOPPED)
    assert held.hold_kind is HoldKind.USER_STOPPED and held.action is None
    assert "held back: stopped by a user at 09:14:00 UTC" in held.reason
    assert "[healing] start_user_stopped = true" in held.reason
    allowed, _ = gate(START, USER_STOPPED, failure=STOPPED,
                      healing=HealingSettings(start_user_stopped=True))
    assert allowed.action is RepairAction.START
    # A stop that Azure did not attribute to a user: started as before.
    assert gate(START, PlatformHealth("Available"), failure=STOPPED)[0].action is \
        RepairAction.START


def test_degraded_hardware_redeploys_where_escalation_is_on() -> None:
    escalating = HealingSettings(escalate_after_failed_restarts=2)
    moved, _ = gate(RESTART, DEGRADED, healing=escalating)
    assert moved.action is RepairAction.REDEPLOY
    assert "Azure reports degraded hardware (VirtualMachinePossiblyDegradedDueToHardware" \
        "Failure): redeploying to another host instead of restarting" in moved.reason
    dry, _ = gate(Decision(RepairAction.RESTART, "dry run: would restart: x", dry_run=True),
                  DEGRADED, healing=escalating)
    assert dry.action is RepairAction.REDEPLOY and dry.reason.startswith(
        "dry run: would redeploy: ")
    kept, _ = gate(RESTART, DEGRADED)
    assert kept.action is RepairAction.RESTART
    assert kept.evidence is not None and "escalation is off" in kept.evidence


@pytest.mark.parametrize(("health", "error", "words"), [
    (PlatformHealth("Unknown"), None, "Resource Health: Unknown (Azure has had no signal"),
    (None, "Resource Health of vm1: HTTP 500", "Resource Health unreadable (Resource Health "
     "of vm1: HTTP 500): no information, decided without it"),
])
def test_unknown_or_unreadable_decides_as_before_and_the_evidence_says_so(
        health: PlatformHealth | None, error: str | None, words: str) -> None:
    decided, repairing = gate(RESTART, health, error=error)
    assert not repairing and decided.action is RepairAction.RESTART
    assert decided.evidence is not None and words in decided.evidence


def test_an_open_maintenance_window_holds_a_guest_repair() -> None:
    window = MaintenanceWindow(start=at("09:00"), end=at("10:00"), customer_allowed=True,
                               last_result="None")
    held = maintenance_gate(VM, HUNG, RESTART, window, NOW)
    assert held.hold_kind is HoldKind.MAINTENANCE
    assert "Azure's planned maintenance window is open until 10:00:00 UTC" in held.reason
    assert maintenance_gate(VM, HUNG, RESTART, window, at("10:00")).action is RepairAction.RESTART
    done = MaintenanceWindow(start=at("09:00"), end=at("10:00"),
                             last_result="MaintenanceCompleted")
    assert maintenance_gate(VM, HUNG, RESTART, done, NOW).action is RepairAction.RESTART
    assert maintenance_gate(VM, STOPPED, START, window, NOW).action is RepairAction.START


# ------------------------------------------------------------------ the healer
def healer(tmp_path: Path, signals: FakeSignals, *, state: VMState = VMState.RUNNING,
           agent: str = "Not Ready", healing: HealingSettings | None = None,
           ) -> tuple[SelfHealer, FakeCompute, RecordingHooks]:
    compute, hooks = FakeCompute({"vm1": state}, agents={"vm1": agent}), RecordingHooks()
    config = LifecycleConfig(azure=AzureSettings(subscription_id="s", resource_group="rg"),
                             healing=healing or HealingSettings(), vms={"vm1": VM})
    return SelfHealer(config, compute=compute, store=StateStore(tmp_path / "state.db"),
                      hooks=hooks, signals=signals, clock=lambda: NOW), compute, hooks


def test_a_platform_hold_is_journaled_told_and_stored_and_spends_no_budget(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    signals = FakeSignals(health={"vm1": HOST_CRASHED})
    h, compute, hooks = healer(tmp_path, signals)
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        assert h.handle_failure("vm1", HUNG) is None
    assert signals.calls == [("platform_health", "vm1")]  # one read; no instance view
    assert compute.calls == [] and h.store.repairs() == []
    (held,) = [r for r in caplog.records if getattr(r, "EVENT", "") == "healing_held"]
    assert held.__dict__["HOLD"] == "azure_repairing"
    assert "Azure is repairing the host (VirtualMachineHostCrashed)" in held.getMessage()
    ((_, context),) = hooks.of("on_failure")
    assert context["healing"] == "azure_repairing"
    assert "healing resumes 5 min after Azure reports the VM available again" in str(
        context["reason"])
    assert h.store.healing_state("vm1").held_reason == context["reason"]
    # Azure reports it available again: the margin holds, then the restart goes ahead.
    signals.health["vm1"] = PlatformHealth("Available", since=NOW)
    assert h.handle_failure("vm1", HUNG) is None
    assert "is given until 09:35:00 UTC to come back" in str(hooks.of("on_failure")[-1][1][
        "reason"])
    h._clock = lambda: NOW + 301
    result = h.handle_failure("vm1", HUNG)
    assert result is not None and result.action is RepairAction.RESTART
    assert signals.calls.count(("platform_health", "vm1")) == 3  # one per decision


def test_a_user_stopped_vm_hold_reaches_on_failure_although_it_is_stopped(
        tmp_path: Path) -> None:
    h, compute, hooks = healer(tmp_path, FakeSignals(health={"vm1": USER_STOPPED}),
                               state=VMState.DEALLOCATED)
    assert h.handle_failure("vm1", STOPPED) is None
    assert compute.calls == []
    ((_, context),) = hooks.of("on_failure")
    assert context["healing"] == "user_stopped"
    assert "stopped by a user at 09:14:00 UTC" in str(context["reason"])


def test_the_evidence_combines_resource_health_and_the_guest(tmp_path: Path) -> None:
    h, compute, _ = healer(tmp_path, FakeSignals())
    decision = h.decide("vm1", HUNG)
    assert decision.action is RepairAction.RESTART
    assert decision.evidence == "Resource Health: Available; VM agent: Not Ready"
    assert compute.calls == [("instance_view", "vm1")]


def test_a_guest_repair_catches_a_post_mortem_first_and_hooks_get_it(tmp_path: Path) -> None:
    signals = FakeSignals()
    h, compute, hooks = healer(tmp_path, signals)
    result = h.handle_failure("vm1", HUNG)
    assert result is not None and result.success
    assert signals.calls == [("platform_health", "vm1"), ("capture", "vm1")]
    assert compute.calls[-1] == ("restart", "vm1")
    ((_, context),) = hooks.of("on_restart")
    log = Path(str(context["serial_log"]))
    assert log.parent.parent == tmp_path / "postmortem" / "vm1"
    assert log.parent.name == "20261205T093000Z" and (log.parent / "capture.json").exists()
    assert context["serial_log_tail"] == signals.serial
    # Turned off: no capture; a start never captures.
    off, _, hooks_off = healer(tmp_path / "off", signals2 := FakeSignals(),
                               healing=HealingSettings(capture_serial_log=False))
    off.handle_failure("vm1", HUNG)
    assert ("capture", "vm1") not in signals2.calls
    assert hooks_off.of("on_restart")[0][1]["serial_log"] is None
