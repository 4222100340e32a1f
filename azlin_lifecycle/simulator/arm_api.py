"""The ARM REST API for Microsoft.Compute/virtualMachines, as a pure request -> response
function (the HTTPS plumbing lives in :mod:`.arm_server`)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode

from . import armjson, network_api, signals_api
from .bastion import SimBastion
from .blobs import BlobServer
from .network import SimNetwork
from .response import Response
from .state import ArmError, FleetState, Operation

Json = Any
ControlHandler = Callable[[str, str, Json], tuple[int, Json]]

_SUB = r"^/subscriptions/(?P<sub>[^/]+)"
_VMS = _SUB + r"/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute/virtualmachines"
ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("list", re.compile(_VMS + r"/?$", re.I)),
    ("get", re.compile(_VMS + r"/(?P<vm>[^/]+)$", re.I)),
    ("instance_view", re.compile(_VMS + r"/(?P<vm>[^/]+)/instanceview$", re.I)),
    ("action", re.compile(
        _VMS + r"/(?P<vm>[^/]+)/(?P<action>restart|start|poweroff|deallocate|redeploy)$", re.I)),
    ("boot_diagnostics", re.compile(_VMS + r"/(?P<vm>[^/]+)/retrievebootdiagnosticsdata$", re.I)),
    ("availability", re.compile(_VMS + r"/(?P<vm>[^/]+)/providers/microsoft\.resourcehealth/"
                                r"availabilitystatuses/current$", re.I)),
    ("list_all", re.compile(_SUB + r"/providers/microsoft\.compute/virtualmachines/?$", re.I)),
    ("resource_group", re.compile(_SUB + r"/resourcegroups/(?P<rg>[^/]+)/?$", re.I)),
    ("operation", re.compile(
        _SUB + r"/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)$",
        re.I)),
]
_NET = _SUB + r"/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.network"
ROUTES += [
    ("nic", re.compile(_NET + r"/networkinterfaces/(?P<nic>[^/]+)$", re.I)),
    ("public_ip", re.compile(_NET + r"/publicipaddresses/(?P<pip>[^/]+)$", re.I)),
    ("bastion_list", re.compile(_NET + r"/bastionhosts/?$", re.I)),
    ("bastion_get", re.compile(_NET + r"/bastionhosts/(?P<bastion>[^/]+)$", re.I)),
]
ACTION_NAMES = {"restart": "restart", "start": "start", "poweroff": "powerOff",
                "deallocate": "deallocate", "redeploy": "redeploy"}
RATE_BUCKETS = {  # category -> (header name, bucket size, refill per second)
    "get": ("Microsoft.Compute/LowCostGet3Min", 24000, 8000 / 60),
    "list": ("Microsoft.Compute/HighCostGet3Min", 900, 300 / 60),
    "action": ("Microsoft.Compute/UpdateVM3Min", 1500, 500 / 60),
    "operation": ("Microsoft.Compute/GetOperation3Min", 45000, 15000 / 60),
}
FAULT_CODES = {429: ("TooManyRequests", "The request is being throttled as the limit has been "
                     "reached for operation type - Read_3Min. For more information, see - "
                     "https://aka.ms/throttling"),
               500: ("InternalServerError", "An internal execution error occurred. "
                     "Please retry later."),
               503: ("ServiceUnavailable", "The service is temporarily unavailable. "
                     "Please retry later.")}
# The resource-group list refuses $expand=instanceView without $filter, as real ARM does:
# the REST spec says it "can only be specified if a valid $filter option is specified"
# (VirtualMachines_List; Azure/azure-rest-api-specs#42411). Compute's code for a bad
# query parameter is InvalidParameter, naming it as the target.
EXPAND_REFUSED = ("InvalidParameter", "The $expand option 'instanceView' can only be "
                  "specified if a valid $filter option is specified.", "$expand")
# The login's identity in a 403, as ARM names the caller (the stand-in az's user).
CALLER = ("azlin-simulator@example.invalid", "00000000-0000-0000-0000-0000000000c1")
VM_READ = "Microsoft.Compute/virtualMachines/read"
_ACTIONS = {"nic": network_api.NIC_READ,  # a route's, when not VM_READ
            "public_ip": network_api.PUBLIC_IP_READ,
            "instance_view": "Microsoft.Compute/virtualMachines/instanceView/read",
            "operation": "Microsoft.Compute/locations/operations/read",
            "resource_group": "Microsoft.Resources/subscriptions/resourceGroups/read",
            "delete": "Microsoft.Compute/virtualMachines/delete"}
DENIABLE = ("subscription", "resource_group")


class ArmFaults:
    """Whole-API faults: the next N answers fail, and a fixed delay on every answer.

    ``accept``: the failing requests still take effect (an action starts) and only the
    answer is the error, as when Azure accepts a request but its answer is lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = 0
        self.count = 0
        self.retry_after: float | None = None
        self.accept = False
        self.latency = 0.0

    def set_fault(self, status: int, count: int, retry_after: float | None,
                  accept: bool = False) -> None:
        with self._lock:
            self.status, self.count, self.retry_after = status, count, retry_after
            self.accept = accept

    def take(self) -> tuple[int, float | None, bool] | None:
        with self._lock:
            if self.count <= 0:
                return None
            self.count -= 1
            return self.status, self.retry_after, self.accept


