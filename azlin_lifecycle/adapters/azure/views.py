"""ARM's VM JSON, read into this project's models (pure: no I/O).

The same functions read a decoded REST response and an azure-mgmt-compute model (a
mapping of Azure's own names), so monitoring's plain-JSON reads and the SDK's repairs
agree on what a power state, an agent or a provisioning failure is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ...models import MaintenanceWindow, PowerInfo, VMState


# --------------------------------------------------------------------------- pure mapping
def power_info_from_view(view: Mapping[str, Any] | None) -> PowerInfo:
    """PowerInfo from an instance view: PowerState/*, ProvisioningState/*, vmAgent, vmHealth.

    ``view`` is the REST JSON (Azure's names: ``statuses``, ``vmAgent``,
    ``displayStatus``) — a decoded response, or an azure-mgmt-compute model, which is a
    mapping of the same names.
    """
    if view is None:
        return PowerInfo(VMState.UNKNOWN, message="Azure returned no instance view")
    power: str | None = None
    provisioning: str | None = None
    provisioned_at: str | None = None
    for status in view.get("statuses") or []:
        code = status.get("code") or ""
        if code.startswith("PowerState/") and power is None:
            power = code
        elif code.startswith("ProvisioningState/") and provisioning is None:
            provisioning = code.split("/", 1)[1]
            provisioned_at = _time_text(status.get("time"))
    agent = ((view.get("vmAgent") or {}).get("statuses") or [{}])[0]
    health = ((view.get("vmHealth") or {}).get("status") or {}).get("code") or ""
    return PowerInfo(
        VMState.from_power_code(power), provisioning, agent.get("displayStatus"),
        agent_time=parse_time(agent.get("time")), agent_message=agent.get("message"),
        vm_health=health.split("/", 1)[1].lower() if health.startswith("HealthState/") else None,
        provisioning_time=provisioned_at,
        maintenance=maintenance_of(view.get("maintenanceRedeployStatus")),
    )


def maintenance_of(status: Mapping[str, Any] | None) -> MaintenanceWindow | None:
    """``maintenanceRedeployStatus`` (present only while planned maintenance that needs a
    reboot is scheduled) as a MaintenanceWindow."""
    if not status:
        return None

    def epoch(key: str) -> float | None:
        parsed = parse_time(status.get(key))
        return None if parsed is None else parsed.timestamp()

    allowed = status.get("isCustomerInitiatedMaintenanceAllowed")
    result = status.get("lastOperationResultCode")
    message = status.get("lastOperationMessage")
    return MaintenanceWindow(
        start=epoch("maintenanceWindowStartTime"), end=epoch("maintenanceWindowEndTime"),
        customer_allowed=allowed if isinstance(allowed, bool) else None,
        last_result=None if result is None else str(result),
        last_message=None if message is None else str(message))


def _time_text(value: Any) -> str | None:
    """A status's ``time`` as ISO 8601 text, to the microsecond, the same from JSON and
    from an SDK model (which holds a datetime; Azure writes seven fractional digits)."""
    parsed = parse_time(value)
    return None if parsed is None else parsed.isoformat()


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time from JSON (an SDK model already holds a datetime)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def tags_of(vm: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A VM's top-level ``tags`` (a listing's item carries them) as (name, value) pairs."""
    tags = vm.get("tags")
    if not isinstance(tags, Mapping):
        return ()
    return tuple((str(k), "" if v is None else str(v)) for k, v in tags.items())


def view_of(vm: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The instance view inside a VM's JSON (``properties.instanceView``), if any."""
    view: Mapping[str, Any] | None = (vm.get("properties") or {}).get("instanceView")
    return view


def provisioning_failure(view: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(code, message) of a ``ProvisioningState/failed/<Code>`` status, if there is one."""
    for status in (view or {}).get("statuses") or []:
        code = str(status.get("code") or "")
        if code.lower().startswith("provisioningstate/failed"):
            failed = code.split("/", 2)[2] if code.count("/") >= 2 else "ProvisioningFailed"
            return failed, str(status.get("message") or status.get("displayStatus") or failed)
    return None


def props_of(obj: Any) -> Mapping[str, Any]:
    """An ARM object's ``properties`` ({} when it has none, or is not an object)."""
    props = obj.get("properties") if isinstance(obj, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def text_of(value: Any) -> str | None:
    """A JSON string with something in it, trimmed; else None."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def resource_group_of(resource_id: str | None) -> str | None:
    """``RG`` from ``/subscriptions/S/resourceGroups/RG/providers/...``."""
    parts = (resource_id or "").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return None
