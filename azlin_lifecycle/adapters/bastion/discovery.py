"""Which Azure Bastion reaches a VM, and whether it can: pure functions of ARM JSON.

A Bastion resource (``Microsoft.Network/bastionHosts``, as the Network spec's
BastionHostGet.json and BastionHostListByResourceGroup.json show it) gives its data plane's
host in ``properties.dnsName``, its tier in ``sku.name`` and native-client support in
``properties.enableTunneling``. Locations come as ARM writes them ("westus2") or as people
do ("West US 2"): they are compared without case and spaces.

azlin's rule, followed here: the Bastion is the configured one (``bastion`` in the VM's
table or ``[azure]``: a name in the VM's resource group, or a resource id), else the one of
the VM's resource group in the VM's location (azlin names it ``azlin-bastion-<region>``).

Tunnels need the Standard or Premium SKU with native client support
(``enableTunneling``), as the Azure CLI's ``bastion`` extension requires before it opens
one; the Developer SKU (a shared regional host, no such setting) tunnels on another path.
Anything else is a problem a person must fix: :func:`problem` says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ...models import BastionEndpoint
from ..azure.views import props_of, resource_group_of, text_of

TUNNEL_SKUS = frozenset({"Standard", "Premium"})
DEVELOPER_SKUS = frozenset({"Developer", "QuickConnect"})
AZLIN_PREFIX = "azlin-bastion-"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
# A host name, or (the local stand-in) host:port; nothing that could change the URL's path.
_DNS_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class BastionHost:
    """What the monitor needs of one Bastion resource."""

    name: str
    resource_id: str
    location: str  # normalised: "westus2"
    sku: str
    dns_name: str | None
    tunneling: bool

    @property
    def resource_group(self) -> str | None:
        return resource_group_of(self.resource_id)


def normalize_location(value: Any) -> str:
    """ "West US 2" and "westus2" alike: lower case, no spaces."""
    return "".join(str(value).split()).lower() if isinstance(value, str) else ""


def bastion_host(obj: Any) -> BastionHost | None:
    """The Bastion described by one ARM JSON object, or None if it is not one."""
    if not isinstance(obj, Mapping):
        return None
    name, rid = obj.get("name"), obj.get("id")
    if not isinstance(name, str) or not isinstance(rid, str) or not name or not rid:
        return None
    props = props_of(obj)
    sku = obj.get("sku")
    sku_name = sku.get("name") if isinstance(sku, Mapping) else None
    return BastionHost(
        name=name, resource_id=rid, location=normalize_location(obj.get("location")),
        sku=sku_name if isinstance(sku_name, str) else "Basic",  # Basic when none is given
        dns_name=text_of(props.get("dnsName")),
        tunneling=props.get("enableTunneling") is True)


def bastion_hosts(listing: Iterable[Any]) -> list[BastionHost]:
    return [host for host in map(bastion_host, listing) if host is not None]


def list_path(subscription_id: str, resource_group: str) -> str:
    sub, rg = quote(subscription_id, safe=""), quote(resource_group, safe="")
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/bastionHosts"


def reference_path(reference: str, subscription_id: str, resource_group: str) -> str | None:
    """The ARM path of a configured Bastion (a resource id, or a name in the VM's resource
    group), or None when ``reference`` is neither."""
    text = reference.strip()
    if text.lower().startswith("/subscriptions/"):
        parts = text.split("/")
        ok = (len(parts) == 9 and parts[3].lower() == "resourcegroups"
              and parts[5].lower() == "providers" and parts[6].lower() == "microsoft.network"
              and parts[7].lower() == "bastionhosts" and all(parts[1:]))
        return text if ok and not any(c in text for c in "?#\\ ") else None
    if _NAME_RE.match(text):
        return f"{list_path(subscription_id, resource_group)}/{quote(text, safe='')}"
    return None


def choose(hosts: Iterable[BastionHost], location: str | None) -> BastionHost | None:
    """The Bastion in ``location``: a usable one first, then azlin's own name, then by name."""
    wanted = normalize_location(location)
    here = [h for h in hosts if h.location == wanted]
    if not here:
        return None
    return min(here, key=lambda h: (problem(h) is not None,
                                    h.name.lower() != AZLIN_PREFIX + wanted, h.name.lower()))


def problem(host: BastionHost) -> str | None:
    """What keeps ``host`` from tunnelling, and what to do about it; None if it can."""
    where = f"--name {host.name} --resource-group {host.resource_group or 'RG'}"
    if host.sku not in TUNNEL_SKUS | DEVELOPER_SKUS:
        return (f"{host.name} is a {host.sku} SKU Bastion, which has no native client "
                "tunnels: upgrade it to the Standard SKU and enable native client support "
                f"(az network bastion update {where} --enable-tunneling)")
    if host.sku in TUNNEL_SKUS and not host.tunneling:
        return (f"native client support is off on {host.name}: enable it "
                f"(az network bastion update {where} --enable-tunneling)")
    if host.dns_name is None:
        return f"{host.name} has no dnsName in Azure yet (is it still being deployed?)"
    if not _DNS_RE.match(host.dns_name):
        return f"{host.name} has a dnsName that is not a host name"
    return None


def missing_in_region(hosts: Iterable[BastionHost], location: str | None,
                      resource_group: str) -> str:
    """Why no Bastion of ``resource_group`` serves ``location``, and what to do."""
    region = normalize_location(location) or "the VM's region"
    others = ", ".join(f"{h.name} in {h.location}" for h in hosts) or "none"
    return (f"no Azure Bastion in {region} in resource group {resource_group} (it has "
            f"{others}): create {AZLIN_PREFIX}{region} (Standard SKU, native client support), "
            "or name one with bastion = \"NAME\" in the VM's table or [azure]")


def endpoint(host: BastionHost, vm_resource_id: str) -> BastionEndpoint:
    """The tunnel descriptor of a usable ``host`` (``problem(host)`` is None)."""
    assert host.dns_name is not None
    return BastionEndpoint(name=host.name, dns_name=host.dns_name, sku=host.sku,
                           vm_resource_id=vm_resource_id)
