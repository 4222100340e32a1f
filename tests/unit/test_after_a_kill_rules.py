"""The pure rule that settles an interrupted repair, and the store's outbox of hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from azlin_lifecycle.config import HealingSettings, MonitoringConfig, RestartPolicy
from azlin_lifecycle.models import (
    Announced,
    AzureMark,
    HealthFailure,
    PowerInfo,
    RepairAction,
    RepairOutcome,
    RepairRecord,
    VMState,
)
from azlin_lifecycle.policy import decide, settle
from azlin_lifecycle.rules import FleetView
from azlin_lifecycle.state import StateStore

T0 = "2026-12-06T09:14:00.123456+00:00"
T1 = "2026-12-06T09:16:30.000001+00:00"
RUNNING_AT_T0 = AzureMark(VMState.RUNNING, "succeeded", T0)


def record(action: RepairAction = RepairAction.RESTART,
           before: AzureMark | None = RUNNING_AT_T0,
           outcome: RepairOutcome = RepairOutcome.INTERRUPTED) -> RepairRecord:
    return RepairRecord(id=7, vm="web-1", action=action, started=1000.0, ended=None,
                        outcome=outcome, error=None, before=before)


@pytest.mark.parametrize(("view", "before", "sent", "words"), [
    (PowerInfo(VMState.RUNNING, "succeeded", provisioning_time=T0), None, None,
     "no view of Azure was kept"),
    (None, AzureMark(VMState.RUNNING, "succeeded", T0), None, "could not be read (boom)"),
    (PowerInfo(VMState.RUNNING, "succeeded", provisioning_time=T0),
     AzureMark(VMState.RUNNING, "succeeded", T0), False, "never reached Azure"),
    (PowerInfo(VMState.RUNNING, "updating", provisioning_time=T0),
     AzureMark(VMState.RUNNING, "succeeded", T0), True, "under way"),
    (PowerInfo(VMState.STARTING, "succeeded", provisioning_time=T0),
     AzureMark(VMState.RUNNING, "succeeded", T0), True, "under way"),
    (PowerInfo(VMState.RUNNING, "succeeded", provisioning_time=T1),
     AzureMark(VMState.RUNNING, "succeeded", T0), True, "changed since the intent"),
    (PowerInfo(VMState.RUNNING, "failed/OSProvisioningTimedOut", provisioning_time=T1),
     AzureMark(VMState.RUNNING, "succeeded", T0), True, "changed since the intent"),
    # Regression (the chaos soak, issue 21): after a failed restart Azure's provisioning
    # state is failed, with no time; a restart sent then, and done by the time it is
    # settled, leaves the VM running as before — it was taken for "never sent", spent no
    # budget, and the VM got a 4th restart in the hour.
    (PowerInfo(VMState.RUNNING, "succeeded", provisioning_time=T1),
     AzureMark(VMState.RUNNING, "failed/InternalExecutionError", None), True,
     "changed since the intent"),
    (PowerInfo(VMState.RUNNING, "failed/InternalExecutionError", provisioning_time=None),
     AzureMark(VMState.RUNNING, "failed/InternalExecutionError", None), None,
     "no provisioning time to compare"),
])
def test_settle_compares_azure_now_with_the_view_kept_with_the_intent(
        view: PowerInfo | None, before: AzureMark | None, sent: bool | None,
        words: str) -> None:
    settlement = settle(record(before=before), view, "boom")
    assert settlement.sent is sent
    assert words in settlement.words


def test_a_start_kept_only_the_power_state_and_is_settled_by_it() -> None:
    start = record(RepairAction.START, AzureMark(VMState.DEALLOCATED))
    assert settle(start, PowerInfo(VMState.DEALLOCATED, "succeeded",
                                   provisioning_time=T1), None).sent is False
    assert settle(start, PowerInfo(VMState.RUNNING, "succeeded",
                                   provisioning_time=T1), None).sent is True


def test_a_mark_survives_json_and_a_garbled_one_is_no_mark() -> None:
    mark = AzureMark(VMState.RUNNING, "succeeded", T0)
    assert AzureMark.from_json(mark.to_json()) == mark
    assert AzureMark.from_json('{"state": "sideways"}') is None
    assert AzureMark.from_json("not json") is None
    assert Announced.from_json(Announced(VMState.STOPPED, False).to_json()) == Announced(
        VMState.STOPPED, False)


def test_a_repair_that_was_never_sent_spends_no_budget() -> None:
    vm = MonitoringConfig(restart_policy=RestartPolicy.ON_FAILURE, ssh_failure_threshold=1)
    healing = HealingSettings(restart_budget=1)
    failure = HealthFailure(vm_name="web-1", state=VMState.RUNNING, reason="SSH timed out",
                            failure_count=1)
    not_sent = record(outcome=RepairOutcome.NOT_SENT)
    interrupted = record()
    args = {"grace_until": 0.0, "now": 1100.0, "fleet": FleetView()}
    assert decide(vm, healing, failure, [not_sent], **args).action is RepairAction.RESTART
    assert decide(vm, healing, failure, [interrupted], **args).action is None


def test_settling_in_the_store_lifts_the_grace_only_when_not_sent(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    sent = store.begin_repair("a", RepairAction.RESTART, dry_run=False, grace_until=5000.0,
                              now=1000.0, before=AzureMark(VMState.RUNNING))
    never = store.begin_repair("b", RepairAction.RESTART, dry_run=False, grace_until=5000.0,
                               now=1000.0, before=AzureMark(VMState.RUNNING))
    assert {r.id for r in store.interrupt_unfinished()} == {sent, never}
    store.settle_interrupted(sent, sent=True, note="interrupted: under way", now=1010.0)
    store.settle_interrupted(never, sent=False, note="interrupted: never reached", now=1010.0)
    by_id = {r.id: r for r in store.repairs()}
    assert by_id[sent].outcome is RepairOutcome.INTERRUPTED
    assert by_id[sent].before == AzureMark(VMState.RUNNING)
    assert by_id[never].outcome is RepairOutcome.NOT_SENT and by_id[never].ended == 1010.0
    assert store.grace_until("a") == 5000.0 and store.grace_until("b") == 0.0
    store.settle_interrupted(never, sent=True, note="again", now=1020.0)  # settled once
    assert {r.id: r for r in store.repairs()}[never].outcome is RepairOutcome.NOT_SENT


def test_what_was_told_and_the_hooks_owed_are_one_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    ids = store.announce({"a": Announced(VMState.RUNNING, True)},
                         [("a", "on_start", {"state": "running"}), ("a", "on_healthy", {"n": 1})])
    reopened = StateStore(tmp_path / "state.db")
    assert reopened.announced() == {"a": Announced(VMState.RUNNING, True)}
    assert [(h.id, h.vm, h.hook, h.context) for h in reopened.owed_hooks()] == [
        (ids[0], "a", "on_start", {"state": "running"}), (ids[1], "a", "on_healthy", {"n": 1})]
    reopened.hook_ran(ids[0])
    assert [h.hook for h in store.owed_hooks()] == ["on_healthy"]
