"""Which azure-identity credential the config builds, and what its failures are reported as.

No test here asks a managed identity for a token (that would probe 169.254.169.254): they
check the credential that is built. The "az not on PATH" case runs the real
AzureCliCredential, which gives up before contacting anything.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.adapters.azure.login import SharedTokenCache, build_credential, login_error
from azlin_lifecycle.config import AzureSettings, CredentialKind
from azlin_lifecycle.errors import HealthCheckError
from azlin_lifecycle.models import VMTarget

CLIENT_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
# Variables that make ManagedIdentityCredential pick App Service, Arc, workload identity ...
MI_ENVIRONMENT = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
                  "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                  "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID")


@pytest.fixture
def plain_vm_environment(monkeypatch: pytest.MonkeyPatch,
                         caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in MI_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="azure.identity")
    return caplog


def test_managed_identity_is_built_with_the_configured_client_id(
        plain_vm_environment: pytest.LogCaptureFixture) -> None:
    from azure.identity import ManagedIdentityCredential

    settings = AzureSettings(credential=CredentialKind.MANAGED_IDENTITY,
                             managed_identity_client_id=CLIENT_ID)
    credential = ArmCompute(settings).credential()
    assert isinstance(credential, SharedTokenCache)
    assert isinstance(credential.inner, ManagedIdentityCredential)
    assert f"ManagedIdentityCredential will use IMDS with client_id: {CLIENT_ID}" in \
        plain_vm_environment.text


def test_managed_identity_without_a_client_id_is_the_system_assigned_one(
        plain_vm_environment: pytest.LogCaptureFixture) -> None:
    from azure.identity import ManagedIdentityCredential

    credential = build_credential(AzureSettings(credential=CredentialKind.MANAGED_IDENTITY))
    assert isinstance(credential, ManagedIdentityCredential)
    lines = [r.getMessage() for r in plain_vm_environment.records
             if "ManagedIdentityCredential will use" in r.getMessage()]
    assert lines == ["ManagedIdentityCredential will use IMDS"]


def test_default_passes_the_client_id_to_its_managed_identity(
        plain_vm_environment: pytest.LogCaptureFixture) -> None:
    from azure.identity import AzureCliCredential, DefaultAzureCredential

    credential = build_credential(AzureSettings(credential=CredentialKind.DEFAULT,
                                                managed_identity_client_id=CLIENT_ID))
    assert isinstance(credential, DefaultAzureCredential)
    assert f"will use IMDS with client_id: {CLIENT_ID}" in plain_vm_environment.text
    cli = build_credential(AzureSettings(), cli_timeout=7)
    assert isinstance(cli, AzureCliCredential) and cli._process_timeout == 7


def test_az_missing_from_path_says_so_with_the_path(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """The real AzureCliCredential finds no az: the one-line error names PATH, not az login.
    (The endpoint is a closed loopback port; the token is needed before any request.)"""
    monkeypatch.setenv("PATH", str(tmp_path))
    compute = ArmCompute(AzureSettings(arm_endpoint="https://127.0.0.1:9"), timeout=5)
    try:
        with pytest.raises(HealthCheckError) as caught:
            compute.instance_view(VMTarget("vm-1", "sub", "rg", "127.0.0.1"))
    finally:
        compute.close()
    assert str(caught.value) == (
        f"az not found on the service's PATH (PATH={tmp_path}): install the Azure CLI or "
        "re-run 'azlin lifecycle install' from a shell where 'az' works")


# What the real az prints (azure-cli issues #13848 and #18556), as AzureCliCredential
# passes it on: its stderr is the ClientAuthenticationError's message.
AT_START = ("Traceback (most recent call last):\n"
            '  File "/opt/az/lib/python3.11/site-packages/azure/cli/core/_session.py", line 65,'
            " in save\n    with codecs_open(self.filename, 'w', encoding=self._encoding) as f:\n"
            "OSError: [Errno 30] Read-only file system: '{dir}/az.sess'\n")
IN_COMMAND = ("The command failed with an unexpected error. Here is the traceback:\n"
              "[Errno 30] Read-only file system: "
              "'{dir}/commands/2026-12-03.06-23-39.account_get-access-token.646.log'\n"
              "Traceback (most recent call last):\n  File \"/opt/az/lib/python3.11/...\"\n")


@pytest.mark.parametrize("stderr,file", [
    (AT_START, "az.sess"),
    (IN_COMMAND, "commands/2026-12-03.06-23-39.account_get-access-token.646.log"),
])
def test_a_read_only_config_dir_is_named_not_reported_as_a_login(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stderr: str, file: str) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))
    message = str(login_error(ClientAuthenticationError(stderr.format(dir=tmp_path))))
    assert message == (
        f"the Azure CLI cannot write under its config dir {tmp_path} ([Errno 30] Read-only "
        f"file system: '{tmp_path}/{file}'): make {tmp_path} writable for the service: "
        "re-run 'azlin lifecycle install' (its unit opens $AZURE_CONFIG_DIR or ~/.azure)")
    assert "az login" not in message


def test_a_config_dir_owned_by_someone_else_says_permission_denied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    monkeypatch.delenv("AZURE_CONFIG_DIR", raising=False)
    azure = Path.home() / ".azure"
    stderr = f"OSError: [Errno 13] Permission denied: '{azure}/az.sess'\n"
    message = str(login_error(ClientAuthenticationError(stderr)))
    assert message.startswith(f"the Azure CLI cannot write under its config dir {azure} "
                              f"([Errno 13] Permission denied: '{azure}/az.sess'): make {azure}")
    assert "chown" in message and "\n" not in message


def test_only_a_real_missing_login_says_az_login() -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    logged_out = login_error(CredentialUnavailableError("Please run 'az login' to set up an "
                                                        "account"))
    assert str(logged_out).startswith("Azure login is missing or expired (Please run 'az "
                                      "login' to set up an account): run `az login`")
    # The managed identity failing is about the VM's identity, not az.
    unavailable = CredentialUnavailableError(
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS "
        "endpoint.")
    message = str(login_error(unavailable, CredentialKind.MANAGED_IDENTITY))
    assert message.startswith("the managed identity did not authenticate (ManagedIdentityCredential "
                              "authentication unavailable, no response from the IMDS endpoint)")
    assert "az login" not in message and "\n" not in message
    # ARM refusing the token (401) of a logged-in az: the login is what to renew.
    refused = ClientAuthenticationError("(ExpiredAuthenticationToken) The access token expiry")
    assert "run `az login`" in str(login_error(refused))


def test_a_repair_refused_by_a_managed_identity_points_at_the_identity_not_az_login() -> None:
    """The repair's POST words a login failure for the configured credential, as reads do."""
    import time as _time

    from azure.core.exceptions import ClientAuthenticationError

    from azlin_lifecycle.adapters.azure.compute import ArmCompute
    from azlin_lifecycle.adapters.azure.repairs import ArmRepairs
    from azlin_lifecycle.config import AzureSettings, CredentialKind
    from azlin_lifecycle.errors import HealthCheckError
    from azlin_lifecycle.models import VMTarget

    compute = ArmCompute(AzureSettings(credential=CredentialKind.MANAGED_IDENTITY))
    target = VMTarget("vm-1", "sub-1", "rg-1", ssh_host=None)

    def refused(kw: dict[str, object]) -> object:
        raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")

    with pytest.raises(HealthCheckError) as caught:
        ArmRepairs(compute)._post_once(target, "restart of vm-1", refused, 5.0,
                                       _time.monotonic() + 5.0)
    assert "managed identity did not authenticate" in str(caught.value)
    assert "az login" not in str(caught.value)
