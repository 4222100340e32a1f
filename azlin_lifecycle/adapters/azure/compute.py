"""Azure Compute through azure-identity and azure-mgmt-compute, never blocking past a deadline.

:class:`ArmCompute` implements :class:`azlin_lifecycle.ports.ComputeApi`.

Reads (a VM's instance view, a resource group's VMs) go through one
:class:`~azlin_lifecycle.adapters.azure.reads.ArmReader` as plain JSON (see that module for
why); repairs through one ``ComputeManagementClient`` per subscription, made on first use
(azure-mgmt-compute is imported then, not before). Both are shared by all threads, each
with an HTTPS connection pool of up to 64 connections. ``base_url`` is
``settings.arm_endpoint``; the token scope is the one the SDK knows for that cloud
(public, China, US Government — the latter is ``management.core.usgovcloudapi.net``),
else ``<arm_endpoint>/.default`` (Azure Stack, the local stand-in). ``settings.ca_bundle``
is used to verify TLS when set. The credential (:mod:`.login`) is ``AzureCliCredential`` (or
``DefaultAzureCredential`` for ``credential = "default"``, ``ManagedIdentityCredential``
for ``"managed_identity"``, both with ``managed_identity_client_id`` when set).

Deadlines and throttling: the SDK's own retry policy is switched off (left alone it
sleeps whatever ``Retry-After`` says — 1,200 s in Azure's docs — up to ten times).
Instead every call has a deadline (``timeout`` for reads, the caller's ``timeout`` for
restart/start/redeploy) and is retried here while the deadline allows:

* 429 and 5xx (and 408) wait for ``Retry-After`` (``retry-after-ms``/``x-ms-retry-after-ms``,
  seconds, or an HTTP date), or back off 0.5, 1, 2 ... 8 s without one;
* connection errors and read timeouts back off the same way;
* if the wait would end past the deadline the call fails at once with
  :class:`~azlin_lifecycle.ports.AzureOperationError` (``code`` is Azure's code, e.g.
  ``TooManyRequests``), instead of sleeping;
* every HTTP request gets ``connection_timeout``/``read_timeout`` no longer than what is
  left.

Errors: 404 from ``instance_view`` is ``PowerInfo(NOT_FOUND, message=<Azure's message>)``;
a credential that fails (``CredentialUnavailableError``, ``ClientAuthenticationError``,
401) is :class:`~azlin_lifecycle.errors.HealthCheckError` saying why (``login_error``):
``az`` not on PATH, ``az`` unable to write its config dir, no managed identity, or a
missing or expired login (run ``az login``); everything else is
``AzureOperationError(message, code)``.

Power states come from ONE paged ``GET /subscriptions/{sub}/providers/Microsoft.Compute/
virtualMachines?statusOnly=true`` per subscription (see :mod:`.listing`), shared for a few
seconds by every resource group of that subscription; names and resource groups (taken
from each item's ``id``) are compared case-insensitively and the returned keys are
lowercased. The resource-group list with ``$expand=instanceView`` is never sent: Azure's
REST reference says that expansion "can only be specified if a valid $filter option is
specified" and real ARM refuses it (400; Azure/azure-rest-api-specs#42411). A 429/503
with Retry-After on that listing holds further listings of the subscription until then
(failing at once, without a request); low ``x-ms-ratelimit-remaining-*`` budgets are
logged (:mod:`.limits`).

Repairs (restart, start, redeploy: long-running operations, and what happens when
Azure's answer to one is lost) are :mod:`.repairs`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ...config import DEFAULT_ARM_ENDPOINT, AzureSettings
from ...models import PowerInfo, VMState, VMTarget
from ...ports import Accepted, AzureOperationError
from .errors import (
    RETRY_STATUSES,
    backoff_seconds,
    error_code,
    error_message,
    request_timeouts,
    retry_after_seconds,
)
from .limits import NotBefore, RateLimitWatch
from .listing import SubscriptionListings
from .login import SharedTokenCache, build_credential, credential_scope, login_error
from .repairs import ArmRepairs
from .views import power_info_from_view, resource_group_of, tags_of, view_of

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport
    from azure.mgmt.compute import ComputeManagementClient

    from .reads import ArmReader

T = TypeVar("T")

POOL_SIZE = 64
DEFAULT_POLL_SECONDS = 5.0
THROTTLE_STATUSES = frozenset({429, 503})  # whose Retry-After holds the next listings


# --------------------------------------------------------------------------- the adapter
class ArmCompute:
    """ComputeApi over ARM. ``timeout`` bounds each read call; actions take their own."""

    def __init__(
        self,
        settings: AzureSettings,
        timeout: float = 20.0,
        polling_interval: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.polling_interval = float(polling_interval)
        self.not_before = NotBefore()
        self.rate_limits = RateLimitWatch()
        self._listings: SubscriptionListings[PowerInfo] = SubscriptionListings(
            self._list_subscription)
        self._lock = threading.Lock()
        self._clients: dict[str, ComputeManagementClient] = {}
        self._reader: ArmReader | None = None
        self._credential: TokenCredential | None = None

    # ------------------------------------------------------------------ ComputeApi
    def instance_view(self, target: VMTarget) -> PowerInfo:
        from azure.core.exceptions import ResourceNotFoundError

        from .reads import instance_view_path

        reader = self.reader()
        path = instance_view_path(target.subscription_id, target.resource_group, target.name)
        try:
            view = self.call(
                f"instance view of {target.name}", lambda kw: reader.get(path, **kw),
                self.timeout,
            )
        except ResourceNotFoundError as exc:
            return PowerInfo(VMState.NOT_FOUND, message=error_message(exc), code=error_code(exc))
        return power_info_from_view(view)

    def power_states(self, subscription_id: str, resource_group: str, *,
                     expected: Collection[str] = ()) -> Mapping[str, PowerInfo]:
        """Power states of ``resource_group``'s VMs keyed by lowercased name, from the
        subscription's shared status-only listing (listed again if a VM in ``expected``
        is missing from it)."""
        return self._listings.get(subscription_id, resource_group, expected)

    def forget_power_states(self) -> None:
        """Drop the shared listings (after a repair changed a VM's state)."""
        self._listings.forget()

    def read_json(self, what: str, path: str,
                  params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One GET of any ARM resource ``path`` (a NIC, a public IP ...) within this
        adapter's read timeout and retries; every failure is AzureOperationError."""
        from azure.core.exceptions import HttpResponseError

        reader = self.reader()
        try:
            return self.call(what, lambda kw: reader.get(path, params, **kw), self.timeout)
        except HttpResponseError as exc:  # 404 and 400, which call leaves to callers
            raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None

    def restart(self, target: VMTarget, timeout: float, on_accepted: Accepted = None) -> None:
        ArmRepairs(self).run(target, "restart", timeout, on_accepted)

    def start(self, target: VMTarget, timeout: float, on_accepted: Accepted = None) -> None:
        ArmRepairs(self).run(target, "start", timeout, on_accepted)

    def redeploy(self, target: VMTarget, timeout: float, on_accepted: Accepted = None) -> None:
        ArmRepairs(self).run(target, "redeploy", timeout, on_accepted)

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            reader, self._reader = self._reader, None
        for client in clients:
            client.close()
        if reader is not None:
            reader.close()

    # ------------------------------------------------------------------ clients
    def client(self, subscription_id: str) -> ComputeManagementClient:
        """The shared client of one subscription (made on first use)."""
        with self._lock:
            client = self._clients.get(subscription_id)
            if client is None:
                client = self._clients[subscription_id] = self._new_client(subscription_id)
            return client

    def reader(self) -> ArmReader:
        """The shared reader of instance views and listings (made on first use)."""
        from .reads import ArmReader

        with self._lock:
            if self._reader is None:
                endpoint = self._endpoint()
                self._reader = ArmReader(self.credential(), endpoint,
                                         credential_scope(endpoint), self._transport(),
                                         on_response=self.rate_limits.on_response)
            return self._reader

    def _endpoint(self) -> str:
        return (self.settings.arm_endpoint or DEFAULT_ARM_ENDPOINT).rstrip("/")

    def _transport(self) -> RequestsTransport:
        """An HTTPS transport with its own pool of ``POOL_SIZE`` connections."""
        import requests
        from azure.core.pipeline.transport import RequestsTransport

        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        session.mount("https://", adapter)
        transport_kwargs: dict[str, Any] = {"session": session, "session_owner": True}
        if self.settings.ca_bundle:
            transport_kwargs["connection_verify"] = self.settings.ca_bundle
        return RequestsTransport(**transport_kwargs)

    def _new_client(self, subscription_id: str) -> ComputeManagementClient:
        from azure.core.pipeline.policies import CustomHookPolicy, RetryPolicy
        from azure.mgmt.compute import ComputeManagementClient

        endpoint = self._endpoint()
        return ComputeManagementClient(
            self.credential(),
            subscription_id,
            base_url=endpoint,
            credential_scopes=[credential_scope(endpoint)],
            retry_policy=RetryPolicy.no_retries(),
            custom_hook_policy=CustomHookPolicy(raw_response_hook=self.rate_limits.on_response),
            transport=self._transport(),
            polling_interval=self.polling_interval,
        )

    def credential(self) -> TokenCredential:
        """The ``[azure]`` login behind a token cache, made on first use: what every ARM
        request of this adapter uses, and what the Bastion tunnels' token exchange uses."""
        if self._credential is None:
            import math

            seconds = max(1, math.ceil(min(self.timeout, 10.0)))
            self._credential = SharedTokenCache(build_credential(self.settings, seconds))
        return self._credential

    # ------------------------------------------------------------------ calls
    def call(
        self,
        what: str,
        fn: Callable[[dict[str, Any]], T],
        timeout: float,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn(transport_kwargs)``, retrying throttling and outages until the deadline.

        Raises HealthCheckError (login), the SDK's ResourceNotFoundError (404) and
        HttpResponseError 400 (for callers that handle them), else AzureOperationError.
        """
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if deadline is None:
            deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AzureOperationError(
                    f"{what}: no answer from Azure within {timeout:g} s", "Timeout"
                )
            kw = request_timeouts(left)
            try:
                return fn(kw)
            except ClientAuthenticationError as exc:
                raise login_error(exc, self.settings.credential) from None
            except ResourceNotFoundError:
                raise
            except HttpResponseError as exc:
                status = exc.status_code
                if status == 400:
                    raise
                if status not in RETRY_STATUSES:
                    raise AzureOperationError(
                        f"{what}: {error_message(exc)}", error_code(exc)
                    ) from None
                headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
                asked = retry_after_seconds(headers)
                wait = backoff_seconds(attempt) if asked is None else asked
                reason = f"HTTP {status}" + ("" if asked is None else f", Retry-After {asked:g} s")
                code = error_code(exc)
            except (ServiceRequestError, ServiceResponseError) as exc:
                wait = backoff_seconds(attempt)
                reason = error_message(exc)
                code = "ServiceUnavailable"
            if time.monotonic() + wait >= deadline:
                raise AzureOperationError(
                    f"{what}: Azure did not answer in time ({reason}); gave up within the "
                    f"{timeout:g} s limit",
                    code,
                )
            time.sleep(wait)
            attempt += 1

    def _list_subscription(self, subscription_id: str) -> dict[str, dict[str, PowerInfo]]:
        """One status-only listing of the subscription: group -> name -> PowerInfo (lowercased)."""
        from azure.core.exceptions import HttpResponseError

        from .reads import list_all_path

        what = f"status-only list of VMs in subscription {subscription_id}"
        self._check_not_before(subscription_id)
        reader = self.reader()
        path = list_all_path(subscription_id)

        def fetch(kw: dict[str, Any]) -> list[dict[str, Any]]:
            try:
                return reader.list(path, {"statusOnly": "true"}, **kw)
            except HttpResponseError as exc:
                headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
                asked = retry_after_seconds(headers)
                if exc.status_code in THROTTLE_STATUSES and asked:
                    self.not_before.record(subscription_id, asked)
                raise

        try:
            vms = self.call(what, fetch, self.timeout)
        except HttpResponseError as exc:  # 400, 404
            raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None
        except AzureOperationError:
            self._check_not_before(subscription_id)  # says until when, if Azure asked
            raise
        groups: dict[str, dict[str, PowerInfo]] = {}
        for vm in vms:
            name, rg = vm.get("name"), resource_group_of(vm.get("id"))
            if isinstance(name, str) and rg is not None:
                info = power_info_from_view(view_of(vm))
                groups.setdefault(rg.lower(), {})[name.lower()] = dataclasses.replace(
                    info, name=name, tags=tags_of(vm))
        return groups

    def _check_not_before(self, subscription_id: str) -> None:
        until = self.not_before.until(subscription_id)
        if until is not None:
            raise AzureOperationError(
                f"Azure throttled listing of subscription {subscription_id} until "
                f"{until:%H:%M:%S} UTC (Retry-After); checks of its VMs resume by themselves "
                "then", "TooManyRequests")


if TYPE_CHECKING:
    from ...ports import ComputeApi

    def _conforms(compute: ArmCompute) -> ComputeApi:  # mypy checks the protocol
        return compute
