"""The election and the shared ledger as logic: one step at a time, on a fake clock and a
faithful fake of the lease blob (Azurite runs the real thing in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from azlin_lifecycle.config import (
    AzureSettings,
    HookType,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from azlin_lifecycle.errors import SelfHealingError
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.leadership import LeaderOnlyHooks, Leadership, LeadershipView, Role
from azlin_lifecycle.ledger import SharedLedger
from azlin_lifecycle.models import RepairAction, RepairOutcome, VMState, VMTarget
from azlin_lifecycle.ports import CoordinationError, NotLeader
from azlin_lifecycle.rules import status_line
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeCompute, FakeLeaseStore, RecordingHooks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def blob(clock: Clock) -> FakeLeaseStore:
    return FakeLeaseStore(clock=clock)


def monitor(blob: FakeLeaseStore, clock: Clock, name: str, tmp_path: Any,
            changes: list[LeadershipView] | None = None) -> tuple[Leadership, SharedLedger]:
    ledger: SharedLedger
    leadership = Leadership(blob, seconds=15, identity=name,
                            on_elected=lambda lease_id: (ledger.take_over(lease_id), None)[1],
                            on_change=(changes.append if changes is not None else
                                       lambda view: None),
                            clock=clock, monotonic=clock)
    ledger = SharedLedger(blob, mirror=StateStore(tmp_path / f"{name}.db"), identity=name,
                          is_leader=leadership.is_leader, keep_seconds=86400, clock=clock)
    return leadership, ledger


def test_the_first_takes_the_lease_and_reads_the_ledger_before_it_leads(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    seen: list[bool] = []
    leadership = Leadership(blob, seconds=15, identity="A",
                            on_elected=lambda lease_id: seen.append(leadership.is_leader()),
                            clock=clock, monotonic=clock)
    assert leadership.step() == 5.0  # renew at a third of the lease
    assert seen == [False]  # not leader while it reads the ledger
    assert leadership.is_leader()
    view = leadership.view()
    assert view.role is Role.LEADER and view.leader == "A" and view.expires == 1015.0


def test_a_standby_names_the_leader_and_takes_over_only_after_expiry(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    a, _ = monitor(blob, clock, "A", tmp_path)
    b, _ = monitor(blob, clock, "B", tmp_path)
    a.step()
    assert b.step() == 3.0  # a standby polls every fifth of the lease
    view = b.view()
    assert not b.is_leader() and view.role is Role.STANDBY
    assert view.leader == "A" and view.leader_since == 1000.0
    assert view.reason.startswith("A leads since ")
    clock.now += 14.9  # A died after taking the lease: still A's
    b.step()
    assert not b.is_leader()
    clock.now += 0.2
    b.step()
    assert b.is_leader()
    assert not a.is_leader()  # A's own deadline passed too, even with no renewal attempt


def test_a_failed_renewal_stops_repairs_at_once(blob: FakeLeaseStore, clock: Clock,
                                                tmp_path: Any) -> None:
    changes: list[LeadershipView] = []
    a, ledger = monitor(blob, clock, "A", tmp_path, changes)
    a.step()
    clock.now += 5
    blob.fail = CoordinationError("storage X gave no answer")
    assert a.step() == 0.0  # try at once to take it back
    assert not a.is_leader()  # 10 s before the lease would have expired
    assert changes[-1].role is Role.STANDBY
    assert changes[-1].reason == "renewing the lease failed: storage X gave no answer"
    with pytest.raises(NotLeader):
        ledger.begin_repair("vm", RepairAction.RESTART, dry_run=False, grace_until=2000)
    a.step()
    assert a.view().reason.startswith("nobody can lead: storage X")
    blob.fail = None
    a.step()  # its lease is still its own: it leads again, after reading the ledger
    assert a.is_leader()


def test_a_ledger_that_cannot_be_read_keeps_the_monitor_a_standby(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    blob.content = b"{not json"
    a, _ = monitor(blob, clock, "A", tmp_path)
    a.step()
    assert not a.is_leader()
    assert "could not read the shared ledger" in a.view().reason
    assert "is not JSON" in a.view().reason
    assert blob.content == b"{not json" and blob.writes == 0  # left as it was


def test_take_over_interrupts_the_old_leaders_repair_and_its_grace_stands(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    a, a_ledger = monitor(blob, clock, "A", tmp_path)
    b, b_ledger = monitor(blob, clock, "B", tmp_path)
    a.step()
    rid = a_ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False, grace_until=1900)
    assert a_ledger.repairs("vm-1")[0].outcome is RepairOutcome.IN_FLIGHT
    clock.now += 16  # A was killed mid-restart
    b.step()
    assert b.is_leader()
    [rec] = b_ledger.repairs("vm-1")
    assert rec.outcome is RepairOutcome.INTERRUPTED and "stopped leading" in (rec.error or "")
    assert b_ledger.grace_until("vm-1") == 1900
    doc = json.loads(blob.content)
    assert blob.metadata["holder"] == "B" and doc["repairs"][0]["monitor"] == "A"
    with pytest.raises(NotLeader):  # A, if it were still running, can no longer write
        a_ledger.end_repair(rid, success=True, error=None, grace_until=2000)
    assert b_ledger.repairs("vm-1")[0].outcome is RepairOutcome.INTERRUPTED


def test_a_write_whose_etag_is_stale_never_wins_and_the_next_one_reads_again(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    a, ledger = monitor(blob, clock, "A", tmp_path)
    a.step()
    blob.etag_no += 1  # someone wrote behind this monitor's back
    with pytest.raises(NotLeader, match="ETag condition failed"):
        ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False, grace_until=1500)
    assert ledger.repairs("vm-1") == []
    ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False, grace_until=1500)
    assert [r.vm for r in ledger.repairs()] == ["vm-1"]


def test_records_older_than_the_rules_look_are_pruned(blob: FakeLeaseStore, clock: Clock,
                                                       tmp_path: Any) -> None:
    a, ledger = monitor(blob, clock, "A", tmp_path)
    a.step()
    rid = ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False, grace_until=1100)
    ledger.end_repair(rid, success=True, error=None, grace_until=1100)
    clock.now += 86401  # keep_seconds is a day
    a.step()  # renewed (nobody took the lease meanwhile)
    assert a.is_leader()
    ledger.begin_repair("vm-2", RepairAction.RESTART, dry_run=True, grace_until=0)
    assert [r.vm for r in ledger.repairs()] == ["vm-2"]
    assert json.loads(blob.content)["grace"] == {}


def test_hooks_run_only_while_leading(blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    a, _ = monitor(blob, clock, "A", tmp_path)
    inner = RecordingHooks()
    hooks = LeaderOnlyHooks(inner, a.is_leader)
    hooks.execute_hook_async(HookType.ON_FAILURE, "vm-1", {})
    a.step()
    hooks.execute_hook_async(HookType.ON_HEALTHY, "vm-1", {})
    assert [h for h, _, _ in inner.fired] == [HookType.ON_HEALTHY]


def test_status_line_starts_with_the_role() -> None:
    base: dict[str, Any] = {"breaker_open": False, "dry_run": False, "in_flight": (),
                            "config_error": None}
    assert status_line(["vm"], {}, **base).startswith("1 VMs")
    assert status_line(["vm"], {}, role="leader", **base).startswith("leader: 1 VMs")
    text = status_line(["vm"], {}, role="standby", standby_reason="B leads", **base)
    assert text.startswith("standby: 1 VMs") and text.endswith("; not repairing: B leads")
    assert "healing active" not in text


# --------------------------------------------------------------------------- SelfHealer
def ha_healer(tmp_path: Any, compute: FakeCompute, ledger: SharedLedger,
              hooks: RecordingHooks) -> SelfHealer:
    cfg = LifecycleConfig(azure=AzureSettings(subscription_id="s", resource_group="rg"),
                          vms={"vm1": MonitoringConfig(restart_policy=RestartPolicy.ON_FAILURE)})
    return SelfHealer(cfg, compute=compute, store=StateStore(tmp_path / "healer.db"),
                      hooks=hooks, ledger=ledger)


def test_a_standby_never_asks_azure(blob: FakeLeaseStore, clock: Clock, tmp_path: Any) -> None:
    _, ledger = monitor(blob, clock, "A", tmp_path)
    b, _ = monitor(blob, clock, "B", tmp_path)
    b.step()  # B leads; A never did
    compute, hooks = FakeCompute({"vm1": VMState.RUNNING}), RecordingHooks()
    with pytest.raises(SelfHealingError, match=r"vm1: not repairing: .*does not hold the lease"):
        ha_healer(tmp_path, compute, ledger, hooks).restart_vm("vm1")
    assert compute.calls == [] and hooks.fired == []


class LeaseTakenDuringRestart(FakeCompute):
    """Azure restarts the VM while another monitor takes the lease (this one was cut off)."""

    def __init__(self, blob: FakeLeaseStore) -> None:
        super().__init__({"vm1": VMState.RUNNING})
        self.blob = blob

    def restart(self, target: VMTarget, timeout: float,
                on_accepted: Callable[[], None] | None = None) -> None:
        super().restart(target, timeout, on_accepted)
        self.blob.holder_id = "another monitor's lease"


def test_a_repair_that_ends_after_the_lease_is_lost_fires_no_hook(
        blob: FakeLeaseStore, clock: Clock, tmp_path: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    a, ledger = monitor(blob, clock, "A", tmp_path)
    a.step()
    compute, hooks = LeaseTakenDuringRestart(blob), RecordingHooks()
    result = ha_healer(tmp_path, compute, ledger, hooks).restart_vm("vm1")
    assert result.success and compute.calls == [("restart", "vm1")]
    assert hooks.of("on_restart") == []  # the new leader announces it, as interrupted
    assert "after this monitor stopped leading" in caplog.text
    assert json.loads(blob.content)["repairs"][0]["outcome"] == "in_flight"  # not ours to end
