"""Listing as real ARM answers it, and repairs that end when the VM's operation ends.

Real azure-identity / azure-core / azure-mgmt-compute over HTTPS against the stand-in Azure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.config import AzureSettings
from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import VMState, VMTarget
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import monitor_for
from tests.support.simulated import fleet_in_env

OPERATION_SECONDS = 2.0


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "fleet", vm_count=3, boot_seconds=0.3,
                        operation_seconds=OPERATION_SECONDS) as f:
        yield f


def arm(fleet: SimulatedFleet, timeout: float = 10.0, **kwargs: Any) -> ArmCompute:
    return ArmCompute(AzureSettings(subscription_id=fleet.subscription_id,
                                    resource_group=fleet.resource_group,
                                    arm_endpoint=fleet.arm_endpoint,
                                    ca_bundle=str(fleet.ca_path)), timeout=timeout, **kwargs)


def target(fleet: SimulatedFleet, name: str) -> VMTarget:
    return VMTarget(name, fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                    fleet.ssh_port(name), "azureuser", str(fleet.client_key))


def sdk(fleet: SimulatedFleet) -> Any:
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        AzureCliCredential(process_timeout=20), fleet.subscription_id,
        base_url=fleet.arm_endpoint, credential_scopes=["https://management.azure.com/.default"],
        connection_verify=str(fleet.ca_path), polling_interval=0, retry_total=0)


# ---------------------------------------------------------------------------- listing
def test_the_stand_in_refuses_expand_without_filter_as_arm_does(fleet: SimulatedFleet) -> None:
    from azure.core.exceptions import HttpResponseError

    vms = sdk(fleet).virtual_machines
    for listing in (lambda: list(vms.list(fleet.resource_group, expand="instanceView")),
                    lambda: list(vms.list_all(expand="instanceView"))):
        with pytest.raises(HttpResponseError) as caught:
            listing()
        assert caught.value.status_code == 400
        assert caught.value.error is not None and caught.value.error.code == "InvalidParameter"
        assert "$filter" in str(caught.value)
    scale_set = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{fleet.resource_group}"
                 "/providers/Microsoft.Compute/virtualMachineScaleSets/none")
    assert list(vms.list(fleet.resource_group, expand="instanceView",
                         filter=f"'virtualMachineScaleSet/id' eq '{scale_set}'")) == []
    assert fleet.arm_answers[400] == 2


def test_status_only_items_carry_power_states_but_no_agent(fleet: SimulatedFleet) -> None:
    fleet.set_power_state("vm-002", "deallocated")
    listed = {vm.name: vm for vm in sdk(fleet).virtual_machines.list_all(status_only="true")}
    codes = [s.code for s in listed["vm-002"].instance_view.statuses]
    assert codes == ["ProvisioningState/succeeded", "PowerState/deallocated"]
    assert all(vm.instance_view.vm_agent is None for vm in listed.values())


def test_one_status_only_listing_serves_every_resource_group(fleet: SimulatedFleet) -> None:
    compute = arm(fleet)
    fleet.set_power_state("vm-003", "stopped")
    before = fleet.arm_requests
    ours = compute.power_states(fleet.subscription_id, fleet.resource_group)
    other = compute.power_states(fleet.subscription_id, "rg-other")
    upper = compute.power_states(fleet.subscription_id, fleet.resource_group.upper())
    assert fleet.arm_requests - before == 1
    assert {n: s.state for n, s in ours.items()} == {
        "vm-001": VMState.RUNNING, "vm-002": VMState.RUNNING, "vm-003": VMState.STOPPED}
    assert other == {} and upper == ours
    assert set(fleet.arm_answers) == {200}


def test_names_match_case_insensitively_and_a_missing_vm_lists_once_more(
        fleet: SimulatedFleet) -> None:
    fleet.add_vm("vm-0")
    compute = arm(fleet)
    before = fleet.arm_requests
    states = compute.power_states(fleet.subscription_id, fleet.resource_group,
                                  expected=["VM-0", "ghost"])
    assert states["VM-0".lower()].state is VMState.RUNNING
    compute.power_states(fleet.subscription_id, fleet.resource_group, expected=["ghost"])
    assert fleet.arm_requests - before == 1  # ghost was missing from a fresh listing
    fleet.add_vm("vm-new")
    states = compute.power_states(fleet.subscription_id, fleet.resource_group,
                                  expected=["VM-NEW"])
    assert fleet.arm_requests - before == 2 and "vm-new" in states
    compute.forget_power_states()
    compute.power_states(fleet.subscription_id, fleet.resource_group)
    assert fleet.arm_requests - before == 3


def test_monitoring_answers_no_400(fleet: SimulatedFleet, tmp_path: Path) -> None:
    path = tmp_path / "lifecycle-config.toml"
    fleet.write_config(path, restart_policy="never",
                       extra_toml={"daemon": {"ssh_timeout_seconds": 5.0}})
    monitor = monitor_for(LifecycleManager(path).load(), StateStore(tmp_path / "state.db"))
    try:
        for _ in range(2):
            results = monitor.check_many(fleet.vm_names)
            assert all(r.healthy for r in results.values()), results
    finally:
        monitor.close()
    answers = fleet.arm_answers
    assert answers.get(400, 0) == 0 and answers[200] >= 1, answers


def test_retry_after_on_the_listing_holds_the_next_call(fleet: SimulatedFleet) -> None:
    compute = arm(fleet, timeout=5)
    fleet.set_arm_fault(429, count=1, retry_after=30)
    with pytest.raises(AzureOperationError) as first:
        compute.power_states(fleet.subscription_id, fleet.resource_group)
    assert first.value.code == "TooManyRequests"
    before = fleet.arm_requests
    started = time.monotonic()
    with pytest.raises(AzureOperationError) as held:
        compute.power_states(fleet.subscription_id, "another-rg")
    assert time.monotonic() - started < 0.5
    assert fleet.arm_requests == before  # nothing sent
    assert held.value.code == "TooManyRequests"
    assert re.search(rf"throttled listing of subscription {fleet.subscription_id} until "
                     r"\d\d:\d\d:\d\d UTC", str(held.value)), str(held.value)
    assert compute.instance_view(target(fleet, "vm-001")).state is VMState.RUNNING


# ---------------------------------------------------------------------------- repairs
def test_restart_without_retry_after_ends_soon_after_the_operation(
        fleet: SimulatedFleet, capsys: pytest.CaptureFixture[str]) -> None:
    compute = arm(fleet)  # the default poll interval (5 s); the stand-in sends no Retry-After
    compute.instance_view(target(fleet, "vm-001"))  # token and connection ready
    started = time.monotonic()
    compute.restart(target(fleet, "vm-001"), timeout=60)
    took = time.monotonic() - started
    with capsys.disabled():
        print(f"\nrestart, operation {OPERATION_SECONDS:g} s, no Retry-After: {took:.2f} s")
    assert OPERATION_SECONDS <= took <= OPERATION_SECONDS + 5
    assert [op["status"] for op in fleet.operations()] == ["Succeeded"]


def test_accepted_restart_answered_500_is_not_posted_again(fleet: SimulatedFleet) -> None:
    compute = arm(fleet, polling_interval=0.25)
    fleet.set_arm_fault(500, count=1, accept=True)
    compute.restart(target(fleet, "vm-002"), timeout=30)
    ended = time.time()
    ops = fleet.operations()
    assert [(op["vm"], op["action"], op["status"]) for op in ops] == [
        ("vm-002", "restart", "Succeeded")]
    assert ops[0]["ended"] is not None and 0 <= ended - ops[0]["ended"] < 0.25 + 0.5
    assert fleet.arm_answers[500] == 1


def test_a_failed_accepted_restart_reports_azures_code(fleet: SimulatedFleet) -> None:
    compute = arm(fleet, polling_interval=0.25)
    fleet.fail_next_operation("vm-001", "restart", code="AllocationFailed",
                              message="Allocation failed. Please try again later.")
    fleet.set_arm_fault(503, count=1, accept=True)
    with pytest.raises(AzureOperationError) as caught:
        compute.restart(target(fleet, "vm-001"), timeout=30)
    assert caught.value.code == "AllocationFailed"
    assert len(fleet.operations()) == 1


def test_a_500_that_changed_nothing_is_posted_again(fleet: SimulatedFleet) -> None:
    compute = arm(fleet, polling_interval=0.25)
    fleet.set_arm_fault(500, count=1)  # refused before it took effect
    compute.restart(target(fleet, "vm-003"), timeout=30)
    assert [(op["vm"], op["status"]) for op in fleet.operations()] == [("vm-003", "Succeeded")]


def test_a_throttled_post_is_retried_after_retry_after(fleet: SimulatedFleet) -> None:
    compute = arm(fleet, polling_interval=0.25)
    compute.instance_view(target(fleet, "vm-001"))
    fleet.set_arm_fault(429, count=1, retry_after=1)
    started = time.monotonic()
    compute.restart(target(fleet, "vm-001"), timeout=30)
    assert time.monotonic() - started >= 1 + OPERATION_SECONDS
    assert [op["status"] for op in fleet.operations()] == ["Succeeded"]
