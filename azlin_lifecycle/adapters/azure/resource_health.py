"""Resource Health of one VM: ``GET {vmId}/providers/Microsoft.ResourceHealth/
availabilityStatuses/current`` through :class:`~.compute.ArmCompute`'s ARM pipeline (its
reader, its token, its retrying :meth:`~.compute.ArmCompute.call`: 429/5xx wait for
Retry-After within the read timeout), read as plain JSON into
:class:`~azlin_lifecycle.signals.PlatformHealth`.

The REST spec (Microsoft.ResourceHealth, api-version 2025-05-01) documents
``availabilityState``, ``context``, ``category``, ``reasonType``, ``title``, ``summary``,
``occuredTime`` (sic), ``resolutionETA`` and ``recentlyResolved``; the VM annotation's
name is taken from ``annotationName`` where an answer carries one (the name Resource
Graph and Event Grid give it), else from a known annotation's name in ``healthEventId``
or ``healthEventType`` — an assumption, not verified against live Azure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...models import VMTarget
from ...ports import AzureOperationError
from ...signals import ANNOTATIONS, PlatformHealth
from .errors import error_code, error_message
from .views import parse_time, props_of, text_of

if TYPE_CHECKING:
    from .compute import ArmCompute

API_VERSION = "2025-05-01"


def availability_path(target: VMTarget) -> str:
    sub, rg, vm = (quote(v, safe="") for v in (target.subscription_id, target.resource_group,
                                               target.name))
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachines/{vm}/providers/Microsoft.ResourceHealth/availabilityStatuses/current")


def read_platform_health(compute: ArmCompute, target: VMTarget) -> PlatformHealth:
    """One read of the VM's current availability status; AzureOperationError if Azure
    answers none (HealthCheckError for the login, as every read)."""
    from azure.core.exceptions import HttpResponseError

    reader = compute.reader()
    what = f"Resource Health of {target.name}"
    path = availability_path(target)
    try:
        body = compute.call(what, lambda kw: reader.get(path, {"api-version": API_VERSION}, **kw),
                            compute.timeout)
    except HttpResponseError as exc:  # 404 (no such VM, provider not registered), 400
        raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None
    return platform_health_from_json(body)


def platform_health_from_json(body: Mapping[str, Any]) -> PlatformHealth:
    """The answer's ``properties`` as PlatformHealth (unknown fields ignored)."""
    props = props_of(body)
    resolved = props.get("recentlyResolved") or {}
    return PlatformHealth(
        state=text_of(props.get("availabilityState")) or "Unknown",
        context=text_of(props.get("context")), category=text_of(props.get("category")),
        reason_type=text_of(props.get("reasonType")), annotation=_annotation(props),
        title=text_of(props.get("title")), summary=text_of(props.get("summary")),
        since=_epoch(props.get("occuredTime") or props.get("occurredTime")),
        resolution_eta=_epoch(props.get("resolutionETA")),
        resolved_at=_epoch(resolved.get("resolvedTime")) if isinstance(resolved, Mapping)
        else None)


def _annotation(props: Mapping[str, Any]) -> str | None:
    named = text_of(props.get("annotationName"))
    if named:
        return named
    for key in ("healthEventId", "healthEventType"):
        value = text_of(props.get(key))
        if value in ANNOTATIONS:
            return value
    return None



def _epoch(value: Any) -> float | None:
    parsed = parse_time(value)
    return None if parsed is None else parsed.timestamp()
