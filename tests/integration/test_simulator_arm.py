"""The simulator's ARM API through the real azure-mgmt-compute client, the real
AzureCliCredential and the simulator's stand-in ``az``; loopback only."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet

RG = "rg-sim"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("arm"), 120, boot_seconds=0.6,
                        operation_seconds=0.3) as fleet:
        yield fleet


@pytest.fixture
def compute(fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_client(fleet, monkeypatch)


def make_client(fleet: SimulatedFleet, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient

    monkeypatch.setenv("PATH", fleet.env()["PATH"])
    return ComputeManagementClient(
        AzureCliCredential(process_timeout=20), fleet.subscription_id,
        base_url=fleet.arm_endpoint, credential_scopes=["https://management.azure.com/.default"],
        connection_verify=str(fleet.ca_path), polling_interval=0, **kwargs)


def raw(fleet: SimulatedFleet, method: str, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    port = int(fleet.arm_endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=ssl.create_default_context(cafile=str(fleet.ca_path)),
        timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def codes(view: Any) -> list[str]:
    return [s.code for s in view.statuses]


def test_get_with_instance_view_and_instance_view(fleet: SimulatedFleet, compute: Any) -> None:
    vm = compute.virtual_machines.get(RG, "vm-001", expand="instanceView")
    assert vm.name == "vm-001" and vm.location == "eastus"
    assert vm.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-001")
    assert codes(vm.instance_view) == ["ProvisioningState/succeeded", "PowerState/running"]
    assert vm.instance_view.vm_agent.statuses[0].display_status == "Ready"
    assert vm.provisioning_state == "Succeeded"
    plain = compute.virtual_machines.get(RG, "vm-001")
    assert plain.instance_view is None and plain.storage_profile.os_disk.os_type == "Linux"
    view = compute.virtual_machines.instance_view(RG, "vm-002")
    assert codes(view) == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view.computer_name == "vm-002"


def test_not_found_texts(compute: Any) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as exc:
        compute.virtual_machines.instance_view(RG, "ghost")
    assert exc.value.error.code == "ResourceNotFound"
    assert ("The Resource 'Microsoft.Compute/virtualMachines/ghost' under resource group "
            "'rg-sim' was not found.") in str(exc.value)
    with pytest.raises(ResourceNotFoundError) as exc:
        compute.virtual_machines.get("rg-other", "vm-001")
    assert exc.value.error.code == "ResourceGroupNotFound"
    assert "Resource group 'rg-other' could not be found." in str(exc.value)


def test_list_pages_through_next_link(fleet: SimulatedFleet, compute: Any) -> None:
    pages = [list(page) for page in
             compute.virtual_machines.list_all(status_only="true").by_page()]
    assert [len(p) for p in pages] == [50, 50, 20]
    names = [vm.name for page in pages for vm in page]
    assert names == fleet.vm_names
    assert all(vm.instance_view.statuses[1].code == "PowerState/running"
               for page in pages for vm in page)
    status, _, body = raw(fleet, "GET", f"/subscriptions/{fleet.subscription_id}/resourceGroups/"
                          f"{RG}/providers/Microsoft.Compute/virtualMachines?api-version=x",
                          {"Authorization": "Bearer t"})
    assert status == 200
    link = json.loads(body)["nextLink"]
    assert link.startswith(fleet.arm_endpoint) and "%24skiptoken=50" in link


def test_list_all_status_only(fleet: SimulatedFleet, compute: Any) -> None:
    fleet.set_power_state("vm-007", "deallocated")
    try:
        vms = {vm.name: vm for vm in compute.virtual_machines.list_all(status_only="true")}
        assert len(vms) == 120
        assert codes(vms["vm-007"].instance_view)[1] == "PowerState/deallocated"
        assert vms["vm-007"].instance_view.vm_agent is None
        assert codes(vms["vm-008"].instance_view)[1] == "PowerState/running"
    finally:
        fleet.set_power_state("vm-007", "running")


def test_every_action_runs_as_a_long_running_operation(fleet: SimulatedFleet,
                                                       compute: Any) -> None:
    vms = compute.virtual_machines
    steps = [("begin_power_off", "powerOff", "stopping", "stopped"),
             ("begin_start", "start", "starting", "running"),
             ("begin_deallocate", "deallocate", "deallocating", "deallocated"),
             ("begin_start", "start", "starting", "running"),
             ("begin_restart", "restart", "running", "running"),
             ("begin_redeploy", "redeploy", "running", "running")]
    for method, action, during, after in steps:
        before = len(fleet.operations())
        poller = getattr(vms, method)(RG, "vm-010")
        assert poller.status() == "InProgress"
        assert fleet.power_state("vm-010") == during
        assert fleet.provisioning_state("vm-010") == "updating"
        view = vms.instance_view(RG, "vm-010")
        assert codes(view) == ["ProvisioningState/updating", f"PowerState/{during}"]
        poller.result()
        assert poller.status() == "Succeeded"
        assert fleet.power_state("vm-010") == after
        record = fleet.operations()[before]
        assert (record["vm"], record["action"], record["status"]) == ("vm-010", action,
                                                                      "Succeeded")
        assert record["ended"] >= record["started"] + 0.3


def test_lro_headers_and_status_bodies(fleet: SimulatedFleet) -> None:
    auth = {"Authorization": "Bearer t", "Content-Length": "0"}
    base = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{RG}/providers/"
            "Microsoft.Compute/virtualMachines/vm-011")
    status, headers, body = raw(fleet, "POST", f"{base}/restart?api-version=2026-04-01", auth)
    assert (status, body) == (202, b"")
    assert "retry-after" not in headers  # none by default: real ARM may send none
    assert headers["x-ms-ratelimit-remaining-resource"].startswith("Microsoft.Compute/UpdateVM3Min;")
    poll = headers["azure-asyncoperation"].removeprefix(fleet.arm_endpoint)
    assert headers["location"] == headers["azure-asyncoperation"] + "&monitor=true"
    status, _, body = raw(fleet, "GET", poll, auth)
    first = json.loads(body)
    assert status == 200 and first["status"] == "InProgress" and "endTime" not in first
    assert set(first) == {"name", "startTime", "status"}
    assert raw(fleet, "GET", poll + "&monitor=true", auth)[0] == 202
    time.sleep(0.45)
    done = json.loads(raw(fleet, "GET", poll, auth)[2])
    assert done["status"] == "Succeeded" and done["endTime"] >= done["startTime"]
    assert raw(fleet, "GET", poll + "&monitor=true", auth)[:3:2] == (200, b"")


def test_failed_operation_raises_with_code(fleet: SimulatedFleet, compute: Any) -> None:
    from azure.core.exceptions import HttpResponseError

    fleet.fail_next_operation("vm-012", "restart", "InternalExecutionError", "disk on fire")
    poller = compute.virtual_machines.begin_restart(RG, "vm-012")
    assert poller.status() == "InProgress"
    with pytest.raises(HttpResponseError) as exc:
        poller.result()
    assert "InternalExecutionError" in str(exc.value) and "disk on fire" in str(exc.value)
    assert fleet.operations()[-1]["status"] == "Failed"
    view = compute.virtual_machines.instance_view(RG, "vm-012")
    assert view.statuses[0].code == "ProvisioningState/failed/InternalExecutionError"
    assert view.statuses[0].level == "Error"
    # one-shot: the next restart succeeds and the VM recovers
    compute.virtual_machines.begin_restart(RG, "vm-012").result()
    assert fleet.provisioning_state("vm-012") == "succeeded"


def test_hung_operation_stays_in_progress(fleet: SimulatedFleet, compute: Any) -> None:
    from azure.core.exceptions import HttpResponseError

    fleet.hang_operations("vm-013", "restart")
    poller = compute.virtual_machines.begin_restart(RG, "vm-013")
    poller.wait(timeout=1.6)
    assert not poller.done() and poller.status() == "InProgress"
    assert fleet.operations()[-1]["status"] == "InProgress"
    fleet.set_power_state("vm-013", "running")  # an operator fixes it by hand
    assert fleet.operations()[-1]["status"] == "Canceled"
    with pytest.raises(HttpResponseError):  # the poller sees Canceled and stops
        poller.result(timeout=5)
    assert poller.done()
    fleet.clear_operation_faults("vm-013")


def test_restart_of_deallocated_vm_is_not_allowed(fleet: SimulatedFleet, compute: Any) -> None:
    from azure.core.exceptions import HttpResponseError

    fleet.set_power_state("vm-014", "deallocated")
    with pytest.raises(HttpResponseError) as exc:
        compute.virtual_machines.begin_restart(RG, "vm-014")
    assert exc.value.status_code == 409 and exc.value.error.code == "OperationNotAllowed"
    fleet.set_power_state("vm-014", "running")


def test_429_with_retry_after_then_success(fleet: SimulatedFleet, compute: Any) -> None:
    fleet.set_arm_fault(429, count=2, retry_after=0.25)
    began = time.monotonic()
    vm = compute.virtual_machines.instance_view(RG, "vm-001")
    assert vm.statuses[1].code == "PowerState/running"
    assert time.monotonic() - began >= 0.5
    fleet.set_arm_fault(429, count=1, retry_after=7)
    status, headers, body = raw(fleet, "GET", f"/subscriptions/{fleet.subscription_id}/resource"
                                f"Groups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-001"
                                "?api-version=x", {"Authorization": "Bearer t"})
    assert status == 429 and headers["retry-after"] == "7"
    assert json.loads(body)["error"]["code"] == "TooManyRequests"


def test_500_fault_surfaces_without_retries(fleet: SimulatedFleet,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import HttpResponseError

    client = make_client(fleet, monkeypatch, retry_total=0)
    fleet.set_arm_fault(500, count=1)
    with pytest.raises(HttpResponseError) as exc:
        client.virtual_machines.get(RG, "vm-001")
    assert exc.value.status_code == 500 and exc.value.error.code == "InternalServerError"
    assert client.virtual_machines.get(RG, "vm-001").name == "vm-001"


def test_latency_applies_to_every_answer(fleet: SimulatedFleet, compute: Any) -> None:
    compute.virtual_machines.get(RG, "vm-001")  # token fetched, connection warm
    fleet.set_arm_latency(0.4)
    try:
        began = time.monotonic()
        compute.virtual_machines.get(RG, "vm-001")
        assert time.monotonic() - began >= 0.4
    finally:
        fleet.set_arm_latency(0)


def test_bearer_token_required(fleet: SimulatedFleet) -> None:
    path = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{RG}/providers/"
            "Microsoft.Compute/virtualMachines/vm-001?api-version=2026-04-01")
    status, headers, body = raw(fleet, "GET", path)
    assert status == 401 and json.loads(body)["error"]["code"] == "AuthenticationFailed"
    assert "www-authenticate" in headers
    assert raw(fleet, "GET", path, {"Authorization": "Basic eA=="})[0] == 401
    assert raw(fleet, "GET", path, {"Authorization": "Bearer abc"})[0] == 200
    assert raw(fleet, "GET", path.split("?")[0], {"Authorization": "Bearer abc"})[0] == 400
    assert raw(fleet, "GET", path.replace(fleet.subscription_id, "other-sub"),
               {"Authorization": "Bearer abc"})[0] == 404


def test_logged_out_az_tells_to_run_az_login(fleet: SimulatedFleet,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    client = make_client(fleet, monkeypatch)
    fleet.set_logged_in(False)
    try:
        with pytest.raises(ClientAuthenticationError) as exc:
            client.virtual_machines.get(RG, "vm-001")
        assert "az login" in str(exc.value)
    finally:
        fleet.set_logged_in(True)
    assert client.virtual_machines.get(RG, "vm-001").name == "vm-001"


def test_az_stand_in_output(fleet: SimulatedFleet) -> None:
    import subprocess

    az = Path(fleet.az_dir) / "az"
    out = subprocess.run([str(az), "account", "get-access-token", "--output", "json",
                          "--resource", "https://management.azure.com", "--tenant", "t"],
                         capture_output=True, text=True, timeout=20, check=True)
    token = json.loads(out.stdout)
    assert token["tokenType"] == "Bearer" and token["subscription"] == fleet.subscription_id
    assert token["expires_on"] > time.time() + 3000 and token["accessToken"]
    fleet.set_logged_in(False)
    try:
        bad = subprocess.run([str(az), "account", "get-access-token"], capture_output=True,
                             text=True, timeout=20)
    finally:
        fleet.set_logged_in(True)
    assert bad.returncode == 1 and "Please run 'az login' to setup account." in bad.stderr


def test_retry_after_on_actions_and_polls_is_an_option(tmp_path: Path) -> None:
    with SimulatedFleet(tmp_path / "ra", 1, operation_seconds=5, retry_after=2) as fleet:
        vm = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{RG}/providers/"
              "Microsoft.Compute/virtualMachines/vm-001")
        auth = {"Authorization": "Bearer t"}
        status, headers, _ = raw(fleet, "POST", f"{vm}/restart?api-version=x", auth)
        assert status == 202 and headers["retry-after"] == "2"
        poll = headers["azure-asyncoperation"].removeprefix(fleet.arm_endpoint)
        status, headers, body = raw(fleet, "GET", poll, auth)
        assert json.loads(body)["status"] == "InProgress" and headers["retry-after"] == "2"


def test_an_accepting_fault_starts_the_action_and_answers_the_error(
        fleet: SimulatedFleet) -> None:
    vm = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{RG}/providers/"
          "Microsoft.Compute/virtualMachines/vm-016")
    before = len(fleet.operations())
    fleet.set_arm_fault(500, count=1, accept=True)
    status, _, body = raw(fleet, "POST", f"{vm}/restart?api-version=x",
                          {"Authorization": "Bearer t"})
    assert status == 500 and json.loads(body)["error"]["code"] == "InternalServerError"
    ops = fleet.operations()[before:]
    assert [(op["vm"], op["action"]) for op in ops] == [("vm-016", "restart")]
    assert fleet.provisioning_state("vm-016") == "updating"


def test_a_login_without_a_role_gets_403_authorization_failed(fleet: SimulatedFleet) -> None:
    """As ARM answers: 403 AuthorizationFailed naming the action and the scope; a
    subscription-wide listing leaves out a group the caller may not read."""
    auth = {"Authorization": "Bearer t"}
    sub = f"/subscriptions/{fleet.subscription_id}"
    listing = f"{sub}/providers/Microsoft.Compute/virtualMachines?api-version=x&statusOnly=true"
    view = f"{sub}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-001/instanceView?api-version=x"
    try:
        fleet.deny_reads("subscription")
        status, _, body = raw(fleet, "GET", listing, auth)
        error = json.loads(body)["error"]
        assert status == 403 and error["code"] == "AuthorizationFailed"
        assert error["message"].startswith("The client '") and (
            f"perform action 'Microsoft.Compute/virtualMachines/read' over scope '{sub}' or "
            "the scope is invalid. If access was recently granted, please refresh your "
            "credentials.") in error["message"]
        fleet.deny_reads("resource_group")
        status, _, body = raw(fleet, "GET", listing, auth)
        assert status == 200 and json.loads(body)["value"] == []
        status, _, body = raw(fleet, "GET", view, auth)
        error = json.loads(body)["error"]
        assert status == 403 and error["code"] == "AuthorizationFailed"
        assert (f"'Microsoft.Compute/virtualMachines/instanceView/read' over scope "
                f"'{sub}/resourceGroups/{RG}'") in error["message"]
        status, _, body = raw(fleet, "GET", view.replace(RG, "rg-other"), auth)
        assert status == 404 and json.loads(body)["error"]["code"] == "ResourceGroupNotFound"
    finally:
        fleet.deny_reads(None)
    status, _, body = raw(fleet, "GET", listing, auth)
    assert status == 200 and len(json.loads(body)["value"]) == 50
    status, _, body = raw(fleet, "GET", listing.replace(fleet.subscription_id, "0000"), auth)
    assert status == 404 and json.loads(body)["error"] == {
        "code": "SubscriptionNotFound", "message": "The subscription '0000' could not be found."}
