"""What the stand-in Azure knows of a VM beyond its power state: Resource Health's
``availabilityStatuses/current``, boot diagnostics (``retrieveBootDiagnosticsData`` and the
serial log and screenshot it points at, served by :mod:`.blobs`), as pure functions of a
:class:`~.state.SimVM` (the routes live in :mod:`.arm_api`).

Resource Health follows the power state unless set by hand (``simulate health``): running
is Available; stopped or deallocated through ARM (powerOff, deallocate: a person or a
tool) is Unavailable, "Customer Initiated"; stopped from outside (``simulate power``) is
Unavailable, not attributed. A platform outage set by hand and then cleared is reported as
``recentlyResolved``. Shapes follow the REST spec's examples (2025-05-01); the annotation's
name travels in ``annotationName`` (the name Resource Graph and Event Grid give it; the
REST spec has no field for it — an assumption, like the 409's wording when boot
diagnostics are off).
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any

from ..signals import CUSTOMER, DEGRADED, PLANNED, PLATFORM_UNPLANNED
from . import armjson
from .response import Response
from .state import ArmError, SimVM, SshMode

if TYPE_CHECKING:
    from .arm_api import ArmApi

HEALTH_API_VERSIONS = ("2018-07-01", "2020-05-01", "2022-10-01", "2024-02-01", "2025-05-01")
HEALTH_STATES = ("available", "unavailable", "degraded", "unknown", "auto")
BOOT_DIAGNOSTICS = ("on", "off", "hang")
BOOT_DIAGNOSTICS_OFF = ("OperationNotAllowed", "Boot diagnostics is not enabled for this "
                        "virtual machine. Enable boot diagnostics and try again.")
FILLER_BYTES = 1_300_000  # a long-running VM's serial log is past the 1 MB a capture takes


# --------------------------------------------------------------------------- Resource Health
def health_properties(state: str, annotation: str | None = None, context: str | None = None,
                      category: str | None = None, reason_type: str | None = None,
                      summary: str | None = None, eta_minutes: float | None = None,
                      ) -> dict[str, Any] | None:
    """The ``properties`` a ``simulate health`` sets (None: ``auto``, follow the power state);
    an annotation's known meaning fills in what is not given."""
    if state not in HEALTH_STATES:
        raise ValueError(f"unknown Resource Health state {state!r}; use one of "
                         + ", ".join(HEALTH_STATES))
    if state == "auto":
        return None
    if annotation in PLATFORM_UNPLANNED | PLANNED | DEGRADED:
        context = context or "Platform Initiated"
        category = category or ("Planned" if annotation in PLANNED else "Unplanned")
        reason_type = reason_type or category
    elif annotation in CUSTOMER:
        context, reason_type = context or "Customer Initiated", reason_type or "UserInitiated"
    props: dict[str, Any] = {"availabilityState": state.capitalize(), "title": state.capitalize(),
                             "summary": summary or _SUMMARIES.get(annotation or state, state),
                             "reasonChronicity": "Transient"}
    for key, value in (("annotationName", annotation), ("context", context),
                       ("category", category), ("reasonType", reason_type)):
        if value:
            props[key] = value
    if eta_minutes is not None:
        props["resolutionETA"] = armjson.iso(time.time() + eta_minutes * 60)
    return props


_SUMMARIES = {
    "VirtualMachineHostCrashed": "We're sorry, your virtual machine isn't available because an "
                                 "unexpected failure on the host server. Azure is working on it.",
    "VirtualMachineStorageOffline": "The virtual machine is rebooting or experiencing an "
                                    "application freeze because of a temporary loss of access "
                                    "to disk.",
    "VirtualMachinePossiblyDegradedDueToHardwareFailure":
        "Azure predicts a hardware failure on the host server; redeploy the VM to another host.",
    "unknown": "We're sorry, we can't determine the health of this virtual machine.",
    "available": "This virtual machine is running normally",
}


def availability_body(vm: SimVM, subscription_id: str, resource_group: str) -> dict[str, Any]:
    now = time.time()
    if vm.health is not None:
        props = {k: v for k, v in vm.health.items() if not k.startswith("_")}
        props.setdefault("occuredTime", armjson.iso(vm.health["_since"]))
    elif vm.power in ("running", "starting"):
        props = {"availabilityState": "Available", "title": "Available",
                 "summary": "This virtual machine is running normally",
                 "reasonChronicity": "Persistent", "occuredTime": armjson.iso(vm.changed),
                 "detailedStatus": "There aren't any known Azure platform problems affecting "
                                   "this virtual machine"}
        if vm.resolved is not None and now - vm.resolved[1] < 86400:
            props["recentlyResolved"] = {"unavailableOccuredTime": armjson.iso(vm.resolved[0]),
                                         "resolvedTime": armjson.iso(vm.resolved[1]),
                                         "unavailableSummary": vm.resolved[2]}
    else:
        what = "stopped and deallocated" if "dealloc" in vm.power else "stopped"
        props = {"availabilityState": "Unavailable", "title": what.capitalize(),
                 "reasonChronicity": "Persistent", "occuredTime": armjson.iso(vm.changed)}
        if vm.stopped_by:
            props.update(summary=f"This virtual machine is {what} as requested by an "
                                 "authorized user or process", context="Customer Initiated",
                         reasonType="UserInitiated", category="Not Applicable",
                         annotationName="VirtualMachineDeallocationInitiated"
                         if vm.stopped_by == "deallocate"
                         else "VirtualMachineStopInitiatedByControlPlane")
        else:
            props.update(summary=f"This virtual machine is {what}", context="Unknown")
    props["reportedTime"] = armjson.iso(now)
    rid = armjson.vm_path(subscription_id, resource_group, vm.name)
    return {"id": f"{rid}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
            "name": "current", "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
            "location": armjson.LOCATION, "properties": props}


