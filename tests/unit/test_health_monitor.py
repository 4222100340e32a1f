from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from azlin_lifecycle.config import AzureSettings, LifecycleConfig, MonitoringConfig
from azlin_lifecycle.health import HealthMonitor
from azlin_lifecycle.models import RepairAction, SshProbeResult, VMState, VMTarget
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeAddresses, FakeCompute, FakeSsh

VMS = ("vm1", "vm2", "vm3")


def config() -> LifecycleConfig:
    return LifecycleConfig(azure=AzureSettings(subscription_id="sub", resource_group="rg"),
                           vms={v: MonitoringConfig() for v in VMS})


def monitor(tmp_path: Path, compute: FakeCompute, ssh: FakeSsh | object,
            store: StateStore | None = None) -> HealthMonitor:
    return HealthMonitor(config=config(), compute=compute, ssh=ssh,  # type: ignore[arg-type]
                         addresses=FakeAddresses(), store=store or StateStore(tmp_path / "s.db"))


def test_running_and_reachable_is_healthy_with_metrics(tmp_path: Path) -> None:
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), FakeSsh())
    s = m.check_vm_health("vm1")
    assert s.healthy and s.ssh_reachable and s.ssh_failures == 0 and s.reason is None
    assert s.metrics is not None and s.metrics.cpu_percent == 5.0
    assert s.metrics.memory_percent is None  # not collected: None, never 0
    assert s.timestamp.tzinfo is not None


def test_failures_count_and_reset(tmp_path: Path) -> None:
    ssh = FakeSsh(down={"vm1": "timed out (hung)"})
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), ssh)
    counts = [m.check_vm_health("vm1").ssh_failures for _ in range(3)]
    assert counts == [1, 2, 3]
    assert m.check_vm_health("vm1").reason == "SSH timed out (hung)"
    ssh.down.clear()
    assert m.check_vm_health("vm1").ssh_failures == 0


@pytest.mark.parametrize(("reason", "hint"), [
    ("authentication failed", "refused key ~/.ssh/azlin_key for user azureuser"),
    ("host key changed", "ssh-keygen -R"),
    ("name resolution failed", "does not resolve"),
    ("private key missing or unreadable: /k: No such file", "readable private key"),
    ("monitor's network unreachable (Network is unreachable)", "monitor's own network"),
])
def test_faults_a_restart_cannot_fix_never_count_and_say_what_to_fix(
        tmp_path: Path, reason: str, hint: str) -> None:
    ssh = FakeSsh(down={"vm1": "timed out (hung)"})
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), ssh)
    assert m.check_vm_health("vm1").ssh_failures == 1  # a guest-side fault counts
    ssh.down["vm1"] = reason
    for _ in range(5):
        s = m.check_vm_health("vm1")
        assert s.ssh_failures == 0 and not s.healthy and s.needs_you
        assert s.fault is not None and not s.fault.guest_side
    assert s.reason is not None and hint in s.reason
    assert s.reason.endswith("a restart cannot fix this (not counted)")
    assert m.get_health_history("vm1", 1)[0].fault is s.fault  # persisted


@pytest.mark.parametrize("reason", ["connection refused", "timed out", "timed out (hung)",
                                    "connection lost", "command timed out"])
def test_guest_side_faults_count(tmp_path: Path, reason: str) -> None:
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), FakeSsh(down={"vm1": reason}))
    statuses = [m.check_vm_health("vm1") for _ in range(2)]
    assert [s.ssh_failures for s in statuses] == [1, 2]
    assert not statuses[-1].needs_you


def test_stopped_vm_is_not_probed_and_not_counted(tmp_path: Path) -> None:
    ssh = FakeSsh(down={"vm1": "connection refused"})
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.DEALLOCATED}), ssh)
    s = m.check_vm_health("vm1")
    assert not s.healthy and not s.ssh_checked and s.ssh_failures == 0
    assert s.reason == "VM is deallocated in Azure" and ssh.probes == []


def test_not_found(tmp_path: Path) -> None:
    m = monitor(tmp_path, FakeCompute({}), FakeSsh())
    s = m.check_vm_health("vm1")
    assert s.state is VMState.NOT_FOUND
    assert s.reason == "not found in Azure: VM 'vm1' is not in resource group 'rg'"


def test_grace_period_failures_do_not_count(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.begin_repair("vm1", RepairAction.RESTART, dry_run=False, grace_until=time.time() + 60)
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}),
                FakeSsh(down={"vm1": "connection refused"}), store)
    s = m.check_vm_health("vm1")
    assert s.ssh_failures == 0 and "grace period after a repair: not counted" in (s.reason or "")


def test_check_many_uses_one_list_call_per_group(tmp_path: Path) -> None:
    compute = FakeCompute({v: VMState.RUNNING for v in VMS})
    m = monitor(tmp_path, compute, FakeSsh(down={"vm2": "connection refused"}))
    out = m.check_many(VMS)
    assert compute.list_calls == 1 and not [c for c in compute.calls if c[0] == "instance_view"]
    assert [out[v].healthy for v in VMS] == [True, False, True]


def test_history_survives_a_new_monitor_and_seeds_the_counter(tmp_path: Path) -> None:
    compute = FakeCompute({"vm1": VMState.RUNNING})
    ssh = FakeSsh(down={"vm1": "connection refused"})
    first = monitor(tmp_path, compute, ssh)
    first.check_vm_health("vm1")
    first.check_vm_health("vm1")
    second = monitor(tmp_path, compute, ssh, StateStore(tmp_path / "s.db"))
    history = second.get_health_history("vm1")
    assert [h.ssh_failures for h in history] == [1, 2]
    assert second.check_vm_health("vm1").ssh_failures == 3
    second.clear_health_history("vm1")
    assert second.get_health_history("vm1") == []


def test_history_is_bounded(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db", history_size=10)
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), FakeSsh(), store)
    for _ in range(130):
        m.check_vm_health("vm1")
    assert len(m.get_health_history("vm1", limit=1000)) == 10
    rows = store._db.execute("SELECT COUNT(*) FROM checks").fetchone()[0]
    assert rows <= 10 + 100  # pruned in batches


class SlowFailingSsh(FakeSsh):
    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult:
        time.sleep(0.01)
        return SshProbeResult(False, "connection refused")


def test_concurrent_checks_of_one_vm_keep_the_counter_right(tmp_path: Path) -> None:
    m = monitor(tmp_path, FakeCompute({"vm1": VMState.RUNNING}), SlowFailingSsh())
    barrier = threading.Barrier(20)

    def check() -> int:
        barrier.wait()
        return m.check_vm_health("vm1").ssh_failures

    with ThreadPoolExecutor(20) as pool:
        counts = sorted(pool.map(lambda _: check(), range(20)))
    assert counts == list(range(1, 21))
    assert m.failure_count("vm1") == 20


def test_power_states_come_from_the_adapters_shared_listing_by_name_in_any_case(
        tmp_path: Path) -> None:
    compute = FakeCompute({"VM1": VMState.RUNNING, "vm2": VMState.STOPPED})
    m = monitor(tmp_path, compute, FakeSsh())
    powers = m.fetch_power_states([m.target(vm) for vm in VMS])
    assert powers["vm1"][0] is not None and powers["vm1"][0].state is VMState.RUNNING
    assert powers["vm2"][0] is not None and powers["vm2"][0].state is VMState.STOPPED
    assert powers["vm3"][0] is not None and powers["vm3"][0].state is VMState.NOT_FOUND
    assert compute.list_calls == 1  # one call for the group
    m.forget_power_states()
    assert compute.forgotten_listings == 1

