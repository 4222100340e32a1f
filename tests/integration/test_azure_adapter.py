"""ArmCompute with the real SDK, the real AzureCliCredential and HTTPS to the simulated fleet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.config import AzureSettings
from azlin_lifecycle.errors import HealthCheckError
from azlin_lifecycle.models import VMState, VMTarget
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.simulator import SimulatedFleet, SshMode


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path / "fleet", vm_count=3, boot_seconds=0.3,
                        operation_seconds=0.3) as f:
        monkeypatch.setenv("PATH", f"{f.az_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        yield f


def compute(fleet: SimulatedFleet, timeout: float = 10.0) -> ArmCompute:
    settings = AzureSettings(
        subscription_id=fleet.subscription_id,
        resource_group=fleet.resource_group,
        arm_endpoint=fleet.arm_endpoint,
        ca_bundle=str(fleet.ca_path),
    )
    return ArmCompute(settings, timeout=timeout, polling_interval=0.1)


def target(fleet: SimulatedFleet, name: str) -> VMTarget:
    return VMTarget(name, fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                    fleet.ssh_port(name), "azureuser", str(fleet.client_key))


@pytest.mark.parametrize("state", ["starting", "running", "stopping", "stopped",
                                   "deallocating", "deallocated"])
def test_each_power_state(fleet: SimulatedFleet, state: str) -> None:
    name = fleet.vm_names[0]
    fleet.set_power_state(name, state)
    arm = compute(fleet)
    info = arm.instance_view(target(fleet, name))
    assert info.state is VMState(state)
    assert info.provisioning_state == "succeeded"
    if state == "running":
        assert info.agent_status == "Ready"
    states = arm.power_states(fleet.subscription_id, fleet.resource_group)
    assert states[name].state is VMState(state)
    assert {n: s.state for n, s in states.items() if n != name} == {
        n: VMState.RUNNING for n in fleet.vm_names[1:]
    }


def test_unknown_vm_is_not_found_with_azures_message(fleet: SimulatedFleet) -> None:
    info = compute(fleet).instance_view(target(fleet, fleet.vm_names[0]).__class__(
        "no-such-vm", fleet.subscription_id, fleet.resource_group, "127.0.0.1"))
    assert info.state is VMState.NOT_FOUND
    assert info.message is not None
    assert "no-such-vm" in info.message and "not found" in info.message


def test_monitoring_reads_never_load_azure_mgmt_compute(fleet: SimulatedFleet) -> None:
    """Its models cost ~17 MB of the daemon's memory; only a repair needs them."""
    script = (
        "import sys\n"
        "from azlin_lifecycle.adapters.azure.compute import ArmCompute\n"
        "from azlin_lifecycle.config import AzureSettings\n"
        "from azlin_lifecycle.models import VMTarget\n"
        "sub, rg, endpoint, ca, vm = sys.argv[1:]\n"
        "arm = ArmCompute(AzureSettings(subscription_id=sub, resource_group=rg,\n"
        "                               arm_endpoint=endpoint, ca_bundle=ca))\n"
        "states = arm.power_states(sub, rg)\n"
        "one = arm.instance_view(VMTarget(vm, sub, rg, '127.0.0.1'))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('azure.mgmt.compute'))\n"
        "print(len(states), one.state.value, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, fleet.subscription_id, fleet.resource_group,
         fleet.arm_endpoint, str(fleet.ca_path), fleet.vm_names[0]],
        capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["3", "running", "[]"]


def test_one_client_per_subscription_is_reused(fleet: SimulatedFleet) -> None:
    arm = compute(fleet)
    t = target(fleet, fleet.vm_names[0])
    arm.instance_view(t)
    client = arm.client(fleet.subscription_id)
    arm.instance_view(t)
    assert arm.client(fleet.subscription_id) is client
    assert arm.client("11111111-0000-0000-0000-000000000000") is not client


def test_429_then_success_within_the_timeout(fleet: SimulatedFleet) -> None:
    arm = compute(fleet, timeout=10)
    t = target(fleet, fleet.vm_names[0])
    arm.instance_view(t)  # token fetched, connection open
    before = fleet.arm_requests
    fleet.set_arm_fault(status=429, count=1, retry_after=1.0)
    started = time.monotonic()
    info = arm.instance_view(t)
    elapsed = time.monotonic() - started
    assert info.state is VMState.RUNNING
    assert 1.0 <= elapsed < 10
    assert fleet.arm_requests - before == 2


def test_a_1200_second_retry_after_does_not_hang(fleet: SimulatedFleet) -> None:
    arm = compute(fleet, timeout=3)
    fleet.set_arm_fault(status=429, count=1, retry_after=1200)
    started = time.monotonic()
    with pytest.raises(AzureOperationError) as caught:
        arm.instance_view(target(fleet, fleet.vm_names[0]))
    assert time.monotonic() - started < 3 + 2
    assert "Retry-After 1200" in str(caught.value)
    assert caught.value.code is not None


def test_500_is_retried_with_backoff(fleet: SimulatedFleet) -> None:
    arm = compute(fleet, timeout=10)
    before = fleet.arm_requests
    fleet.set_arm_fault(status=500, count=2)
    info = arm.instance_view(target(fleet, fleet.vm_names[0]))
    assert info.state is VMState.RUNNING
    assert fleet.arm_requests - before == 3