def availability(api: ArmApi, groups: dict[str, str], query: dict[str, list[str]]) -> Response:
    rg = api._check_rg(groups["rg"], "Microsoft.ResourceHealth/availabilityStatuses/read")
    version = query.get("api-version", [""])[0]
    if version not in HEALTH_API_VERSIONS:
        raise ArmError(400, "InvalidApiVersionParameter",
                       f"The api-version '{version}' is invalid. The supported versions are "
                       f"'{', '.join(HEALTH_API_VERSIONS)}'.")
    with api.state.lock:
        body = availability_body(api.state.require(groups["vm"]), api.subscription_id, rg)
    return Response.json(200, body)


# --------------------------------------------------------------------------- boot diagnostics
def boot_diagnostics(api: ArmApi, groups: dict[str, str],
                     query: dict[str, list[str]]) -> Response:
    """``POST .../retrieveBootDiagnosticsData``: SAS URLs of the two blobs."""
    api._check_rg(groups["rg"], "Microsoft.Compute/virtualMachines/"
                                "retrieveBootDiagnosticsData/action")
    raw = query.get("sasUriExpirationTimeInMinutes", ["120"])[0]
    if not raw.isdigit() or not 1 <= int(raw) <= 1440:
        raise ArmError(400, "InvalidParameter", "The value of parameter "
                       "sasUriExpirationTimeInMinutes is out of range. The value must be "
                       "between 1 and 1440, inclusive.")
    with api.state.lock:
        vm = api.state.require(groups["vm"])
        if vm.boot_diagnostics == "off":
            raise ArmError(409, *BOOT_DIAGNOSTICS_OFF)
        name, vm_id = vm.name, vm.vm_id
    if api.blobs is None:
        raise ArmError(500, "InternalServerError", "this stand-in serves no blobs")
    minutes = int(raw)
    return Response.json(200, {
        "consoleScreenshotBlobUri": api.blobs.issue(name, vm_id, "screenshot", minutes),
        "serialConsoleLogBlobUri": api.blobs.issue(name, vm_id, "serial", minutes)})


def serial_log(vm: SimVM) -> bytes:
    """What the host recorded from the VM's serial port: a long history, a banner per boot,
    and, while the guest is hung, the kernel's hung-task trace (what SSH cannot show)."""
    line = b"[%11.6f] systemd[1]: Started Daily apt download activities.\n"
    filler = b"".join(line % (n * 0.5) for n in range(FILLER_BYTES // len(line % 0.0) + 1))
    parts = [filler]
    for n, _ in enumerate(vm.boots):
        parts.append((
            "[    0.000000] Linux version 5.15.0-1064-azure (buildd@lcy02-amd64-026) #73-Ubuntu "
            "SMP Tue Apr 30 14:24:35 UTC 2024\n"
            f"[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=PARTUUID=1 ro "
            f"console=tty1 console=ttyS0 (boot {n + 1})\n"
            f"[    4.120001] cloud-init[612]: Cloud-init v. 24.1 finished\n\n"
            f"Ubuntu 22.04.4 LTS {vm.name} ttyS0\n\n{vm.name} login: \n").encode())
    if vm.power == "running" and vm.booted and vm.ssh_mode is SshMode.HUNG:
        parts.append(HUNG_TASK_TRACE.encode())
    return b"".join(parts)


HUNG_TASK_TRACE = """\
[ 8642.512093] INFO: task jbd2/sda1-8:245 blocked for more than 120 seconds.
[ 8642.512160]       Not tainted 5.15.0-1064-azure #73-Ubuntu
[ 8642.512187] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[ 8642.512214] task:jbd2/sda1-8     state:D stack:    0 pid:  245 ppid:     2 flags:0x00004000
[ 8642.512221] Call Trace:
[ 8642.512224]  <TASK>
[ 8642.512229]  __schedule+0x2cd/0x890
[ 8642.512239]  schedule+0x69/0x110
[ 8642.512243]  io_schedule+0x46/0x80
[ 8642.512247]  bit_wait_io+0x11/0x70
[ 8642.512251]  __wait_on_bit+0x31/0xa0
[ 8642.512259]  jbd2_journal_commit_transaction+0x1004/0x1a50
[ 8642.512276]  kjournald2+0xb3/0x290
[ 8642.512289]  </TASK>
[ 8642.512401] INFO: task sshd:1187 blocked for more than 120 seconds.
"""


def screenshot(width: int = 80, height: int = 25) -> bytes:
    """A small black 24-bit BMP: the console's picture (the stand-in draws no text)."""
    row = (width * 3 + 3) & ~3
    pixels = bytes(row * height)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835,
                       0, 0)
    return header + info + pixels
