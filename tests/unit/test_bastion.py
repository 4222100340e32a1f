"""The pure parts of the Bastion route: Bastion JSON, the choice of a Bastion, what keeps it
from tunnelling, the exchange's answers and who is at fault, the tunnel URL, the reasons.

The JSON fixtures follow the Network spec's BastionHostGet.json, BastionHostDeveloperGet.json
and BastionHostListByResourceGroup.json (stable/2024-05-01), locations written as they are
there ("West US").
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from azlin_lifecycle.adapters.bastion import discovery
from azlin_lifecycle.adapters.bastion.exchange import Session, _refused, _server_message, _session
from azlin_lifecycle.adapters.bastion.tunnel import tunnel_url
from azlin_lifecycle.cli.simulate_cmds import BASTION_MODES
from azlin_lifecycle.models import BastionEndpoint, SshFault, SshProbeResult, VMState, VMTarget
from azlin_lifecycle.rules import check_reason, counts_toward_restart
from azlin_lifecycle.simulator.bastion import BastionMode

RG = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network"
STANDARD: dict[str, Any] = {
    "name": "bastionhosttenant",
    "id": f"{RG}/bastionHosts/bastionhosttenant",
    "type": "Microsoft.Network/bastionHosts",
    "location": "West US",
    "sku": {"name": "Standard"},
    "zones": [],
    "properties": {
        "provisioningState": "Succeeded",
        "dnsName": "bst-9d89d361-100e-4c01-b92d-466548c476dc.bastion.azure.com",
        "scaleUnits": 2, "disableCopyPaste": False, "enableTunneling": False,
        "enableIpConnect": False, "enableShareableLink": False, "enableKerberos": False,
        "ipConfigurations": [],
    },
}
DEVELOPER: dict[str, Any] = {
    "name": "bastionhostdeveloper",
    "id": "/subscriptions/subid/resourceGroups/rg2/providers/Microsoft.Network/bastionHosts/"
          "bastionhostdeveloper",
    "type": "Microsoft.Network/bastionHosts",
    "location": "West US",
    "sku": {"name": "Developer"},
    "properties": {"provisioningState": "Succeeded",
                   "virtualNetwork": {"id": "/subscriptions/subid/resourceGroups/rg2/providers/"
                                            "Microsoft.Network/virtualNetworks/vnet2"},
                   "dnsName": "omnibrain.uswest.bastionglobal.azure.com",
                   "ipConfigurations": []},
}
VM_ID = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"


def host(body: dict[str, Any], **props: Any) -> discovery.BastionHost:
    body = copy.deepcopy(body)
    body["properties"].update(props)
    parsed = discovery.bastion_host(body)
    assert parsed is not None
    return parsed


def test_spec_example_reads_as_a_standard_bastion_without_native_client_support() -> None:
    b = host(STANDARD)
    assert (b.name, b.location, b.sku, b.tunneling, b.resource_group) == (
        "bastionhosttenant", "westus", "Standard", False, "rg1")
    assert b.dns_name == "bst-9d89d361-100e-4c01-b92d-466548c476dc.bastion.azure.com"
    assert discovery.problem(b) == (
        "native client support is off on bastionhosttenant: enable it (az network bastion "
        "update --name bastionhosttenant --resource-group rg1 --enable-tunneling)")
    assert discovery.problem(host(STANDARD, enableTunneling=True)) is None


def test_developer_sku_tunnels_without_the_setting_and_basic_never() -> None:
    assert discovery.problem(host(DEVELOPER)) is None
    basic = copy.deepcopy(STANDARD)
    basic["sku"] = {"name": "Basic"}
    problem = discovery.problem(host(basic, enableTunneling=True))
    assert problem is not None and "Basic SKU" in problem and "--enable-tunneling" in problem
    no_sku = copy.deepcopy(STANDARD)
    del no_sku["sku"]
    assert host(no_sku).sku == "Basic"


def test_a_bastion_without_a_usable_dns_name_is_a_problem() -> None:
    missing = host(STANDARD, enableTunneling=True, dnsName=None)
    assert "has no dnsName" in (discovery.problem(missing) or "")
    odd = host(STANDARD, enableTunneling=True, dnsName="evil.example/../x?y=")
    assert "not a host name" in (discovery.problem(odd) or "")


def test_not_a_bastion() -> None:
    assert discovery.bastion_host({"name": "x"}) is None
    assert discovery.bastion_host([]) is None
    assert discovery.bastion_hosts([STANDARD, {"id": 1}, None]) == [host(STANDARD)]


def test_choice_is_by_region_usable_first_then_azlins_name() -> None:
    def named(name: str, location: str, tunneling: bool = True) -> discovery.BastionHost:
        body = copy.deepcopy(STANDARD)
        body.update(name=name, id=f"{RG}/bastionHosts/{name}", location=location)
        return host(body, enableTunneling=tunneling)

    hosts = [named("a-other", "westus2"), named("b-off", "West US 2", tunneling=False),
             named("azlin-bastion-westus2", "westus2"), named("c", "eastus")]
    assert discovery.choose(hosts, "westus2").name == "azlin-bastion-westus2"  # type: ignore[union-attr]
    assert discovery.choose(hosts, "West US 2") == discovery.choose(hosts, "westus2")
    assert discovery.choose(hosts[:2], "westus2").name == "a-other"  # type: ignore[union-attr]
    assert discovery.choose([hosts[1]], "westus2").name == "b-off"  # type: ignore[union-attr]
    assert discovery.choose(hosts, "northeurope") is None
    assert discovery.missing_in_region(hosts[2:], "northeurope", "rg1") == (
        "no Azure Bastion in northeurope in resource group rg1 (it has azlin-bastion-westus2 "
        "in westus2, c in eastus): create azlin-bastion-northeurope (Standard SKU, native "
        "client support), or name one with bastion = \"NAME\" in the VM's table or [azure]")


@pytest.mark.parametrize(("ref", "path"), [
    ("azlin-bastion-eastus", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                             "bastionHosts/azlin-bastion-eastus"),
    (f"{RG}/bastionHosts/other", f"{RG}/bastionHosts/other"),
    (f"{RG}/virtualNetworks/other", None),
    ("has space", None),
    (f"{RG}/bastionHosts/x?api-version=1", None),
])
def test_configured_bastion_is_a_name_in_the_vms_group_or_a_resource_id(
        ref: str, path: str | None) -> None:
    assert discovery.reference_path(ref, "s", "rg") == path


def test_exchange_answer_is_read_only_when_complete() -> None:
    ok = b'{"authToken": "a", "nodeId": "n", "websocketToken": "w", "other": 1}'
    assert _session(ok) == Session("a", "n", "w")
    assert _session(b'{"authToken": "a", "nodeId": "n"}') is None
    assert _session(b"not json") is None
    assert _session(b"[1]") is None
    assert repr(Session("secret-a", "secret-n", "secret-w")) == "Session(<secret>)"


def test_server_message_is_short_and_has_no_secret_of_ours() -> None:
    body = b'{"message": "token  eyJSECRET\\n is bad for eyJSECRET"}'
    assert _server_message(body, ("eyJSECRET",)) == "token *** is bad for ***"
    assert len(_server_message(b'{"message": "' + b"x" * 999 + b'"}', ())) == 160
    assert _server_message(b"<html>", ()) == ""


END = BastionEndpoint("azlin-bastion-westus2", "bst-1.bastion.azure.com", "Standard", VM_ID)


@pytest.mark.parametrize(("status", "fault", "words"), [
    (401, SshFault.BASTION_UNUSABLE, "refused the Azure token for VM vm1 (HTTP 401, bad): "
                                     "check that your login (az login) is current"),
    (403, SshFault.BASTION_UNUSABLE, "give your login the Reader role on the VM, its network "
                                     "interface and azlin-bastion-westus2"),
    (404, SshFault.BASTION_UNUSABLE, "does not know VM vm1"),
    (400, SshFault.BASTION_UNUSABLE, "refused the token exchange for VM vm1 (HTTP 400, bad)"),
    (429, SshFault.BASTION_UNREACHABLE, "answered the token exchange with HTTP 429, bad"),
    (500, SshFault.BASTION_UNREACHABLE, "answered the token exchange with HTTP 500, bad"),
    (503, SshFault.BASTION_UNREACHABLE, "with HTTP 503"),
])
def test_who_is_at_fault_for_each_exchange_answer(status: int, fault: SshFault,
                                                  words: str) -> None:
    failure = _refused(END, status, "bad")
    assert failure.fault is fault
    assert words in str(failure)
    assert str(failure).startswith(fault.value + ": ")


def test_tunnel_url_by_sku() -> None:
    session = Session("auth", "node/1", "ws+token")
    assert tunnel_url(END, session) == (
        "wss://bst-1.bastion.azure.com/webtunnelv2/ws%2Btoken?X-Node-Id=node%2F1")
    dev = BastionEndpoint("dev", "omnibrain.uswest.bastionglobal.azure.com", "Developer", VM_ID)
    assert tunnel_url(dev, session) == (
        "wss://omnibrain.uswest.bastionglobal.azure.com/omni/webtunnel/ws%2Btoken")


def test_bastion_faults_never_count_toward_a_restart_and_say_so() -> None:
    target = VMTarget("vm1", "subid", "rg1", "10.0.0.4", 22, "azureuser", "/k", bastion=END)
    for fault in (SshFault.BASTION_UNUSABLE, SshFault.BASTION_UNREACHABLE):
        assert not fault.guest_side and fault.needs_you
        probe = SshProbeResult(False, f"{fault.value}: azlin-bastion-westus2 x", fault=fault)
        assert not counts_toward_restart(probe, in_grace=False)
        reason = check_reason(target, VMState.RUNNING, None, None, probe, False)
        assert reason.endswith("a restart cannot fix this (not counted)")
    unusable = SshProbeResult(False, "Bastion not usable: enable it", fault=SshFault.BASTION_UNUSABLE)
    assert check_reason(target, VMState.RUNNING, None, None, unusable, False) == (
        "SSH Bastion not usable: enable it; a restart cannot fix this (not counted)")


def test_host_key_of_a_vm_behind_bastion_is_recorded_for_the_vm() -> None:
    target = VMTarget("vm1", "subid", "rg1", "10.0.0.4", 22, "azureuser", "/k", bastion=END)
    probe = SshProbeResult(False, "host key changed", fault=SshFault.HOST_KEY_CHANGED)
    assert f"ssh-keygen -R '{VM_ID.lower()}'" in check_reason(
        target, VMState.RUNNING, None, None, probe, False)


def test_cli_offers_every_bastion_mode_of_the_simulator() -> None:
    assert tuple(m.value for m in BastionMode) == BASTION_MODES