class _RateBuckets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = {k: float(size) for k, (_, size, _) in RATE_BUCKETS.items()}
        self._stamp = time.monotonic()

    def spend(self, category: str) -> str:
        name = RATE_BUCKETS[category][0]
        with self._lock:
            now = time.monotonic()
            elapsed, self._stamp = now - self._stamp, now
            for key, (_, cap, refill) in RATE_BUCKETS.items():
                self._tokens[key] = min(float(cap), self._tokens[key] + elapsed * refill)
            self._tokens[category] = max(0.0, self._tokens[category] - 1)
            return f"{name};{int(self._tokens[category])}"


class ArmApi:
    """``retry_after``: the Retry-After of 202s and InProgress polls; None (the default)
    sends none, as real ARM may not. ``answers`` counts ARM answers by HTTP status."""

    network: SimNetwork | None = None  # NICs and public IPs (set by SimulatedFleet)
    # What the login has no role on: "subscription" (every request under it answers 403
    # AuthorizationFailed) or "resource_group" (the group's requests do, and the
    # subscription's listing leaves its VMs out: ARM lists only what the caller may read).
    denied: str | None = None
    bastion: SimBastion | None = None  # the resource group's Bastion, if the fleet has one
    recorded_pace = False  # Retry-After per action as real ARM sends it (RECORDED_RETRY_AFTER)
    blobs: BlobServer | None = None  # boot diagnostics' blobs (set by SimulatedFleet)
    on_delete: Callable[[str], None] | None = None  # a VM deleted through ARM (its SSH ends)

    def __init__(self, state: FleetState, *, subscription_id: str, page_size: int = 50,
                 retry_after: int | None = None, control: ControlHandler | None = None) -> None:
        self.state = state
        self.subscription_id = subscription_id
        self.page_size = page_size
        self.retry_after = retry_after
        self.control = control
        self.control_token = ""
        self.base_url = ""
        self.faults = ArmFaults()
        self.requests_served = 0
        self.answers: Counter[int] = Counter()
        self._rates = _RateBuckets()
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ entry point
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        path, _, query_text = target.partition("?")
        if path.startswith("/_simulator/"):
            return self._control(method, path, headers, body)
        with self._count_lock:
            self.requests_served += 1
        if self.faults.latency > 0:
            time.sleep(self.faults.latency)
        response = self._arm(method, path, parse_qs(query_text, keep_blank_values=True), headers)
        with self._count_lock:
            self.answers[response.status] += 1
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers.setdefault("x-ms-correlation-request-id", str(uuid.uuid4()))
        return response

    def _control(self, method: str, path: str, headers: Mapping[str, str],
                 body: bytes) -> Response:
        if self.control is None:
            return Response.error(404, "NotFound", "this simulator has no control API")
        if self.control_token and headers.get("x-simulator-token") != self.control_token:
            return Response.error(401, "AuthenticationFailed",
                                  "missing or wrong X-Simulator-Token (see simulator.json)")
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return Response.error(400, "InvalidJson", "the request body is not valid JSON")
        status, value = self.control(method, path[len("/_simulator/"):], payload)
        return Response.json(status, value)

    def _arm(self, method: str, path: str, query: dict[str, list[str]],
             headers: Mapping[str, str]) -> Response:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            return Response.error(
                401, "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": 'Bearer error="invalid_token", error_description='
                 '"The authentication failed because of missing \'Authorization\' header."'})
        fault = self.faults.take()
        if fault is not None:
            status, retry_after, accept = fault
            if accept:
                self._route(method, path, query)  # takes effect; its answer is lost
            code, message = FAULT_CODES.get(status, ("InternalServerError",
                                                     FAULT_CODES[500][1]))
            extra = {} if retry_after is None else {"Retry-After": _seconds(retry_after)}
            return Response.error(status, code, message, extra)
        return self._route(method, path, query)

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> Response:
        if "api-version" not in query:
            return Response.error(400, "MissingApiVersionParameter",
                                  "The api-version query parameter (?api-version=) is required "
                                  "for all requests.")
        for kind, pattern in ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            wanted = "POST" if kind in ("action", "boot_diagnostics") else "GET"
            if kind == "get" and method == "DELETE":
                kind = wanted = "delete"
            if method != wanted.upper():
                return Response.error(405, "MethodNotAllowed",
                                      f"The requested resource does not support http method "
                                      f"'{method}'.")
            groups = match.groupdict()
            if groups["sub"].lower() != self.subscription_id.lower():
                return Response.error(404, "SubscriptionNotFound",
                                      f"The subscription '{groups['sub']}' could not be found.")
            try:
                if self.denied == "subscription":
                    raise _forbidden(_ACTIONS.get(kind, VM_READ), f"/subscriptions/{groups['sub']}")
                return getattr(self, f"_{kind}")(groups, query)  # type: ignore[no-any-return]
            except ArmError as exc:
                return Response.json(exc.status, armjson.error_body(
                    exc.code, exc.message, details=exc.details))
        return Response.error(404, "NotFound",
                              f"No HTTP resource was found that matches the request URI "
                              f"'{self.base_url}{path}'.")

    # ------------------------------------------------------------------ routes
    def _check_rg(self, rg: str, action: str = VM_READ) -> str:
        """The group's name as the fleet spells it; 404 for another group, and 403 while
        the login may not read it (``action``: what the request needs, for the message)."""
        if rg.lower() != self.state.resource_group.lower():
            raise ArmError(404, "ResourceGroupNotFound",
                           f"Resource group '{rg}' could not be found.")
        if self.denied == "resource_group":
            raise _forbidden(action, f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}")
        return self.state.resource_group

    def _get(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        rg = self._check_rg(groups["rg"])
        expand = _expand(query)
        with self.state.lock:
            vm = self.state.require(groups["vm"])
            body = armjson.vm_body(vm, self.subscription_id, rg, expand)
        return Response.json(200, body, self._rate("get"))

    def _delete(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        """Delete a VM at once: 200, or 204 for one that does not exist (as ARM answers)."""
        self._check_rg(groups["rg"], _ACTIONS["delete"])
        with self.state.lock:
            if self.state.find(groups["vm"]) is None:
                return Response(204, b"", self._rate("action"))
            self.state.remove_vm(groups["vm"])
        if self.on_delete is not None:
            self.on_delete(groups["vm"])
        return Response(200, b"", self._rate("action"))

    def _resource_group(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        rg = self._check_rg(groups["rg"], _ACTIONS["resource_group"])
        return Response.json(200, armjson.resource_group_body(self.subscription_id, rg),
                             self._rate("get"))

    def _instance_view(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        self._check_rg(groups["rg"], _ACTIONS["instance_view"])
        with self.state.lock:
            body = armjson.instance_view(self.state.require(groups["vm"]))
        return Response.json(200, body, self._rate("get"))

    _availability = signals_api.availability  # Resource Health (what Azure knows of a VM)
    _boot_diagnostics = signals_api.boot_diagnostics
    _nic = network_api.nic  # Microsoft.Network: where a VM's SSH answers, and its Bastion
    _public_ip = network_api.public_ip
    _bastion_list = network_api.bastion_list
    _bastion_get = network_api.bastion_get

    def _list(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        rg = self._check_rg(groups["rg"])
        expand = _expand(query)
        if expand and not query.get("$filter"):
            code, message, target = EXPAND_REFUSED
            return Response.error(400, code, message, target=target)
        return self._page(
            query, lambda vms: [armjson.vm_body(vm, self.subscription_id, rg, expand)
                                for vm in _unfiltered(vms, query)],
            f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/"
            "Microsoft.Compute/virtualMachines")

    def _list_all(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        rg = self.state.resource_group
        status_only = query.get("statusOnly", [""])[0].lower() == "true"
        expand = _expand(query)
        if expand and not query.get("$filter"):
            code, message, target = EXPAND_REFUSED
            return Response.error(400, code, message, target=target)
        if self.denied == "resource_group":  # the group's VMs are not the caller's to see
            return Response.json(200, {"value": []}, self._rate("list"))
        return self._page(
            query, lambda vms: [
                armjson.status_only_body(vm, self.subscription_id, rg) if status_only
                else armjson.vm_body(vm, self.subscription_id, rg, expand)
                for vm in _unfiltered(vms, query)],
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/virtualMachines")

    def _page(self, query: dict[str, list[str]], render: Callable[[list[Any]], list[Json]],
              path: str) -> Response:
        try:
            start = int(query.get("$skiptoken", ["0"])[0] or 0)
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The skip token is not valid.") from None
        with self.state.lock:
            vms = self.state.all()
            page = render(vms[start:start + self.page_size])
        body: dict[str, Json] = {"value": page}
        if start + self.page_size < len(vms):
            params = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = str(start + self.page_size)
            body["nextLink"] = f"{self.base_url}{path}?{urlencode(params)}"
        return Response.json(200, body, self._rate("list"))

    def _action(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        self._check_rg(groups["rg"], f"Microsoft.Compute/virtualMachines/"
                                     f"{groups['action'].lower()}/action")
        op = self.state.begin(groups["vm"], ACTION_NAMES[groups["action"].lower()])
        status_url = (f"{self.base_url}/subscriptions/{self.subscription_id}/providers/"
                      f"Microsoft.Compute/locations/{armjson.LOCATION}/operations/{op.id}"
                      f"?p={op.vm}&api-version={armjson.API_VERSION}")
        return Response(202, b"", {
            "Azure-AsyncOperation": status_url,
            "Location": status_url + "&monitor=true",
            **self._retry_after(op.action, accepted=True),
            **self._rate("action"),
        })

    def _operation(self, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
        op = self.state.operation(groups["op"])
        if op is None:
            raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
        rate = self._rate("operation")
        with self.state.lock:
            op.polls.append(time.time())
            snapshot = Operation(**vars(op))
        if query.get("monitor", [""])[0].lower() == "true":
            return self._monitor(snapshot, rate)
        body: dict[str, Json] = {"name": snapshot.id, "startTime": armjson.iso(snapshot.started),
                                 "status": snapshot.status}
        if snapshot.ended is not None:
            body["endTime"] = armjson.iso(snapshot.ended)
        if snapshot.error_code is not None:
            body["error"] = {"code": snapshot.error_code, "message": snapshot.error_message}
        if snapshot.status == "InProgress":
            rate.update(self._retry_after(snapshot.action))
        return Response.json(200, body, rate)

    def _monitor(self, op: Operation, rate: dict[str, str]) -> Response:
        if op.status == "InProgress":
            return Response(202, b"", {**rate, **self._retry_after(op.action)})
        if op.status == "Succeeded":
            return Response(200, b"", rate)
        return Response.error(500 if op.status == "Failed" else 409,
                              op.error_code or "OperationCanceled",
                              op.error_message or "The operation was canceled.", rate)

    def _retry_after(self, action: str, accepted: bool = False) -> dict[str, str]:
        seconds = self.retry_after
        if self.recorded_pace:
            seconds = armjson.RECORDED_RETRY_AFTER.get(action, (None, None))[not accepted]
        return {} if seconds is None else {"Retry-After": str(seconds)}

    def _rate(self, category: str) -> dict[str, str]:
        return {"x-ms-ratelimit-remaining-resource": self._rates.spend(category)}

    # ------------------------------------------------------------------ Microsoft.Network


def _expand(query: dict[str, list[str]]) -> bool:
    return any(v.lower() == "instanceview" for v in query.get("$expand", []))


def _unfiltered(vms: list[Any], query: dict[str, list[str]]) -> list[Any]:
    """The VMs a list answers: with a ``$filter`` (only ``virtualMachineScaleSet/id`` is
    allowed) none, since no simulated VM belongs to a scale set."""
    return [] if query.get("$filter") else vms


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _forbidden(action: str, scope: str) -> ArmError:
    """ARM's 403 for a caller whose roles do not allow ``action`` on ``scope``."""
    name, object_id = CALLER
    return ArmError(
        403, "AuthorizationFailed",
        f"The client '{name}' with object id '{object_id}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access "
        "was recently granted, please refresh your credentials.")
