"""The simulated VMs' lifecycle and the ARM request handling, with a hand-driven clock."""

from __future__ import annotations

import json

import pytest

from azlin_lifecycle.simulator.arm_api import ArmApi
from azlin_lifecycle.simulator.state import ArmError, FleetState, SimVM, SshMode
from tests.support.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> FleetState:
    seen: list[tuple[str, SshMode]] = []

    def record(vm: SimVM) -> None:
        seen.append((vm.name, vm.ssh_effective))

    fleet = FleetState(clock, resource_group="rg", boot_seconds=5, operation_seconds=1,
                       on_ssh_change=record)
    for i in range(1, 4):
        fleet.add_vm(f"vm-{i}", 2200 + i)
    fleet.seen = seen  # type: ignore[attr-defined]
    return fleet


def test_restart_timeline(state: FleetState, clock: FakeClock) -> None:
    op = state.begin("vm-1", "restart")
    vm = state.require("vm-1")
    assert (vm.power, vm.provisioning, vm.ssh_effective) == ("running", "updating",
                                                             SshMode.REFUSED)
    clock.advance(1)
    assert op.status == "Succeeded" and vm.provisioning == "succeeded"
    assert vm.ssh_effective is SshMode.REFUSED  # running, not booted yet
    clock.advance(4)
    assert vm.ssh_effective is SshMode.UP
    assert state.seen[-1] == ("vm-1", SshMode.UP)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("action", "during", "after"), [
    ("powerOff", "stopping", "stopped"), ("deallocate", "deallocating", "deallocated")])
def test_stopping_actions(state: FleetState, clock: FakeClock, action: str, during: str,
                          after: str) -> None:
    op = state.begin("vm-2", action)
    assert state.require("vm-2").power == during
    clock.advance(10)
    vm = state.require("vm-2")
    assert (op.status, vm.power, vm.ssh_effective) == ("Succeeded", after, SshMode.REFUSED)


def test_start_from_deallocated(state: FleetState, clock: FakeClock) -> None:
    state.set_power_state("vm-3", "deallocated")
    state.begin("vm-3", "start")
    vm = state.require("vm-3")
    assert vm.power == "starting"
    clock.advance(1)
    assert vm.power == "running" and vm.ssh_effective is SshMode.REFUSED
    clock.advance(4)
    assert vm.ssh_effective is SshMode.UP


def test_start_of_running_vm_is_a_quick_no_op(state: FleetState, clock: FakeClock) -> None:
    op = state.begin("vm-1", "start")
    vm = state.require("vm-1")
    assert vm.ssh_effective is SshMode.UP and vm.provisioning == "succeeded"
    clock.advance(1)
    assert op.status == "Succeeded"


def test_failed_restart_leaves_ssh_down(state: FleetState, clock: FakeClock) -> None:
    state.fail_next_operation("vm-1", "restart", "Boom", "it broke")
    op = state.begin("vm-1", "restart")
    clock.advance(10)
    vm = state.require("vm-1")
    assert (op.status, op.error_code, op.error_message) == ("Failed", "Boom", "it broke")
    assert vm.provisioning == "failed/Boom" and vm.ssh_effective is SshMode.REFUSED
    op2 = state.begin("vm-1", "restart")  # one-shot
    clock.advance(10)
    assert op2.status == "Succeeded" and vm.ssh_effective is SshMode.UP


def test_hang_and_preemption(state: FleetState, clock: FakeClock) -> None:
    state.hang_operations("vm-1", "restart")
    op = state.begin("vm-1", "restart")
    clock.advance(100)
    assert op.status == "InProgress"
    op2 = state.begin("vm-1", "powerOff")
    assert (op.status, op.error_code) == ("Failed", "OperationPreempted")
    clock.advance(1)
    assert op2.status == "Succeeded" and state.require("vm-1").power == "stopped"
    records = state.operations()
    assert [(r["action"], r["status"]) for r in records] == [("restart", "Failed"),
                                                             ("powerOff", "Succeeded")]


def test_set_power_state_cancels_and_validates(state: FleetState, clock: FakeClock) -> None:
    op = state.begin("vm-2", "restart")
    state.set_power_state("vm-2", "running")
    assert op.status == "Canceled"
    clock.advance(10)
    assert state.require("vm-2").provisioning == "succeeded"
    with pytest.raises(ValueError, match="unknown power state"):
        state.set_power_state("vm-2", "sleeping")
    with pytest.raises(ValueError, match="unknown action"):
        state.begin("vm-2", "reboot")


