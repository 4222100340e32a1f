"""The stand-in's Microsoft.Network routes: a VM's NIC and public IP (where its SSH answers)
and the resource group's Azure Bastion, as :class:`~.arm_api.ArmApi` serves them (shapes as
in the Network RP's 2024-05-01 examples; unknown resources answer ARM's 404)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import armjson
from .network import VmAddresses
from .response import Response
from .state import ArmError, SimVM

if TYPE_CHECKING:
    from .arm_api import ArmApi

Json = dict[str, Any]
NIC_READ = "Microsoft.Network/networkInterfaces/read"
PUBLIC_IP_READ = "Microsoft.Network/publicIPAddresses/read"


def _network_of(api: ArmApi, name: str, suffix: str, kind: str, rg: str,
                public: bool = False) -> tuple[SimVM, VmAddresses]:
    """The VM that owns network resource ``name`` (``<vm><suffix>``) and its addresses;
    404 as ARM answers when there is none (or, with ``public``, no public IP)."""
    vm = api.state.find(name[:-len(suffix)]) if name.lower().endswith(suffix) else None
    entry = None if vm is None or api.network is None else api.network.get(vm.name)
    if vm is None or entry is None or (public and not entry.has_public):
        raise _network_not_found(kind, name, rg)
    return vm, entry

def nic(api: ArmApi, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
    rg = api._check_rg(groups["rg"], NIC_READ)
    _network_api(query, "networkInterfaces")
    with api.state.lock:
        vm, entry = _network_of(api, groups["nic"], "-nic", "networkInterfaces", rg)
        body = armjson.nic_body(vm, api.subscription_id, rg, entry.private_ip,
                                entry.has_public)
    return Response.json(200, body)

def public_ip(api: ArmApi, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
    rg = api._check_rg(groups["rg"], PUBLIC_IP_READ)
    _network_api(query, "publicIPAddresses")
    with api.state.lock:
        vm, entry = _network_of(api, groups["pip"], "-ip", "publicIPAddresses", rg,
                                     public=True)
        body = armjson.public_ip_body(vm, api.subscription_id, rg, entry.public_ip)
    return Response.json(200, body)

def _bastion_bodies(api: ArmApi, rg: str) -> list[Json]:
    bastion = api.bastion
    if bastion is None or not bastion.exists():
        return []
    return [armjson.bastion_body(bastion.name, api.subscription_id, rg, bastion.region,
                                 bastion.sku(), bastion.tunneling(), bastion.dns_name)]

def bastion_list(api: ArmApi, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
    rg = api._check_rg(groups["rg"])
    _network_api(query, "bastionHosts")
    return Response.json(200, {"value": _bastion_bodies(api, rg)})

def bastion_get(api: ArmApi, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
    rg = api._check_rg(groups["rg"])
    _network_api(query, "bastionHosts")
    for body in _bastion_bodies(api, rg):
        if body["name"].lower() == groups["bastion"].lower():
            return Response.json(200, body)
    raise _network_not_found("bastionHosts", groups["bastion"], rg)



def _network_api(query: dict[str, list[str]], kind: str) -> None:
    version = query.get("api-version", [""])[0]
    if version not in armjson.NETWORK_API_VERSIONS:
        raise ArmError(400, "NoRegisteredProviderFound",
                       f"No registered resource provider found for location "
                       f"'{armjson.LOCATION}' and API version '{version}' for type '{kind}'. "
                       f"The supported api-versions are "
                       f"'{', '.join(armjson.NETWORK_API_VERSIONS)}'.")


def _network_not_found(kind: str, name: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.Network/{kind}/{name}' under resource group "
                    f"'{resource_group}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix")
