"""The pure parts of address resolution: walking ARM JSON and azlin's key order.

The NIC and public IP fixtures follow the Network spec's NetworkInterfaceGet.json and
PublicIpAddressGet.json (stable/2024-05-01); the VM is the Compute spec's own example.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle import paths
from azlin_lifecycle.adapters.azure.network import (
    admin_user,
    arm_id,
    find_key,
    nic_addresses,
    primary_nic_id,
    public_ip_address,
)
from tests.support.shared import require_shared

NET = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network"
NIC: dict[str, Any] = {
    "name": "test-nic",
    "id": f"{NET}/networkInterfaces/test-nic",
    "location": "eastus",
    "properties": {
        "provisioningState": "Succeeded",
        "ipConfigurations": [
            {"name": "ipconfig1", "id": f"{NET}/networkInterfaces/test-nic/ipConfigurations/ipconfig1",
             "properties": {"provisioningState": "Succeeded", "privateIPAddress": "172.20.2.4",
                            "privateIPAllocationMethod": "Dynamic",
                            "publicIPAddress": {"id": f"{NET}/publicIPAddresses/test-ip"},
                            "subnet": {"id": f"{NET}/virtualNetworks/rg1-vnet/subnets/default"},
                            "primary": True, "privateIPAddressVersion": "IPv4"}},
            {"name": "ipconfig2", "id": f"{NET}/networkInterfaces/test-nic/ipConfigurations/ipconfig2",
             "properties": {"provisioningState": "Succeeded", "privateIPAddress": "172.20.2.16/28",
                            "privateIPAddressPrefixLength": 28,
                            "privateIPAllocationMethod": "Dynamic",
                            "subnet": {"id": f"{NET}/virtualNetworks/rg1-vnet/subnets/default"},
                            "primary": False, "privateIPAddressVersion": "IPv4"}},
        ],
        "macAddress": "00-0D-3A-1B-C7-21",
        "primary": True,
        "virtualMachine": {"id": "/subscriptions/subid/resourceGroups/rg1/providers/"
                                 "Microsoft.Compute/virtualMachines/vm1"},
    },
    "type": "Microsoft.Network/networkInterfaces",
}
PUBLIC_IP: dict[str, Any] = {
    "name": "test-ip",
    "id": f"{NET}/publicIPAddresses/test-ip",
    "location": "westus",
    "properties": {"provisioningState": "Succeeded", "publicIPAddressVersion": "IPv4",
                   "publicIPAllocationMethod": "Static", "idleTimeoutInMinutes": 4,
                   "ipAddress": "20.51.7.3",
                   "ipConfiguration": {"id": f"{NET}/networkInterfaces/test-nic/"
                                             "ipConfigurations/ipconfig1"}},
    "type": "Microsoft.Network/publicIPAddresses",
}
VM_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/my-vm"


def example_vm() -> dict[str, Any]:
    path = require_shared("azure-examples/VirtualMachine_Get.json")
    body: dict[str, Any] = json.loads(path.read_text())["responses"]["200"]["body"]
    return body


def test_vm_example_gives_admin_user_and_its_only_nic() -> None:
    vm = example_vm()
    assert admin_user(vm) == "admin"
    # The example's one NIC has no properties.primary: the first one is the primary.
    assert primary_nic_id(vm) == ("/subscriptions/{subscription-id}/resourceGroups/"
                                  "myResourceGroup/providers/Microsoft.Network/"
                                  "networkInterfaces/{myNIC}")


def test_the_nic_marked_primary_wins_over_the_first() -> None:
    vm = example_vm()
    sub = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces"
    vm["properties"]["networkProfile"]["networkInterfaces"] = [
        {"id": f"{sub}/extra", "properties": {"primary": False}},
        {"id": f"{sub}/main", "properties": {"primary": True}},
    ]
    assert primary_nic_id(vm) == f"{sub}/main"


def test_vm_without_os_profile_or_nics() -> None:
    assert admin_user({"properties": {}}) is None
    assert primary_nic_id({"properties": {"networkProfile": {"networkInterfaces": []}}}) is None
    assert primary_nic_id({}) is None


def test_nic_example_gives_the_primary_configurations_addresses() -> None:
    assert nic_addresses(NIC) == ("172.20.2.4", f"{NET}/publicIPAddresses/test-ip")


def test_nic_primary_configuration_need_not_be_first() -> None:
    nic = copy.deepcopy(NIC)
    nic["properties"]["ipConfigurations"].reverse()
    assert nic_addresses(nic)[0] == "172.20.2.4"


def test_nic_with_private_ip_only() -> None:
    nic = copy.deepcopy(NIC)
    del nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]
    assert nic_addresses(nic) == ("172.20.2.4", None)
    assert nic_addresses({"properties": {"ipConfigurations": []}}) == (None, None)


def test_public_ip_address_and_a_released_dynamic_one() -> None:
    assert public_ip_address(PUBLIC_IP) == "20.51.7.3"
    # As in the spec's PublicIpAddressGet.json: a dynamic IP not allocated has no ipAddress.
    released = copy.deepcopy(PUBLIC_IP)
    del released["properties"]["ipAddress"]
    released["properties"]["publicIPAllocationMethod"] = "Dynamic"
    assert public_ip_address(released) is None


@pytest.mark.parametrize("value", [
    "https://evil.example/subscriptions/x", "subscriptions/x", "/subscriptions/x?api-version=1",
    "", None, 42])
def test_only_arm_resource_ids_are_followed(value: Any) -> None:
    assert arm_id(value) is None


@pytest.mark.parametrize(("present", "expected"), [
    (["id_rsa", "id_ed25519", "id_ed25519_azlin", "azlin_key"], "azlin_key"),
    (["id_rsa", "id_ed25519", "id_ed25519_azlin"], "id_ed25519_azlin"),
    (["id_rsa", "id_ed25519"], "id_ed25519"),
    (["id_rsa", "id_ecdsa"], "id_rsa"),
    (["id_ecdsa"], None),
])
def test_key_search_follows_azlins_order(tmp_path: Path, present: list[str],
                                         expected: str | None) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    for name in present:
        (ssh / name).write_text("key")
    (ssh / "azlin_key.pub").write_text("a public key is not a private key")
    found = find_key(paths.azlin_key_candidates(tmp_path))
    assert found == (None if expected is None else ssh / expected)


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / ".ssh" / "azlin_key").mkdir(parents=True)
    assert find_key(paths.azlin_key_candidates(tmp_path)) is None
