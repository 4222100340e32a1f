"""The Azure credential and its failures: token scopes per cloud, the credential of
``[azure] credential``, one token shared by every thread, and one-line errors that say
what is wrong (az missing, az unable to write its config dir, no login, no identity)."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ... import paths
from ...config import AzureSettings, CredentialKind
from ...errors import HealthCheckError
from .errors import error_message

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

LOGIN_HINT = "run `az login` (as the user the daemon runs as) and try again"


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
