"""resolve_target: where a VM is in Azure (the subscription's fallbacks) and what SSH leaves unset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.config import AzureSettings, LifecycleConfig, MonitoringConfig
from azlin_lifecycle.errors import LifecycleConfigError
from azlin_lifecycle.targets import AzlinDefaults, read_cli_subscription, resolve_target

CLI_SUB = "11111111-2222-3333-4444-555555555555"


def profile(*subs: dict[str, Any]) -> dict[str, Any]:
    """The shape `az login` writes to azureProfile.json."""
    return {"installationId": "9d1c3e7e-0000-0000-0000-000000000000", "subscriptions": [
        {"id": s["id"], "name": s.get("name", "sub"), "state": "Enabled",
         "user": {"name": "me@example.com", "type": "user"}, "isDefault": s["isDefault"],
         "tenantId": "72f988bf-0000-0000-0000-000000000000", "environmentName": "AzureCloud",
         "homeTenantId": "72f988bf-0000-0000-0000-000000000000", "managedByTenants": []}
        for s in subs]}


@pytest.fixture
def azure_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "azure"
    path.mkdir()
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(path))
    return path


def write_profile(azure_dir: Path, data: Any, bom: bool = True) -> Path:
    path = azure_dir / "azureProfile.json"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + json.dumps(data).encode())
    return path


def config(vm: MonitoringConfig | None = None, subscription: str | None = None) -> LifecycleConfig:
    return LifecycleConfig(azure=AzureSettings(subscription_id=subscription, resource_group="rg"),
                           vms={"web-1": vm or MonitoringConfig()})


def test_cli_default_subscription_read_through_the_bom(azure_dir: Path) -> None:
    write_profile(azure_dir, profile({"id": "other", "isDefault": False},
                                     {"id": CLI_SUB, "isDefault": True}))
    assert read_cli_subscription() == CLI_SUB


@pytest.mark.parametrize("data", [
    {"subscriptions": [{"id": CLI_SUB, "isDefault": False}]},
    {"subscriptions": []}, {"subscriptions": "x"}, [], {"subscriptions": [{"isDefault": True}]},
])
def test_no_default_subscription(azure_dir: Path, data: Any) -> None:
    write_profile(azure_dir, data, bom=False)
    assert read_cli_subscription() is None


def test_missing_or_garbled_profile_is_no_subscription(azure_dir: Path) -> None:
    assert read_cli_subscription() is None
    (azure_dir / "azureProfile.json").write_bytes(b"\xef\xbb\xbf{not json")
    assert read_cli_subscription() is None


def test_profile_is_reread_when_it_changes(azure_dir: Path) -> None:
    path = write_profile(azure_dir, profile({"id": CLI_SUB, "isDefault": True}))
    assert read_cli_subscription() == CLI_SUB
    write_profile(azure_dir, profile({"id": "new-default", "isDefault": True}))
    stamp = path.stat().st_mtime + 5  # `az account set` a moment later
    os.utime(path, (stamp, stamp))
    assert read_cli_subscription() == "new-default"


def test_subscription_falls_back_to_the_cli_default(azure_dir: Path) -> None:
    write_profile(azure_dir, profile({"id": CLI_SUB, "isDefault": True}))
    target = resolve_target(config(), "web-1", AzlinDefaults())
    assert target.subscription_id == CLI_SUB


def test_configured_and_azlin_subscriptions_win_over_the_cli(azure_dir: Path) -> None:
    write_profile(azure_dir, profile({"id": CLI_SUB, "isDefault": True}))
    assert resolve_target(config(subscription="cfg"), "web-1",
                          AzlinDefaults(subscription_id="azlin")).subscription_id == "cfg"
    assert resolve_target(config(), "web-1",
                          AzlinDefaults(subscription_id="azlin")).subscription_id == "azlin"
    vm = MonitoringConfig(subscription_id="own")
    assert resolve_target(config(vm, "cfg"), "web-1", AzlinDefaults()).subscription_id == "own"


def test_no_subscription_anywhere_is_one_clear_error(azure_dir: Path) -> None:
    with pytest.raises(LifecycleConfigError) as err:
        resolve_target(config(), "web-1", AzlinDefaults())
    message = str(err.value)
    assert "\n" not in message
    assert "web-1" in message and "[azure] subscription_id" in message
    assert "az account set --subscription" in message


def test_unset_ssh_fields_stay_unset_for_the_address_book(azure_dir: Path) -> None:
    target = resolve_target(config(subscription="s"), "web-1", AzlinDefaults())
    assert (target.ssh_host, target.ssh_user, target.ssh_key) == (None, None, None)
    assert not target.ssh_resolved


def test_configured_ssh_fields_are_kept(azure_dir: Path) -> None:
    vm = MonitoringConfig(ssh_host="10.0.0.4", ssh_port=2222, ssh_user="ops", ssh_key="~/k")
    target = resolve_target(config(vm, "s"), "web-1", AzlinDefaults())
    assert (target.ssh_host, target.ssh_port, target.ssh_user, target.ssh_key) == (
        "10.0.0.4", 2222, "ops", "~/k")
    assert target.ssh_resolved