def test_slow_arm_is_cut_at_the_timeout(fleet: SimulatedFleet) -> None:
    arm = compute(fleet, timeout=1.5)
    fleet.set_arm_latency(30)
    started = time.monotonic()
    with pytest.raises(AzureOperationError):
        arm.instance_view(target(fleet, fleet.vm_names[0]))
    assert time.monotonic() - started < 1.5 + 2
    fleet.set_arm_latency(0)


def test_restart_waits_for_the_operation(fleet: SimulatedFleet) -> None:
    name = fleet.vm_names[1]
    compute(fleet).restart(target(fleet, name), timeout=20)
    ops = [op for op in fleet.operations() if op["vm"] == name]
    assert [(op["action"], op["status"]) for op in ops] == [("restart", "Succeeded")]


def test_start_and_redeploy(fleet: SimulatedFleet) -> None:
    name = fleet.vm_names[2]
    fleet.set_power_state(name, "stopped")
    arm = compute(fleet)
    arm.start(target(fleet, name), timeout=20)
    assert arm.instance_view(target(fleet, name)).state is VMState.RUNNING
    arm.redeploy(target(fleet, name), timeout=20)
    ops = [(op["action"], op["status"]) for op in fleet.operations() if op["vm"] == name]
    assert ops == [("start", "Succeeded"), ("redeploy", "Succeeded")]


def test_failed_restart_carries_azures_code_and_message(fleet: SimulatedFleet) -> None:
    name = fleet.vm_names[0]
    fleet.fail_next_operation(name, "restart", code="AllocationFailed",
                              message="Allocation failed. Please try again later.")
    with pytest.raises(AzureOperationError) as caught:
        compute(fleet).restart(target(fleet, name), timeout=20)
    assert caught.value.code == "AllocationFailed"
    assert "Allocation failed" in str(caught.value)


def test_restart_that_never_finishes_times_out(fleet: SimulatedFleet) -> None:
    name = fleet.vm_names[0]
    fleet.hang_operations(name, "restart")
    started = time.monotonic()
    with pytest.raises(AzureOperationError) as caught:
        compute(fleet).restart(target(fleet, name), timeout=2)
    assert time.monotonic() - started < 2 + 1
    assert "did not finish within 2 s" in str(caught.value)
    assert caught.value.code == "OperationTimedOut"


def test_restart_of_a_missing_vm_is_an_operation_error(fleet: SimulatedFleet) -> None:
    ghost = VMTarget("ghost", fleet.subscription_id, fleet.resource_group, "127.0.0.1")
    with pytest.raises(AzureOperationError) as caught:
        compute(fleet).restart(ghost, timeout=5)
    assert caught.value.code == "ResourceNotFound"


def test_logged_out_is_a_health_check_error_saying_az_login(fleet: SimulatedFleet) -> None:
    fleet.set_logged_in(False)
    with pytest.raises(HealthCheckError, match="az login"):
        compute(fleet).instance_view(target(fleet, fleet.vm_names[0]))
    with pytest.raises(HealthCheckError, match="az login"):
        compute(fleet).power_states(fleet.subscription_id, fleet.resource_group)


def test_a_resource_group_without_vms_has_no_power_states(fleet: SimulatedFleet) -> None:
    """The subscription's listing has nothing in that group (health calls them NOT_FOUND)."""
    assert compute(fleet).power_states(fleet.subscription_id, "rg-missing") == {}


def test_power_states_of_120_vms_is_one_paged_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SimulatedFleet(tmp_path / "big", vm_count=120, page_size=50) as fleet:
        monkeypatch.setenv("PATH", f"{fleet.az_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        fleet.set_power_state("vm-007", "deallocated")
        before = fleet.arm_requests
        states = compute(fleet).power_states(fleet.subscription_id, fleet.resource_group)
        assert fleet.arm_requests - before == 3  # pages of 50, 50, 20
    assert len(states) == 120
    assert states["vm-007"].state is VMState.DEALLOCATED
    assert sum(s.state is VMState.RUNNING for s in states.values()) == 119


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (SshMode.REFUSED, "connection refused"),
        (SshMode.HUNG, "timed out (hung)"),
        (SshMode.AUTH_FAIL, "authentication failed"),
        (SshMode.HOST_KEY_CHANGED, "host key changed"),
        (SshMode.SLOW, "command timed out"),
    ],
)
def test_simulated_ssh_modes_give_the_right_reason(
    fleet: SimulatedFleet, mode: SshMode, reason: str
) -> None:
    name = fleet.vm_names[0]
    t = target(fleet, name)
    prober = ParamikoSshProber()
    try:
        up = prober.probe(t, timeout=5)  # records the host key on first contact
        assert up.reachable, up.reason
        assert up.metrics is not None and up.metrics.cpu_percent is not None
        prober.forget(t)
        fleet.set_ssh_mode(name, mode, slow_seconds=10)
        started = time.monotonic()
        result = prober.probe(t, timeout=1.5)
        assert time.monotonic() - started < 1.5 + 1
        assert (result.reachable, result.reason) == (False, reason)
        fleet.set_ssh_mode(name, SshMode.UP)
        if mode is not SshMode.HOST_KEY_CHANGED:
            assert prober.probe(t, timeout=5).reachable
    finally:
        prober.close()