def test_ssh_mode_only_when_running_and_booted(state: FleetState) -> None:
    state.set_ssh_mode("vm-1", SshMode.HUNG)
    assert state.require("vm-1").ssh_effective is SshMode.HUNG
    state.set_power_state("vm-1", "stopped")
    assert state.require("vm-1").ssh_effective is SshMode.REFUSED


def test_restart_deallocated_not_allowed_and_unknown_vm(state: FleetState) -> None:
    state.set_power_state("vm-1", "deallocated")
    with pytest.raises(ArmError) as exc:
        state.begin("vm-1", "restart")
    assert (exc.value.status, exc.value.code) == (409, "OperationNotAllowed")
    with pytest.raises(ArmError) as exc:
        state.begin("nope", "restart")
    assert exc.value.status == 404 and "'Microsoft.Compute/virtualMachines/nope'" in exc.value.message


# ---------------------------------------------------------------- ArmApi without sockets
AUTH = {"authorization": "Bearer x"}
VMS = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"


@pytest.fixture
def api(state: FleetState) -> ArmApi:
    api = ArmApi(state, subscription_id="sub", page_size=2)
    api.base_url = "https://127.0.0.1:1"
    return api


def test_api_paging_and_case_insensitive_paths(api: ArmApi) -> None:
    refused = api.handle("GET", f"{VMS}?api-version=v&$expand=instanceView", AUTH, b"")
    assert refused.status == 400  # as real ARM: $expand=instanceView needs a $filter
    assert json.loads(refused.body)["error"]["code"] == "InvalidParameter"
    all_vms = VMS.replace("/resourceGroups/rg", "")
    first = api.handle("GET", f"{all_vms}?api-version=v&statusOnly=true", AUTH, b"")
    body = json.loads(first.body)
    assert [v["name"] for v in body["value"]] == ["vm-1", "vm-2"]
    assert "instanceView" in body["value"][0]["properties"]
    link = body["nextLink"].removeprefix(api.base_url)
    second = json.loads(api.handle("GET", link, AUTH, b"").body)
    assert [v["name"] for v in second["value"]] == ["vm-3"] and "nextLink" not in second
    lower = api.handle("GET", VMS.lower() + "/VM-1?api-version=v", AUTH, b"")
    assert lower.status == 200 and json.loads(lower.body)["name"] == "vm-1"


def test_api_action_and_operation_status(api: ArmApi, clock: FakeClock) -> None:
    resp = api.handle("POST", f"{VMS}/vm-1/powerOff?api-version=v", AUTH, b"")
    assert resp.status == 202 and resp.body == b""
    poll = resp.headers["Azure-AsyncOperation"].removeprefix(api.base_url)
    status = json.loads(api.handle("GET", poll, AUTH, b"").body)
    assert status["status"] == "InProgress"
    clock.advance(1)
    status = json.loads(api.handle("GET", poll, AUTH, b"").body)
    assert status["status"] == "Succeeded" and "endTime" in status
    loc = resp.headers["Location"].removeprefix(api.base_url)
    assert api.handle("GET", loc, AUTH, b"").status == 200


def test_api_faults_count_down(api: ArmApi) -> None:
    api.faults.set_fault(429, 2, 3)
    answers = [api.handle("GET", f"{VMS}/vm-1?api-version=v", AUTH, b"") for _ in range(3)]
    assert [a.status for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert api.handle("GET", f"{VMS}/vm-1?api-version=v", {}, b"").status == 401
    assert api.handle("PUT", f"{VMS}/vm-1?api-version=v", AUTH, b"").status == 405


def test_a_vm_deleted_through_arm_is_gone_and_a_second_delete_is_204(api: ArmApi) -> None:
    assert api.handle("DELETE", f"{VMS}/vm-1?api-version=v", AUTH, b"").status == 200
    gone = api.handle("GET", f"{VMS}/vm-1?api-version=v", AUTH, b"")
    assert gone.status == 404 and json.loads(gone.body)["error"]["code"] == "ResourceNotFound"
    again = api.handle("DELETE", f"{VMS}/vm-1?api-version=v", AUTH, b"")
    assert (again.status, again.body) == (204, b"")


@pytest.mark.parametrize(("mode", "after"), [
    (SshMode.HUNG, SshMode.UP), (SshMode.SLOW, SshMode.UP),
    (SshMode.AUTH_FAIL, SshMode.AUTH_FAIL), (SshMode.HOST_KEY_CHANGED, SshMode.HOST_KEY_CHANGED),
])
def test_a_reboot_cures_guest_faults_but_not_configuration_faults(
        state: FleetState, clock: FakeClock, mode: SshMode, after: SshMode) -> None:
    state.set_ssh_mode("vm-2", mode)
    state.begin("vm-2", "restart")
    clock.advance(5)
    assert state.require("vm-2").ssh_effective is after
