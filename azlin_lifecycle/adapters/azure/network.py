"""Where to reach a VM over SSH when its configuration leaves host, user or key unset.

:class:`ArmAddressBook` implements :class:`azlin_lifecycle.ports.AddressBook` the way
azlin reaches its own VMs, reading plain ARM JSON through ``ArmCompute.read_json`` (the
monitor's pipeline, deadline and retries):

1. ``GET`` the VM (no expand): ``properties.osProfile.adminUsername`` is the user, and
   the NIC is the ``networkInterfaces[]`` entry with ``properties.primary`` (else the first);
2. ``GET`` the NIC (Microsoft.Network, api-version :data:`NETWORK_API_VERSION`): the primary
   ``ipConfigurations[]`` entry gives ``privateIPAddress`` and ``publicIPAddress.id``;
3. ``GET`` that public IP: ``properties.ipAddress`` (absent while a dynamic one is released).

Route: the public IP; else the private IP if a TCP connect to it succeeds within 2 s; else
the VM's Azure Bastion, through a tunnel the prober opens and keeps itself (see
:meth:`_bastion`; azlin's own tunnel registry is not read: its tunnels live only while an
azlin command runs, and its local ports would mix up host keys); else, when the VM has a Bastion
that cannot be used (none in its region, Basic SKU, native client support off, an unknown
configured one), ``SshRoute(None, "Bastion not usable: ...", BASTION_UNUSABLE)``: that
needs a person; with no Bastion in the resource group at all, ``SshRoute(None, "SSH not
applicable: ...")``. The user is the configured one, else ``adminUsername``, else
``azureuser``; the key the configured one, else the first that exists of azlin's search
order (:data:`~azlin_lifecycle.paths.AZLIN_KEY_NAMES`); with none, the first candidate, so
the probe fails as "private key missing or unreadable" (and ``via`` lists where it looked).
Configured fields always win; a VM whose host, user and key are all configured costs no
Azure call.

Cache: one entry per VM, resolved by one thread at a time (others wait for it), kept for
:data:`MAX_AGE` (10 min, less up to 10 % jitter so a fleet does not refresh at once) or
:data:`PENDING_MAX_AGE` while a public IP has no address yet. ``forget(vm)`` drops it:
the caller does so after start, redeploy and deallocate and whenever the power state
changes, since a dynamic IP changes then; the max age covers changes made behind its back
(an IP re-assigned by hand). A resource group's Bastions are listed once per
:data:`MAX_AGE` for all its VMs (:data:`BASTION_RETRY_AGE` after a Bastion turned out
unusable, so a fix is seen soon).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, urlsplit

from ... import paths
from ...models import BastionEndpoint, SshFault, SshRoute, VMTarget
from ...ports import AzureOperationError
from ..bastion import discovery
from .reads import list_path
from .views import props_of, text_of

# A stable Microsoft.Network API version (the Network spec's stable/2024-05-01, whose
# NetworkInterfaceGet / PublicIpAddressGet examples the stand-in's shapes follow). The
# Compute version the reader sends by default is refused by the Network RP.
NETWORK_API_VERSION = "2024-05-01"
MAX_AGE = 600.0
PENDING_MAX_AGE = 30.0
PRIVATE_CONNECT_TIMEOUT = 2.0
BASTION_RETRY_AGE = 60.0
DEFAULT_USER = "azureuser"
_NOT_APPLICABLE = SshFault.NOT_APPLICABLE.value


@runtime_checkable
class JsonReader(Protocol):
    """What the address book needs of :class:`~.azure.ArmCompute`."""

    def read_json(self, what: str, path: str,
                  params: Mapping[str, str] | None = None) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- pure JSON walking
def arm_id(value: Any) -> str | None:
    """``value`` if it is an ARM resource ID (a path under /subscriptions/), else None."""
    text = text_of(value)
    if text is None or not text.lower().startswith("/subscriptions/") or any(
            c in text for c in "?#\\ "):
        return None
    return text


def _primary(items: Any) -> Mapping[str, Any] | None:
    """The entry with ``properties.primary`` true, else the first (Azure's own rule)."""
    entries = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    return next((i for i in entries if props_of(i).get("primary") is True),
                entries[0] if entries else None)


def admin_user(vm: Mapping[str, Any]) -> str | None:
    os_profile = props_of(vm).get("osProfile")
    return text_of(os_profile.get("adminUsername")) if isinstance(os_profile, Mapping) else None


def primary_nic_id(vm: Mapping[str, Any]) -> str | None:
    network = props_of(vm).get("networkProfile")
    nics = network.get("networkInterfaces") if isinstance(network, Mapping) else None
    nic = _primary(nics)
    return None if nic is None else arm_id(nic.get("id"))


def nic_addresses(nic: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(private IP, public IP resource ID) of the NIC's primary IP configuration."""
    config = _primary(props_of(nic).get("ipConfigurations"))
    props = props_of(config)
    public = props.get("publicIPAddress")
    public_id = arm_id(public.get("id")) if isinstance(public, Mapping) else None
    return text_of(props.get("privateIPAddress")), public_id


def public_ip_address(public_ip: Mapping[str, Any]) -> str | None:
    return text_of(props_of(public_ip).get("ipAddress"))


def find_key(candidates: Sequence[Path]) -> Path | None:
    """The first candidate that is a file (azlin's order: first found wins)."""
    return next((path for path in candidates if path.is_file()), None)


# --------------------------------------------------------------------------- I/O helpers
def accepts_tcp(host: str, port: int, timeout: float) -> bool:
    """True if a TCP connect to ``host:port`` completes within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- the address book
@dataclass(frozen=True)
class AzureFacts:
    """What Azure says about one VM's SSH side."""

    resource_id: str
    admin_user: str | None
    location: str | None = None
    addressed: bool = False  # the NIC and public IP were read (not only the VM)
    nic_id: str | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    public_pending: bool = False  # a public IP resource without an address yet


@dataclass
class _Entry:
    where: tuple[str, str]
    facts: AzureFacts
    expires: float
    private_reachable: bool | None = None
    bastion: BastionChoice | None = None
    bastion_until: float = 0.0


@dataclass(frozen=True)
class BastionChoice:
    """The VM's Bastion (``endpoint``), or why it has none it can use (``problem``, a
    sentence saying what to do); neither: its resource group has no Bastion at all."""

    endpoint: BastionEndpoint | None = None
    problem: str | None = None


@dataclass(frozen=True)
class _Way:
    via: str
    host: str | None
    port: int
    bastion: BastionEndpoint | None = None
    fault: SshFault | None = None


class ArmAddressBook:
    """AddressBook over ARM; see the module docstring for the rules."""

    def __init__(self, compute: JsonReader, *, max_age: float = MAX_AGE,
                 private_connect_timeout: float = PRIVATE_CONNECT_TIMEOUT,
                 home: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.compute = compute
        self.max_age = max_age
        self.private_connect_timeout = private_connect_timeout
        self.home = home
        self._clock = clock
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, _Entry] = {}
        self._generation: dict[str, int] = {}
        self._bastion_lists: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self.resolutions = 0  # how many times Azure was asked (for tests and benchmarks)

    # ------------------------------------------------------------------ AddressBook
    def route(self, target: VMTarget) -> SshRoute:
        if target.ssh_resolved:
            return SshRoute(target, "configured address")
        with self._vm_lock(target.name):
            entry = self._entry(target)
            way = self._address(target, entry)
        if way.host is None:
            return SshRoute(None, way.via, way.fault)
        user = target.ssh_user or entry.facts.admin_user or DEFAULT_USER
        key, note = self._key(target)
        resolved = replace(target, ssh_host=way.host, ssh_port=way.port, ssh_user=user,
                           ssh_key=key, bastion=way.bastion)
        return SshRoute(resolved, way.via + note)

    def forget(self, vm_name: str) -> None:
        with self._lock:
            self._entries.pop(vm_name, None)
            self._generation[vm_name] = self._generation.get(vm_name, 0) + 1

    # ------------------------------------------------------------------ cache
    def _vm_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())

    def _entry(self, target: VMTarget) -> _Entry:
        """The cached entry if still good for ``target``, else a fresh one (Azure asked)."""
        where = (target.subscription_id.lower(), target.resource_group.lower())
        need_addresses = target.ssh_host is None
        with self._lock:
            entry = self._entries.get(target.name)
            generation = self._generation.get(target.name, 0)
        if (entry is not None and entry.where == where and self._clock() < entry.expires
                and (entry.facts.addressed or not need_addresses)):
            return entry
        facts = self._read_azure(target, need_addresses)
        age = PENDING_MAX_AGE if facts.public_pending else self.max_age
        entry = _Entry(where, facts, self._clock() + age * random.uniform(0.9, 1.0))
        with self._lock:
            self.resolutions += 1
            if self._generation.get(target.name, 0) == generation:
                self._entries[target.name] = entry  # not if forgotten meanwhile: stale
        return entry

    def _read_azure(self, target: VMTarget, need_addresses: bool) -> AzureFacts:
        sub, rg, name = target.subscription_id, target.resource_group, target.name
        vm_path = f"{list_path(sub, rg)}/{quote(name, safe='')}"
        vm = self.compute.read_json(f"VM {name}", vm_path)
        location = vm.get("location")
        facts = AzureFacts(arm_id(vm.get("id")) or vm_path, admin_user(vm),
                           location if isinstance(location, str) else None)
        if not need_addresses:
            return facts
        nic_id = primary_nic_id(vm)
        if nic_id is None:
            return replace(facts, addressed=True)
        params = {"api-version": NETWORK_API_VERSION}
        nic = self.compute.read_json(f"network interface of VM {name}", nic_id, params)
        private_ip, public_id = nic_addresses(nic)
        public_ip = None
        if public_id is not None:
            public_ip = public_ip_address(self.compute.read_json(
                f"public IP address of VM {name}", public_id, params))
        return replace(facts, addressed=True, nic_id=nic_id, private_ip=private_ip,
                       public_ip=public_ip, public_pending=public_id is not None
                       and public_ip is None)

    # ------------------------------------------------------------------ route choice
    def _address(self, target: VMTarget, entry: _Entry) -> _Way:
        """Where to reach ``target``; ``via`` says why when there is no host."""
        if target.ssh_host is not None:
            return _Way("configured address", target.ssh_host, target.ssh_port)
        facts = entry.facts
        if facts.public_ip is not None:
            return _Way(f"public IP {facts.public_ip}", facts.public_ip, target.ssh_port)
        if facts.private_ip is None:
            nic = facts.nic_id.rsplit("/", 1)[-1] if facts.nic_id else "none"
            return _Way(f"{_NOT_APPLICABLE}: Azure reports no IP address for {target.name} "
                        f"(network interface {nic})", None, target.ssh_port)
        if entry.private_reachable is None:
            entry.private_reachable = accepts_tcp(facts.private_ip, target.ssh_port,
                                                  self.private_connect_timeout)
        if entry.private_reachable:
            return _Way(f"private IP {facts.private_ip}", facts.private_ip, target.ssh_port)
        choice = self._bastion(target, entry)
        if choice.endpoint is not None:
            return _Way(f"Bastion {choice.endpoint.name}", facts.private_ip, target.ssh_port,
                        bastion=choice.endpoint)
        if choice.problem is not None:
            return _Way(f"{SshFault.BASTION_UNUSABLE.value}: {choice.problem}", None,
                        target.ssh_port, fault=SshFault.BASTION_UNUSABLE)
        return _Way(f"{_NOT_APPLICABLE}: only private IP {facts.private_ip}, not reachable "
                    f"from here, and no Azure Bastion in resource group "
                    f"{target.resource_group}",
                    None, target.ssh_port)

    # ------------------------------------------------------------------ Bastion
    def _bastion(self, target: VMTarget, entry: _Entry) -> BastionChoice:
        """The VM's Bastion: the configured one (``target.bastion_ref``), else its resource
        group's in its location (:mod:`..bastion.discovery`), looked up again after
        :data:`MAX_AGE` (after :data:`BASTION_RETRY_AGE` while it cannot be used)."""
        now = self._clock()
        if entry.bastion is not None and now < entry.bastion_until:
            return entry.bastion
        retry = entry.bastion is not None and entry.bastion.problem is not None
        try:
            choice = self._find_bastion(target, entry.facts, fresh=retry)
        except AzureOperationError as exc:
            if exc.code not in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
                raise
            choice = BastionChoice(problem=(
                f"your login may not read the Bastions of resource group "
                f"{target.resource_group} ({exc}): give it the Reader role on them"))
        age = BASTION_RETRY_AGE if choice.problem is not None else self.max_age
        entry.bastion, entry.bastion_until = choice, now + age
        return choice

    def _find_bastion(self, target: VMTarget, facts: AzureFacts, fresh: bool) -> BastionChoice:
        ref = target.bastion_ref
        params = {"api-version": NETWORK_API_VERSION}
        if ref is not None:
            path = discovery.reference_path(ref, target.subscription_id, target.resource_group)
            if path is None:
                return BastionChoice(problem=f'bastion = "{ref}" is neither a Bastion\'s name '
                                     "nor its resource id: fix it in the configuration")
            try:
                body = self.compute.read_json(f"Bastion {ref}", path, params)
            except AzureOperationError as exc:
                if exc.code not in ("ResourceNotFound", "NotFound", "ResourceGroupNotFound"):
                    raise
                return BastionChoice(problem=f'bastion = "{ref}" was not found in Azure: name '
                                     "an existing Bastion, or remove the setting to use the "
                                     "resource group's")
            host = discovery.bastion_host(body)
            hosts = [] if host is None else [host]
            if host is None:
                return BastionChoice(problem=f'bastion = "{ref}" is not a Bastion in Azure')
        else:
            hosts = discovery.bastion_hosts(
                self._bastion_listing(target.subscription_id, target.resource_group, fresh))
            if not hosts:
                return BastionChoice()  # this resource group has no Bastion at all
            host = discovery.choose(hosts, facts.location)
            if host is None:
                return BastionChoice(problem=discovery.missing_in_region(
                    hosts, facts.location, target.resource_group))
        problem = discovery.problem(host)
        if problem is not None:
            return BastionChoice(problem=problem)
        return BastionChoice(endpoint=discovery.endpoint(host, facts.resource_id))

    def _bastion_listing(self, subscription_id: str, resource_group: str,
                         fresh: bool) -> list[Any]:
        """Every Bastion of the resource group (all pages), shared by its VMs."""
        key = (subscription_id.lower(), resource_group.lower())
        with self._vm_lock("/".join(("", *key))):  # a group's lock: no VM name has a "/"
            with self._lock:
                cached = self._bastion_lists.get(key)
            age = BASTION_RETRY_AGE if fresh else self.max_age
            if cached is not None and self._clock() < cached[0] + age:
                return cached[1]
            params = {"api-version": NETWORK_API_VERSION}
            what = f"Bastions of resource group {resource_group}"
            page = self.compute.read_json(what, discovery.list_path(subscription_id,
                                                                     resource_group), params)
            items: list[Any] = list(page.get("value") or [])
            while isinstance(link := page.get("nextLink"), str) and link:
                parts = urlsplit(link)
                page = self.compute.read_json(what, parts.path, dict(parse_qsl(parts.query)))
                items.extend(page.get("value") or [])
            with self._lock:
                self._bastion_lists[key] = (self._clock(), items)
            return items

    def _key(self, target: VMTarget) -> tuple[str, str]:
        """The key path and a note for ``via`` when none of azlin's keys exists."""
        if target.ssh_key is not None:
            return target.ssh_key, ""
        candidates = paths.azlin_key_candidates(self.home)
        found = find_key(candidates)
        if found is not None:
            return str(found), ""
        looked = ", ".join(str(p) for p in candidates)
        return str(candidates[0]), f"; no SSH key found (looked for {looked})"
