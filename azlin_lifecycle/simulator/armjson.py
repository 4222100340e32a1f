"""ARM JSON shapes for simulated VMs, modelled on the REST specification's examples
(VirtualMachine_Get.json, VirtualMachine_Get_InstanceView.json)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from .state import SimVM

API_VERSION = "2026-04-01"
LOCATION = "eastus"
POWER_DISPLAY = {
    "starting": "VM starting",
    "running": "VM running",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


# Retry-After as recorded from real ARM (public test recordings of the Azure CLI and SDKs):
# action -> (on the 202 that accepts it, on each InProgress poll); None: none sent.
RECORDED_RETRY_AFTER: dict[str, tuple[int | None, int | None]] = {
    "start": (10, 9), "deallocate": (10, 36), "restart": (None, None),
    "powerOff": (None, None), "redeploy": (None, None)}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def vm_path(subscription_id: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}")


def provisioning_status(vm: SimVM) -> dict[str, Any]:
    state = vm.provisioning
    if state.startswith("failed/"):
        status: dict[str, Any] = {"code": f"ProvisioningState/{state}", "level": "Error",
                                  "displayStatus": "Provisioning failed"}
        if vm.provisioning_message:
            status["message"] = vm.provisioning_message
        return status
    display = {"succeeded": "Provisioning succeeded", "updating": "Updating"}[state]
    # Azure's time of this status is when the last operation on the VM ended.
    return {"code": f"ProvisioningState/{state}", "level": "Info", "displayStatus": display,
            "time": iso(vm.provisioned)}


def provisioning_state(vm: SimVM) -> str:
    """The resource-level ``properties.provisioningState`` (Succeeded, Updating, Failed)."""
    return vm.provisioning.split("/", 1)[0].capitalize()


def instance_view(vm: SimVM) -> dict[str, Any]:
    view: dict[str, Any] = {
        "platformUpdateDomain": 0,
        "platformFaultDomain": 0,
        "computerName": vm.name,
        "osName": "ubuntu",
        "osVersion": "22.04",
        "disks": [{"name": f"{vm.name}_OsDisk_1", "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info",
             "displayStatus": "Provisioning succeeded", "time": iso(vm.created)}]}],
        "hyperVGeneration": "V2",
        "statuses": [
            provisioning_status(vm),
            {"code": f"PowerState/{vm.power}", "level": "Info",
             "displayStatus": POWER_DISPLAY[vm.power]},
        ],
    }
    if vm.maintenance is not None:  # present only while maintenance is scheduled
        view["maintenanceRedeployStatus"] = {
            "isCustomerInitiatedMaintenanceAllowed": True,
            "preMaintenanceWindowStartTime": iso(vm.maintenance[0] - 7 * 86400),
            "preMaintenanceWindowEndTime": iso(vm.maintenance[0] - 86400),
            "maintenanceWindowStartTime": iso(vm.maintenance[0]),
            "maintenanceWindowEndTime": iso(vm.maintenance[1]),
            "lastOperationResultCode": "None"}
    if vm.power in ("running", "starting", "stopping"):
        view["vmAgent"] = {
            "vmAgentVersion": "2.9.1.1",
            "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                 "message": "GuestAgent is running and accepting new configurations.",
                 "time": iso(time.time())}  # a running agent reports all the time
                if vm.agent_ready else
                {"code": "ProvisioningState/Unavailable", "level": "Warning",
                 "displayStatus": "Not Ready",
                 "message": "VM Agent is unresponsive." if vm.booted else
                 "VM status blob is found but not yet populated."}
            ],
            "extensionHandlers": [],
        }
        if vm.app_health is not None and vm.power == "running":
            view["vmHealth"] = {"status": {
                "code": f"HealthState/{vm.app_health}", "level": "Info",
                "displayStatus": vm.app_health.capitalize(), "time": iso(time.time())}}
    return view


def vm_body(vm: SimVM, subscription_id: str, resource_group: str,
            expand_instance_view: bool) -> dict[str, Any]:
    rid = vm_path(subscription_id, resource_group, vm.name)
    base = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers"
    props: dict[str, Any] = {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": "Standard_B2s"},
        "storageProfile": {
            "imageReference": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy",
                               "sku": "22_04-lts-gen2", "version": "latest"},
            "osDisk": {
                "osType": "Linux", "name": f"{vm.name}_OsDisk_1", "createOption": "FromImage",
                "caching": "ReadWrite", "diskSizeGB": 30,
                "managedDisk": {"storageAccountType": "Premium_LRS",
                                "id": f"{base}/Microsoft.Compute/disks/{vm.name}_OsDisk_1"},
            },
            "dataDisks": [],
        },
        "osProfile": {
            "computerName": vm.name, "adminUsername": "azureuser",
            "linuxConfiguration": {"disablePasswordAuthentication": True,
                                   "provisionVMAgent": True},
            "secrets": [],
        },
        "networkProfile": {"networkInterfaces": [
            {"id": f"{base}/Microsoft.Network/networkInterfaces/{vm.name}-nic"}]},
        "provisioningState": provisioning_state(vm),
        "timeCreated": iso(vm.created),
    }
    if expand_instance_view:
        props["instanceView"] = instance_view(vm)
    return {"name": vm.name, "id": rid, "type": "Microsoft.Compute/virtualMachines",
            "location": LOCATION, "tags": dict(vm.tags), "properties": props}


def status_only_body(vm: SimVM, subscription_id: str, resource_group: str) -> dict[str, Any]:
    """An item of list_all with ``statusOnly=true``: identity plus the run-time statuses.

    The REST spec promises only "run time status" for statusOnly (and its examples show
    no instance view at all), so the item carries the platform's ``statuses`` but no
    ``vmAgent``, disks or extensions, which come from the guest agent per VM: a monitor
    must not count on the agent's state from a listing.
    """
    full = instance_view(vm)
    view = {key: full[key] for key in ("computerName", "osName", "osVersion",
                                       "hyperVGeneration", "statuses")}
    return {"name": vm.name, "id": vm_path(subscription_id, resource_group, vm.name),
            "type": "Microsoft.Compute/virtualMachines", "location": LOCATION,
            "tags": dict(vm.tags), "properties": {"vmId": vm.vm_id, "instanceView": view}}


def resource_group_body(subscription_id: str, resource_group: str) -> dict[str, Any]:
    """GET of a resource group (Microsoft.Resources)."""
    return {"id": f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}",
            "name": resource_group, "type": "Microsoft.Resources/resourceGroups",
            "location": LOCATION, "properties": {"provisioningState": "Succeeded"}}


def error_body(code: str, message: str, target: str | None = None,
               details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    if details:
        error["details"] = details
    return {"error": error}


# ---------------------------------------------------------------- Microsoft.Network
# Shapes modelled on the Network spec's NetworkInterfaceGet.json and PublicIpAddressGet.json
# (stable/2024-05-01). ARM refuses an api-version its resource provider does not serve.
NETWORK_API_VERSIONS = ("2023-09-01", "2023-11-01", "2024-01-01", "2024-03-01", "2024-05-01",
                        "2024-07-01", "2024-10-01")


def network_path(subscription_id: str, resource_group: str, kind: str, name: str) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Network/{kind}/{name}")


def nic_body(vm: SimVM, subscription_id: str, resource_group: str, private_ip: str,
             has_public: bool) -> dict[str, Any]:
    nic_id = network_path(subscription_id, resource_group, "networkInterfaces", f"{vm.name}-nic")
    vnet = network_path(subscription_id, resource_group, "virtualNetworks",
                        f"{resource_group}-vnet")
    config: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "privateIPAddress": private_ip,
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"id": f"{vnet}/subnets/default"},
        "primary": True,
        "privateIPAddressVersion": "IPv4",
    }
    if has_public:
        config["publicIPAddress"] = {"id": network_path(
            subscription_id, resource_group, "publicIPAddresses", f"{vm.name}-ip")}
    return {
        "name": f"{vm.name}-nic", "id": nic_id, "location": LOCATION,
        "type": "Microsoft.Network/networkInterfaces",
        "properties": {
            "provisioningState": "Succeeded",
            "ipConfigurations": [{"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                  "properties": config}],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "enableAcceleratedNetworking": False,
            "enableIPForwarding": False,
            "primary": True,
            "virtualMachine": {"id": vm_path(subscription_id, resource_group, vm.name)},
        },
    }


def public_ip_body(vm: SimVM, subscription_id: str, resource_group: str,
                   address: str | None) -> dict[str, Any]:
    """A Basic dynamic public IP: no ``ipAddress`` while it is released (VM deallocated)."""
    nic_id = network_path(subscription_id, resource_group, "networkInterfaces", f"{vm.name}-nic")
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": "Dynamic",
        "idleTimeoutInMinutes": 4,
        "ipConfiguration": {"id": f"{nic_id}/ipConfigurations/ipconfig1"},
        "ipTags": [],
    }
    if address is not None:
        props["ipAddress"] = address
    return {"name": f"{vm.name}-ip", "location": LOCATION, "sku": {"name": "Basic",
                                                                  "tier": "Regional"},
            "id": network_path(subscription_id, resource_group, "publicIPAddresses",
                               f"{vm.name}-ip"),
            "type": "Microsoft.Network/publicIPAddresses", "properties": props}


def bastion_body(name: str, subscription_id: str, resource_group: str, location: str,
                 sku: str, tunneling: bool, dns_name: str) -> dict[str, Any]:
    """A Bastion as BastionHostGet.json (Standard) or BastionHostDeveloperGet.json shows it."""
    rid = network_path(subscription_id, resource_group, "bastionHosts", name)
    vnet = network_path(subscription_id, resource_group, "virtualNetworks",
                        f"{resource_group}-vnet")
    props: dict[str, Any] = {"provisioningState": "Succeeded", "dnsName": dns_name}
    if sku == "Developer":
        props.update({"virtualNetwork": {"id": vnet}, "ipConfigurations": []})
    else:
        props.update({
            "scaleUnits": 2, "disableCopyPaste": False, "enableTunneling": tunneling,
            "enableIpConnect": False, "enableShareableLink": False, "enableKerberos": False,
            "enableSessionRecording": False, "enablePrivateOnlyBastion": False,
            "ipConfigurations": [{
                "name": "bastionHostIpConfiguration",
                "id": f"{rid}/bastionHostIpConfigurations/bastionHostIpConfiguration",
                "type": "Microsoft.Network/bastionHosts/bastionHostIpConfigurations",
                "properties": {
                    "provisioningState": "Succeeded", "privateIPAllocationMethod": "Dynamic",
                    "subnet": {"id": f"{vnet}/subnets/AzureBastionSubnet"},
                    "publicIPAddress": {"id": network_path(
                        subscription_id, resource_group, "publicIPAddresses", f"{name}-ip")}}}],
        })
    return {"name": name, "id": rid, "type": "Microsoft.Network/bastionHosts",
            "etag": 'W/"00000000-0000-0000-0000-000000000000"', "location": location,
            "sku": {"name": sku}, "zones": [], "properties": props}

