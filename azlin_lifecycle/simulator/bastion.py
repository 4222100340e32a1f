"""A stand-in Azure Bastion: its ARM resource and its data plane, on 127.0.0.1 over TLS.

The ARM side (``Microsoft.Network/bastionHosts``, listed and read through
:mod:`.arm_api`) shows one Bastion in the fleet's resource group, ``azlin-bastion-<region>``,
Standard SKU with native client support, its ``dnsName`` being this data plane
(``127.0.0.1:PORT``: real ones are host names on 443).

The data plane speaks the protocol the Azure CLI's ``bastion`` extension speaks:

* ``POST /api/tokens`` (form-encoded; 500 to a JSON body or an ``Authorization`` header, as
  the real service answers): ``aztoken`` must be a token the fleet's stand-in ``az`` issued
  (its tenant, an ARM audience, not expired), ``resourceId`` a VM of the fleet,
  ``protocol=tcptunnel``; ``token`` (+ ``X-Node-Id``) re-exchanges a session issued for the
  same VM. Answer: ``authToken``, ``nodeId``, ``websocketToken``.
* ``GET /webtunnelv2/{websocketToken}?X-Node-Id={nodeId}`` (Standard, Premium) or
  ``/omni/webtunnel/{websocketToken}`` (Developer): a WebSocket (each token once) whose
  binary frames are piped to the VM's real SSH server and back. The VM closing its end
  closes the WebSocket with code 1000; a VM that refuses closes it at once, likewise.
* ``DELETE /api/tokens/{authToken}`` with ``X-Node-Id``: the session ends (404 if unknown).

This module keeps the Bastion's state: its resource, the sessions, the faults, and the
token exchange's answers; :mod:`.bastion_plane` is the TLS server in front of it. Faults
(:class:`BastionMode`) come through ``azlin lifecycle simulate bastion MODE``. Nothing here
logs a token or a path that carries one.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from .azcli import TENANT_ID
from .state import FleetState

if TYPE_CHECKING:
    from .bastion_plane import _Tunnel

log = logging.getLogger(__name__)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's
DROP_AFTER_BYTES = 1500  # in the drop mode, a new tunnel is cut after this much from the VM
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
ELSEWHERE = "westus2"


class BastionMode(StrEnum):
    """How the stand-in Bastion behaves."""

    UP = "up"
    TUNNELING_DISABLED = "tunneling_disabled"  # enableTunneling false in ARM
    BASIC = "basic"  # sku Basic in ARM
    DEVELOPER = "developer"  # sku Developer: tunnels on /omni/webtunnel
    MISSING = "missing"  # no Bastion in the resource group
    ELSEWHERE = "elsewhere"  # the resource group's Bastion is in another region
    EXCHANGE_401 = "exchange_401"
    EXCHANGE_403 = "exchange_403"
    EXCHANGE_500 = "exchange_500"
    DROP = "drop"  # open tunnels are cut now, new ones mid-session (no close frame)
    REFUSE = "refuse"  # the WebSocket upgrade is answered 503
    DOWN = "down"  # the data plane refuses connections
    HANG = "hang"  # the data plane accepts TCP and then says nothing (not even TLS)


@dataclass
class _Session:
    vm: str
    port: int
    auth_token: str
    node_id: str
    websocket_token: str
    used: bool = False
    ended: bool = False


class SimBastion:
    """The stand-in Bastion of one fleet. ``audiences``: the ARM audiences an ``aztoken``
    may have; ``vm_port(name)``: the SSH port of a VM of the fleet (None if there is none)."""

    def __init__(self, state: FleetState, *, subscription_id: str, location: str,
                 context: ssl.SSLContext, audiences: tuple[str, ...],
                 vm_port: Callable[[str], int | None]) -> None:
        self.state = state
        self.subscription_id = subscription_id
        self.location = location
        self.audiences = tuple(a.rstrip("/") for a in audiences)
        self.vm_port = vm_port
        self.mode = BastionMode.UP
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}  # authToken -> session
        self._tunnels: set[_Tunnel] = set()
        self.secrets_seen: list[str] = []  # every token issued or received (tests look for leaks)
        self.counts: dict[str, int] = {"exchanges": 0, "reexchanges": 0, "deletes": 0,
                                       "tunnels": 0, "refused": 0}
        from .bastion_plane import DataPlane

        self.plane = DataPlane(self, context)

    # ------------------------------------------------------------------ ARM's view
    @property
    def dns_name(self) -> str:
        return f"127.0.0.1:{self.plane.port}"

    @property
    def region(self) -> str:
        return ELSEWHERE if self.mode is BastionMode.ELSEWHERE else self.location

    @property
    def name(self) -> str:
        return f"azlin-bastion-{self.region}"

    def exists(self) -> bool:
        return self.mode is not BastionMode.MISSING

    def sku(self) -> str:
        return {BastionMode.BASIC: "Basic", BastionMode.DEVELOPER: "Developer"}.get(
            self.mode, "Standard")

    def tunneling(self) -> bool:
        return self.mode is not BastionMode.TUNNELING_DISABLED and self.sku() == "Standard"

    def describe(self) -> dict[str, Any]:
        """What ``simulate status`` shows (no secrets)."""
        with self._lock:
            return {"name": self.name, "mode": self.mode.value, "dns_name": self.dns_name,
                    "sku": self.sku(), "location": self.region,
                    "open_tunnels": len(self._tunnels), **self.counts}

    # ------------------------------------------------------------------ faults
    def set_mode(self, mode: BastionMode) -> None:
        with self._lock:
            self.mode = BastionMode(mode)
            tunnels = list(self._tunnels) if self.mode is BastionMode.DROP else []
        self.plane.set_listening(self.mode is not BastionMode.DOWN)
        for tunnel in tunnels:
            tunnel.cut()

    # ------------------------------------------------------------------ the data plane's API
    def exchange(self, form: dict[str, str], node_header: str | None) -> tuple[int, Any]:
        """POST /api/tokens, checked as the real service would; (status, JSON)."""
        self._saw(form.get("aztoken"), form.get("token"), node_header)
        mode = self.mode
        if mode is BastionMode.EXCHANGE_401:
            return 401, {"message": "The access token is invalid or has expired."}
        if mode is BastionMode.EXCHANGE_403:
            return 403, {"message": "The client does not have authorization to access the "
                                    "target resource."}
        if mode is BastionMode.EXCHANGE_500:
            return 500, {"message": "An error occurred while processing the request."}
        if form.get("protocol") != "tcptunnel":
            return 400, {"message": "Unsupported protocol."}
        if not self._valid_aztoken(form.get("aztoken", "")):
            return 401, {"message": "The access token is invalid or has expired."}
        vm = self._vm_of(form.get("resourceId", ""))
        if vm is None:
            return 404, {"message": "The target resource was not found."}
        try:
            port = int(form.get("workloadHostPort", "22"))
        except ValueError:
            return 400, {"message": "Invalid workloadHostPort."}
        with self._lock:
            previous = form.get("token")
            if previous:
                old = self._sessions.get(previous)
                if old is None or old.ended or old.vm != vm or old.node_id != node_header:
                    return 401, {"message": "The session token is invalid."}
                old.ended = True
                self.counts["reexchanges"] += 1
            session = _Session(vm, port, secrets.token_urlsafe(32), uuid.uuid4().hex,
                               secrets.token_urlsafe(48))
            self._sessions[session.auth_token] = session
            self.counts["exchanges"] += 1
            self.secrets_seen.extend((session.auth_token, session.node_id,
                                      session.websocket_token))
        return 200, {"authToken": session.auth_token, "nodeId": session.node_id,
                     "websocketToken": session.websocket_token}

    def delete(self, auth_token: str, node_header: str | None) -> int:
        with self._lock:
            session = self._sessions.get(auth_token)
            if session is None or session.ended or session.node_id != node_header:
                return 404
            session.ended = True
            self.counts["deletes"] += 1
            tunnels = [t for t in self._tunnels if t.session is session]
        for tunnel in tunnels:
            tunnel.close_normally()
        return 200

    def session_for_websocket(self, path: str, query: str) -> _Session | None:
        """The unused session a WebSocket path names, on the path the SKU serves."""
        developer = self.sku() == "Developer"
        prefix = "/omni/webtunnel/" if developer else "/webtunnelv2/"
        if not path.startswith(prefix):
            return None
        token = unquote(path[len(prefix):])
        node = parse_qs(query).get("X-Node-Id", [None])[0]
        with self._lock:
            for session in self._sessions.values():
                if (session.websocket_token == token and not session.used and not session.ended
                        and (developer or node == session.node_id)):
                    session.used = True
                    return session
        return None

    # ------------------------------------------------------------------ helpers
    def _saw(self, *values: str | None) -> None:
        with self._lock:
            self.secrets_seen.extend(v for v in values if v)

    def _valid_aztoken(self, token: str) -> bool:
        """A JWT as the fleet's stand-in ``az`` issues them (see :mod:`.azcli`)."""
        parts = token.split(".")
        if len(parts) != 3 or parts[2] != "simulator":
            return False
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return False
        if not isinstance(claims, dict):
            return False
        return (claims.get("tid") == TENANT_ID
                and str(claims.get("aud", "")).rstrip("/") in self.audiences
                and isinstance(claims.get("exp"), int) and claims["exp"] > time.time())

    def _vm_of(self, resource_id: str) -> str | None:
        parts = resource_id.strip("/").split("/")
        if (len(parts) != 8 or parts[0].lower() != "subscriptions"
                or parts[1].lower() != self.subscription_id.lower()
                or parts[3].lower() != self.state.resource_group.lower()
                or "/".join(parts[4:7]).lower() != "providers/microsoft.compute/virtualmachines"):
            return None
        vm = self.state.find(parts[7])
        return None if vm is None else vm.name

    def _track(self, tunnel: _Tunnel, add: bool) -> None:
        with self._lock:
            if add:
                self._tunnels.add(tunnel)
                self.counts["tunnels"] += 1
            else:
                self._tunnels.discard(tunnel)

    def _refused(self) -> None:
        with self._lock:
            self.counts["refused"] += 1

    def stop(self) -> None:
        with self._lock:
            tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.cut()
        self.plane.stop()


# --------------------------------------------------------------------------- the tunnel
