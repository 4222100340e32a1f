"""Azure Compute through azure-identity and azure-mgmt-compute, never blocking past a deadline.

:class:`ArmCompute` implements :class:`azlin_lifecycle.ports.ComputeApi`.

Reads (a VM's instance view, a resource group's VMs) go through one
:class:`~azlin_lifecycle.adapters.arm_reads.ArmReader` as plain JSON (see that module for
why); repairs through one ``ComputeManagementClient`` per subscription, made on first use
(azure-mgmt-compute is imported then, not before). Both are shared by all threads, each
with an HTTPS connection pool of up to 64 connections. ``base_url`` is
``settings.arm_endpoint``; the token scope is the one the SDK knows for that cloud
(public, China, US Government — the latter is ``management.core.usgovcloudapi.net``),
else ``<arm_endpoint>/.default`` (Azure Stack, the local stand-in). ``settings.ca_bundle``
is used to verify TLS when set. The credential is ``AzureCliCredential`` (or
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
  left; long-running operations are polled by a poller that stops at the deadline, and
  the caller stops waiting for it at the deadline in any case.

Errors: 404 from ``instance_view`` is ``PowerInfo(NOT_FOUND, message=<Azure's message>)``;
a credential that fails (``CredentialUnavailableError``, ``ClientAuthenticationError``,
401) is :class:`~azlin_lifecycle.errors.HealthCheckError` saying why (:func:`login_error`):
``az`` not on PATH, ``az`` unable to write its config dir, no managed identity, or a
missing or expired login (run ``az login``); everything else is
``AzureOperationError(message, code)``.

Power states of a resource group come from ONE paged list of its VMs with
``$expand=instanceView`` (the request of ``virtual_machines.list(resource_group,
expand="instanceView")``). Azure's REST reference
says that expansion "can only be specified if a valid $filter option is specified"
(Azure/azure-rest-api-specs#42411); if Azure refuses it (400) or returns VMs without an
instance view, the missing ones are taken from one ``list_all`` with ``statusOnly=true`` of
the subscription (still no per-VM calls).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .. import paths
from ..config import DEFAULT_ARM_ENDPOINT, AzureSettings, CredentialKind
from ..errors import HealthCheckError
from ..models import PowerInfo, VMState, VMTarget
from ..ports import AzureOperationError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline.transport import RequestsTransport
    from azure.mgmt.compute import ComputeManagementClient

    from .arm_reads import ArmReader

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 8.0
CONNECT_TIMEOUT_MAX = 10.0
POOL_SIZE = 64
LOGIN_HINT = "run `az login` (as the user the daemon runs as) and try again"


# --------------------------------------------------------------------------- pure mapping
def power_info_from_view(view: Mapping[str, Any] | None) -> PowerInfo:
    """PowerInfo from an instance view: PowerState/*, ProvisioningState/*, vmAgent.

    ``view`` is the REST JSON (Azure's names: ``statuses``, ``vmAgent``,
    ``displayStatus``) — a decoded response, or an azure-mgmt-compute model, which is a
    mapping of the same names.
    """
    if view is None:
        return PowerInfo(VMState.UNKNOWN, message="Azure returned no instance view")
    power: str | None = None
    provisioning: str | None = None
    for status in view.get("statuses") or []:
        code = status.get("code") or ""
        if code.startswith("PowerState/") and power is None:
            power = code
        elif code.startswith("ProvisioningState/") and provisioning is None:
            provisioning = code.split("/", 1)[1]
    agent: str | None = None
    agent_statuses = (view.get("vmAgent") or {}).get("statuses") or []
    if agent_statuses:
        agent = agent_statuses[0].get("displayStatus")
    return PowerInfo(VMState.from_power_code(power), provisioning, agent)


def view_of(vm: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The instance view inside a VM's JSON (``properties.instanceView``), if any."""
    view: Mapping[str, Any] | None = (vm.get("properties") or {}).get("instanceView")
    return view


def resource_group_of(resource_id: str | None) -> str | None:
    """``RG`` from ``/subscriptions/S/resourceGroups/RG/providers/...``."""
    parts = (resource_id or "").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return None


def credential_scope(arm_endpoint: str) -> str:
    """The token scope for an ARM endpoint: the SDK's own for known clouds."""
    from azure.core import AzureClouds
    from azure.mgmt.core.tools import get_arm_endpoints

    host = urlsplit(arm_endpoint).hostname
    for cloud in AzureClouds:
        endpoints = get_arm_endpoints(cloud)
        if urlsplit(endpoints["resource_manager"]).hostname == host:
            return str(endpoints["credential_scopes"][0])
    return arm_endpoint.rstrip("/") + "/.default"


def retry_after_seconds(headers: Mapping[str, str], now: dt.datetime | None = None) -> float | None:
    """The wait the server asks for (retry-after-ms, x-ms-retry-after-ms, Retry-After)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        with contextlib.suppress(KeyError, ValueError):
            return max(float(lowered[name]) / 1000.0, 0.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)  # seconds; else an HTTP date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def backoff_seconds(attempt: int) -> float:
    base: float = min(BACKOFF_FIRST * float(2 ** min(attempt, 16)), BACKOFF_MAX)
    return base + random.uniform(0, base / 4)


def error_code(exc: HttpResponseError) -> str | None:
    code = getattr(exc.error, "code", None) if exc.error is not None else None
    if code:
        return str(code)
    status = exc.status_code
    return None if status is None else f"HTTP{status}"


def error_message(exc: BaseException) -> str:
    """Azure's message without the SDK's multi-line decoration."""
    err = getattr(exc, "error", None)
    text = getattr(err, "message", None) or getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Code:", "Message:"))] or lines
    return (lines[0] if lines else type(exc).__name__)[:500]


# azure-identity's AzureCliCredential says this when ``shutil.which("az")`` finds nothing.
CLI_NOT_FOUND = "Azure CLI not found on path"
# What az (Python) prints when it cannot write under its config dir, e.g.
# "[Errno 30] Read-only file system: '/home/u/.azure/az.sess'".
WRITE_FAILURE_RE = re.compile(r"\[Errno (30|13)\] ([^:\n]+): '([^'\n]+)'")


def login_error(exc: BaseException,
                kind: CredentialKind = CredentialKind.CLI) -> HealthCheckError:
    """One line saying why the credential failed and what to do about it."""
    detail = error_message(exc).rstrip(".")
    text = str(getattr(exc, "message", None) or exc)
    if kind is CredentialKind.MANAGED_IDENTITY:
        return HealthCheckError(
            f"the managed identity did not authenticate ({detail}): run the monitor on an Azure VM "
            "with a managed identity (for a user-assigned one set [azure] "
            'managed_identity_client_id), or set [azure] credential = "cli"')
    if kind is CredentialKind.CLI:
        if CLI_NOT_FOUND in text:
            return HealthCheckError(
                f"az not found on the service's PATH (PATH={os.environ.get('PATH', '')}): "
                "install the Azure CLI or re-run 'azlin lifecycle install' from a shell where "
                "'az' works")
        written = WRITE_FAILURE_RE.search(text)
        if written:
            return _cannot_write_error(*written.groups())
    return HealthCheckError(f"Azure login is missing or expired ({detail}): {LOGIN_HINT}")


def _cannot_write_error(errno: str, reason: str, path: str) -> HealthCheckError:
    config_dir = paths.azure_config_dir()
    if errno == "30":
        fix = (f"make {config_dir} writable for the service: re-run 'azlin lifecycle "
               "install' (its unit opens $AZURE_CONFIG_DIR or ~/.azure)")
    else:
        fix = f"make {config_dir} and its files yours again (e.g. sudo chown -R $USER {config_dir})"
    return HealthCheckError(
        f"the Azure CLI cannot write under its config dir {config_dir} "
        f"([Errno {errno}] {reason}: '{path}'): {fix}")


# --------------------------------------------------------------------------- the adapter
class ArmCompute:
    """ComputeApi over ARM. ``timeout`` bounds each read call; actions take their own."""

    def __init__(
        self,
        settings: AzureSettings,
        timeout: float = 20.0,
        polling_interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.polling_interval = polling_interval
        self._lock = threading.Lock()
        self._clients: dict[str, ComputeManagementClient] = {}
        self._reader: ArmReader | None = None
        self._credential: TokenCredential | None = None

    # ------------------------------------------------------------------ ComputeApi
    def instance_view(self, target: VMTarget) -> PowerInfo:
        from azure.core.exceptions import ResourceNotFoundError

        from .arm_reads import instance_view_path

        reader = self.reader()
        path = instance_view_path(target.subscription_id, target.resource_group, target.name)
        try:
            view = self._call(
                f"instance view of {target.name}", lambda kw: reader.get(path, **kw),
                self.timeout,
            )
        except ResourceNotFoundError as exc:
            return PowerInfo(VMState.NOT_FOUND, message=error_message(exc))
        return power_info_from_view(view)

    def power_states(self, subscription_id: str, resource_group: str) -> Mapping[str, PowerInfo]:
        from azure.core.exceptions import HttpResponseError

        from .arm_reads import list_path

        reader = self.reader()
        path = list_path(subscription_id, resource_group)
        deadline = time.monotonic() + self.timeout
        vms: list[dict[str, Any]] = []
        try:
            vms = self._call(
                f"list of VMs in {resource_group}",
                lambda kw: reader.list(path, {"$expand": "instanceView"}, **kw),
                self.timeout,
                deadline,
            )
        except HttpResponseError as exc:  # 400: $expand refused; 404: no such group
            if exc.status_code != 400:
                raise AzureOperationError(
                    f"list of VMs in {resource_group}: {error_message(exc)}", error_code(exc)
                ) from None
        states: dict[str, PowerInfo] = {}
        missing: list[str] = []
        for vm in vms:
            name = vm.get("name")
            if not isinstance(name, str):
                continue
            view = view_of(vm)
            if view is None:
                missing.append(name)
            states[name] = power_info_from_view(view)
        if missing or not vms:
            states.update(self._status_only(subscription_id, resource_group, deadline,
                                            missing or None))
        return states

    def read_json(self, what: str, path: str,
                  params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One GET of any ARM resource ``path`` (a NIC, a public IP ...) within this
        adapter's read timeout and retries; every failure is AzureOperationError."""
        from azure.core.exceptions import HttpResponseError

        reader = self.reader()
        try:
            return self._call(what, lambda kw: reader.get(path, params, **kw), self.timeout)
        except HttpResponseError as exc:  # 404 and 400, which _call leaves to callers
            raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None

    def restart(self, target: VMTarget, timeout: float) -> None:
        self._action(target, "restart", timeout)

    def start(self, target: VMTarget, timeout: float) -> None:
        self._action(target, "start", timeout)

    def redeploy(self, target: VMTarget, timeout: float) -> None:
        self._action(target, "redeploy", timeout)

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
        from .arm_reads import ArmReader

        with self._lock:
            if self._reader is None:
                endpoint = self._endpoint()
                self._reader = ArmReader(self._get_credential(), endpoint,
                                         credential_scope(endpoint), self._transport())
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
        from azure.core.pipeline.policies import RetryPolicy
        from azure.mgmt.compute import ComputeManagementClient

        endpoint = self._endpoint()
        kwargs: dict[str, Any] = {}
        if self.polling_interval is not None:
            kwargs["polling_interval"] = self.polling_interval
        return ComputeManagementClient(
            self._get_credential(),
            subscription_id,
            base_url=endpoint,
            credential_scopes=[credential_scope(endpoint)],
            retry_policy=RetryPolicy.no_retries(),
            transport=self._transport(),
            **kwargs,
        )

    def _get_credential(self) -> TokenCredential:
        if self._credential is None:
            import math

            seconds = max(1, math.ceil(min(self.timeout, 10.0)))
            self._credential = SharedTokenCache(build_credential(self.settings, seconds))
        return self._credential

    # ------------------------------------------------------------------ calls
    def _call(
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
            kw = {"connection_timeout": min(left, CONNECT_TIMEOUT_MAX), "read_timeout": left}
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

    def _status_only(
        self,
        subscription_id: str,
        resource_group: str,
        deadline: float,
        names: list[str] | None,
    ) -> dict[str, PowerInfo]:
        """Power states from one subscription-wide ``list_all`` with ``statusOnly=true``."""
        from azure.core.exceptions import HttpResponseError

        from .arm_reads import list_all_path

        reader = self.reader()
        wanted = None if names is None else {n.lower() for n in names}
        try:
            vms = self._call(
                f"status-only list of VMs in subscription {subscription_id}",
                lambda kw: reader.list(list_all_path(subscription_id), {"statusOnly": "true"},
                                       **kw),
                self.timeout,
                deadline,
            )
        except HttpResponseError as exc:
            raise AzureOperationError(
                f"list of VMs in {resource_group}: {error_message(exc)}", error_code(exc)
            ) from None
        out: dict[str, PowerInfo] = {}
        for vm in vms:
            name, rg = vm.get("name"), resource_group_of(vm.get("id"))
            if not isinstance(name, str) or rg is None or rg.lower() != resource_group.lower():
                continue
            if wanted is None or name.lower() in wanted:
                out[name] = power_info_from_view(view_of(vm))
        return out

    def _action(self, target: VMTarget, action: str, timeout: float) -> None:
        """Start the long-running ``action`` and wait for it until ``timeout``."""
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        client = self.client(target.subscription_id)
        what = f"{action} of {target.name}"
        deadline = time.monotonic() + timeout
        begin = getattr(client.virtual_machines, f"begin_{action}")
        interval = 30.0 if self.polling_interval is None else self.polling_interval

        def start(kw: dict[str, Any]) -> Any:
            polling = _deadline_polling(interval, deadline, client._config.base_url, kw)
            return begin(target.resource_group, target.name, polling=polling, **kw)

        try:
            poller = self._call(what, start, timeout, deadline)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None
        timed_out = AzureOperationError(
            f"{what} did not finish within {timeout:g} s", "OperationTimedOut"
        )
        try:
            poller.wait(timeout=max(deadline - time.monotonic(), 0.0))
            if not poller.done():
                raise timed_out
            poller.result(timeout=0)
        except _LroDeadline:
            raise timed_out from None
        except HttpResponseError as exc:
            raise AzureOperationError(
                f"{what} failed: {error_message(exc)}", error_code(exc)
            ) from None
        except AzureError as exc:
            raise AzureOperationError(f"{what} failed: {error_message(exc)}") from None


def build_credential(settings: AzureSettings, cli_timeout: int = 10) -> TokenCredential:
    """The azure-identity credential ``settings.credential`` names (nothing is asked yet)."""
    client_id = settings.managed_identity_client_id
    if settings.credential is CredentialKind.DEFAULT:
        from azure.identity import DefaultAzureCredential

        if client_id:
            return DefaultAzureCredential(managed_identity_client_id=client_id)
        return DefaultAzureCredential()
    if settings.credential is CredentialKind.MANAGED_IDENTITY:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    from azure.identity import AzureCliCredential

    return AzureCliCredential(process_timeout=cli_timeout)


class SharedTokenCache:
    """One token per scope for all threads and clients: ``az`` runs once, not once per thread.

    (azure-core caches per client and does not serialise refreshes: 64 threads starting
    together would start 64 ``az`` processes.) Refreshes 300 s before expiry, like azure-core.
    """

    REFRESH_MARGIN = 300

    def __init__(self, inner: TokenCredential) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._tokens: dict[tuple[Any, ...], AccessToken] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = (scopes, claims, tenant_id, enable_cae)
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_on - self.REFRESH_MARGIN <= time.time():
                token = self.inner.get_token(
                    *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
                )
                self._tokens[key] = token
            return token


class _LroDeadline(Exception):
    """Raised inside the poller thread when the next poll would pass the deadline."""


def _deadline_polling(
    interval: float, deadline: float, base_url: str, transport_kwargs: dict[str, Any]
) -> Any:
    """An ARMPolling that never sleeps past ``deadline`` and retries 429/5xx status polls."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class DeadlinePolling(ARMPolling):
        def _delay(self) -> None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _LroDeadline("deadline passed")
            self._sleep(min(self._extract_delay(), left))

        def request_status(self, status_link: str) -> Any:
            attempt = 0
            while True:
                self._operation_config["read_timeout"] = max(deadline - time.monotonic(), 0.1)
                response = super().request_status(status_link)
                status = response.http_response.status_code
                if status not in RETRY_STATUSES:
                    return response
                asked = retry_after_seconds(response.http_response.headers)
                wait = backoff_seconds(attempt) if asked is None else asked
                if time.monotonic() + wait >= deadline:
                    return response  # the SDK turns it into an error
                time.sleep(wait)
                attempt += 1

    return DeadlinePolling(
        interval, path_format_arguments={"endpoint": base_url}, **transport_kwargs
    )


if TYPE_CHECKING:
    from ..ports import ComputeApi

    def _conforms(compute: ArmCompute) -> ComputeApi:  # mypy checks the protocol
        return compute
