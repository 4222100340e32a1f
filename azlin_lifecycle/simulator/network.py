"""Each simulated VM's NIC and public IP, with loopback addresses standing in for Azure's.

A VM's public IP is 127.1.H.L and its private IP 127.2.H.L (never a real private range):
its SSH endpoint also listens on the public IP (and always on 127.0.0.1, for configs
that name the host), while nothing listens on the private IP, so "reachable from here"
is false for it, as for a real VNet address seen from outside.

Like a Basic-SKU dynamic public IP, the address is released while the VM is deallocated
(the resource stays, without ``ipAddress``) and a different one is assigned when it starts
again; a redeploy gives a different one too. A private-only VM has no public IP resource.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass

from .state import SimVM

PUBLIC_BASE = ipaddress.IPv4Address("127.1.0.0")
PRIVATE_BASE = ipaddress.IPv4Address("127.2.0.0")
_RELEASED = ("deallocated",)


@dataclass
class VmAddresses:
    private_ip: str
    public_ip: str | None  # None: released (deallocated) or private-only
    has_public: bool = True  # False: private-only (no public IP resource at all)
    last_power: str = "running"
    last_redeploy: str | None = None


def _host(base: ipaddress.IPv4Address, n: int) -> str:
    """The n-th address (n >= 0) under ``base``, skipping .0 and .255 in each /24."""
    n %= 254 * 256  # stay inside base's /16
    return str(base + (n // 254) * 256 + n % 254 + 1)


class SimNetwork:
    """Addresses of every VM; ``observe(vm)`` after each change says if the public IP moved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vms: dict[str, VmAddresses] = {}
        self._allocated = 0

    def add(self, name: str, index: int) -> VmAddresses:
        with self._lock:
            entry = VmAddresses(private_ip=_host(PRIVATE_BASE, index),
                                public_ip=self._next_public())
            self._vms[name.lower()] = entry
            return entry

    def get(self, name: str) -> VmAddresses | None:
        return self._vms.get(name.lower())

    def describe(self, name: str) -> dict[str, str | None]:
        entry = self._vms[name.lower()]
        return {"public_ip": entry.public_ip, "private_ip": entry.private_ip}

    def set_public(self, name: str, has_public: bool) -> VmAddresses:
        """Give VM ``name`` a (new) public IP, or take it away (private-only)."""
        with self._lock:
            entry = self._vms[name.lower()]
            entry.has_public = has_public
            entry.public_ip = self._next_public() if has_public else None
            return entry

    def observe(self, vm: SimVM) -> bool:
        """Follow ``vm``'s power state and operations; True if its public IP changed."""
        with self._lock:
            entry = self._vms[vm.name.lower()]
            before = entry.public_ip
            redeploy = (vm.current.id if vm.current is not None
                        and vm.current.action == "redeploy" else None)
            if entry.has_public and vm.power in _RELEASED:
                entry.public_ip = None  # a dynamic public IP is released while deallocated
            elif entry.has_public and (entry.last_power in _RELEASED
                                       or (redeploy and redeploy != entry.last_redeploy)):
                entry.public_ip = self._next_public()
            entry.last_power = vm.power
            if redeploy:
                entry.last_redeploy = redeploy
            return entry.public_ip != before

    def _next_public(self) -> str:
        address = _host(PUBLIC_BASE, self._allocated)
        self._allocated += 1
        return address
