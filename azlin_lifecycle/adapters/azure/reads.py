"""Read-only ARM calls as plain JSON, over the pipeline azure-mgmt-compute itself uses.

Monitoring reads a subscription's VMs with their power states (a ``statusOnly=true``
listing), one VM's instance view, and a few resources (NICs, public IPs) by path.
:class:`ArmReader` sends those requests (the same URLs, ``api-version`` and policies
as ``ComputeManagementClient`` —
azure-mgmt-core's ``ARMPipelineClient`` with ``ARMChallengeAuthenticationPolicy``) and
hands back the response JSON, without azure-mgmt-compute's model layer:

* importing ``azure.mgmt.compute`` costs ~17 MB of resident memory (its generated
  models), more than the rest of the daemon's own working set; the daemon loads it only
  for a repair (restart, start, redeploy: long-running operations where the SDK's poller
  earns its keep);
* turning a listing into models costs ~0.5 ms of CPU per VM, a tenth of a whole check.

Errors are the SDK's: a non-200 answer raises what ``azure.core.exceptions.map_error``
maps it to (401 ``ClientAuthenticationError``, 404 ``ResourceNotFoundError``), else
``HttpResponseError`` with Azure's error body parsed (ARM format).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest, HttpResponse
    from azure.mgmt.core import ARMPipelineClient

# The Compute API version this project speaks; a unit test keeps it equal to the one the
# pinned azure-mgmt-compute uses, so reads and repairs talk to the same API.
API_VERSION = "2026-04-01"
_VMS = "providers/Microsoft.Compute/virtualMachines"


def list_all_path(subscription_id: str) -> str:
    return f"/subscriptions/{quote(subscription_id, safe='')}/{_VMS}"


def list_path(subscription_id: str, resource_group: str) -> str:
    sub, rg = quote(subscription_id, safe=""), quote(resource_group, safe="")
    return f"/subscriptions/{sub}/resourceGroups/{rg}/{_VMS}"


def instance_view_path(subscription_id: str, resource_group: str, vm: str) -> str:
    return f"{list_path(subscription_id, resource_group)}/{quote(vm, safe='')}/instanceView"


class ArmReader:
    """GETs against ARM returning decoded JSON; ``transport_kwargs`` (timeouts) per call."""

    def __init__(self, credential: TokenCredential, base_url: str, scope: str,
                 transport: RequestsTransport,
                 on_response: Callable[[Any], None] | None = None) -> None:
        """``on_response`` sees every answer (azure-core's ``raw_response_hook``)."""
        from azure.core.pipeline import policies
        from azure.mgmt.core import ARMPipelineClient
        from azure.mgmt.core.policies import (
            ARMAutoResourceProviderRegistrationPolicy,
            ARMChallengeAuthenticationPolicy,
            ARMHttpLoggingPolicy,
        )

        from ... import __version__

        self.base_url = base_url.rstrip("/")
        pipeline = [
            policies.RequestIdPolicy(),
            policies.HeadersPolicy(),
            policies.UserAgentPolicy(sdk_moniker=f"azlin-lifecycle/{__version__}"),
            policies.ProxyPolicy(),
            policies.ContentDecodePolicy(),
            ARMAutoResourceProviderRegistrationPolicy(),
            policies.RedirectPolicy(),
            policies.RetryPolicy.no_retries(),  # retried by the caller, within its deadline
            ARMChallengeAuthenticationPolicy(credential, scope),
            policies.CustomHookPolicy(raw_response_hook=on_response),
            policies.NetworkTraceLoggingPolicy(),
            policies.DistributedTracingPolicy(),
            policies.SensitiveHeaderCleanupPolicy(),
            ARMHttpLoggingPolicy(),
        ]
        self._client: ARMPipelineClient[HttpRequest, HttpResponse] = ARMPipelineClient(
            base_url=self.base_url, policies=pipeline, transport=transport)

    def get(self, path: str, params: Mapping[str, str] | None = None,
            **transport_kwargs: Any) -> dict[str, Any]:
        """One GET of ``path`` (``api-version`` added); the JSON object it answered."""
        from azure.core.rest import HttpRequest

        query = {"api-version": API_VERSION, **(params or {})}
        request = HttpRequest("GET", self.base_url + path, params=query)
        return self._send(request, transport_kwargs)

    def list(self, path: str, params: Mapping[str, str] | None = None,
             **transport_kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a paged ARM list (``value``, following ``nextLink``)."""
        from azure.core.rest import HttpRequest

        page = self.get(path, params, **transport_kwargs)
        items: list[dict[str, Any]] = list(page.get("value") or [])
        while link := page.get("nextLink"):
            page = self._send(HttpRequest("GET", str(link)), transport_kwargs)
            items.extend(page.get("value") or [])
        return items

    def close(self) -> None:
        self._client.close()

    def _send(self, request: HttpRequest, transport_kwargs: dict[str, Any]) -> dict[str, Any]:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceExistsError,
            ResourceNotFoundError,
            ResourceNotModifiedError,
            map_error,
        )
        from azure.mgmt.core.exceptions import ARMErrorFormat

        response = self._client.send_request(request, **transport_kwargs)
        if response.status_code != 200:
            map_error(status_code=response.status_code, response=response, error_map={
                401: ClientAuthenticationError, 404: ResourceNotFoundError,
                409: ResourceExistsError, 304: ResourceNotModifiedError})
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        body = response.json()
        if not isinstance(body, dict):
            raise HttpResponseError(response=response,
                                    message=f"ARM answered {type(body).__name__}, not an object")
        return body
