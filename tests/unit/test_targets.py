"""resolve_target: where a VM is in Azure (our settings, then azlin's, then the Azure CLI's;
and where each value came from) and what SSH leaves unset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.azlin_settings import AzlinContext, AzlinSettings
from azlin_lifecycle.config import AzureSettings, LifecycleConfig, MonitoringConfig
from azlin_lifecycle.errors import AzlinSettingsError, LifecycleConfigError
from azlin_lifecycle.models import VMTarget
from azlin_lifecycle.targets import (
    CLI_DEFAULT,
    Setting,
    choose_resource_group,
    choose_subscription,
    read_cli_subscription,
    resolve_target,
)

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


AZLIN_SUB = "99999999-0000-0000-0000-000000000009"


def azlin(sub: str | None = None, group: str | None = None, default_group: str | None = None,
          name: str = "prod") -> AzlinSettings:
    context = None if sub is None and group is None else AzlinContext(
        name, Path(f"/a/contexts/{name}.toml"), subscription_id=sub, resource_group=group)
    return AzlinSettings(context=context, default_resource_group=default_group,
                         config_path=Path("/a/config.toml"))


def config(vm: MonitoringConfig | None = None, subscription: str | None = None,
           group: str | None = None) -> LifecycleConfig:
    return LifecycleConfig(azure=AzureSettings(subscription_id=subscription, resource_group=group),
                           vms={"web-1": vm or MonitoringConfig()})


def places(target: VMTarget) -> tuple[str, str | None, str, str | None]:
    return (target.subscription_id, target.subscription_from, target.resource_group,
            target.resource_group_from)


@pytest.mark.parametrize(("vm", "ours", "theirs", "cli", "expected"), [
    # [vms.X] wins over everything
    (MonitoringConfig(subscription_id="vm-sub", resource_group="vm-rg"),
     config(subscription="cfg-sub", group="cfg-rg"), azlin(AZLIN_SUB, "ctx-rg", "dflt-rg"),
     CLI_SUB, ("vm-sub", "[vms.web-1]", "vm-rg", "[vms.web-1]")),
    # then [azure]
    (None, config(subscription="cfg-sub", group="cfg-rg"), azlin(AZLIN_SUB, "ctx-rg", "dflt-rg"),
     CLI_SUB, ("cfg-sub", "[azure]", "cfg-rg", "[azure]")),
    # then azlin's selected context (over config.toml and the Azure CLI)
    (None, config(), azlin(AZLIN_SUB, "ctx-rg", "dflt-rg"), CLI_SUB,
     (AZLIN_SUB, "azlin context prod, /a/contexts/prod.toml", "ctx-rg",
      "azlin context prod, /a/contexts/prod.toml")),
    # then default_resource_group, and the Azure CLI's default subscription
    (None, config(), azlin(default_group="dflt-rg"), CLI_SUB,
     (CLI_SUB, CLI_DEFAULT, "dflt-rg", "azlin's default_resource_group, /a/config.toml")),
    # a context that pins only a group: the subscription falls through to the CLI's
    (None, config(), azlin(group="ctx-rg", default_group="dflt-rg"), CLI_SUB,
     (CLI_SUB, CLI_DEFAULT, "ctx-rg", "azlin context prod, /a/contexts/prod.toml")),
    # each value on its own: our subscription, azlin's group
    (MonitoringConfig(subscription_id="vm-sub"), config(), azlin(AZLIN_SUB, "ctx-rg"), CLI_SUB,
     ("vm-sub", "[vms.web-1]", "ctx-rg", "azlin context prod, /a/contexts/prod.toml")),
])
def test_precedence_and_where_each_value_came_from(
        vm: MonitoringConfig | None, ours: LifecycleConfig, theirs: AzlinSettings, cli: str,
        expected: tuple[str, str, str, str]) -> None:
    if vm is not None:
        ours = LifecycleConfig(azure=ours.azure, vms={"web-1": vm})
    assert places(resolve_target(ours, "web-1", theirs, cli)) == expected
    assert choose_subscription(ours, "web-1", theirs, cli) == Setting(expected[0], expected[1])
    assert choose_resource_group(ours, "web-1", theirs) == Setting(expected[2], expected[3])


def test_subscription_falls_back_to_the_cli_default_from_its_file(azure_dir: Path) -> None:
    write_profile(azure_dir, profile({"id": CLI_SUB, "isDefault": True}))
    target = resolve_target(config(group="rg"), "web-1", azlin())
    assert (target.subscription_id, target.subscription_from) == (CLI_SUB, CLI_DEFAULT)


def test_azlins_files_are_read_when_not_given(azure_dir: Path, isolated_dirs: Path) -> None:
    (isolated_dirs / "contexts").mkdir(parents=True)
    (isolated_dirs / "contexts" / "prod.toml").write_text(
        f'subscription_id = "{AZLIN_SUB}"\nresource_group = "prod-rg"\n')
    (isolated_dirs / "active-context").write_text("prod\n")
    target = resolve_target(config(), "web-1")
    assert (target.subscription_id, target.resource_group) == (AZLIN_SUB, "prod-rg")
    assert target.subscription_from == f"azlin context prod, {isolated_dirs}/contexts/prod.toml"


def test_a_subscription_id_in_azlins_config_toml_is_not_read(azure_dir: Path,
                                                             isolated_dirs: Path) -> None:
    isolated_dirs.mkdir(parents=True)
    (isolated_dirs / "config.toml").write_text(
        'subscription_id = "not-azlins-key"\ndefault_resource_group = "rg"\n')
    with pytest.raises(LifecycleConfigError, match="has no Azure subscription"):
        resolve_target(config(), "web-1")


def test_a_broken_selected_context_stops_the_check(azure_dir: Path, isolated_dirs: Path) -> None:
    isolated_dirs.mkdir(parents=True)
    (isolated_dirs / "active-context").write_text("gone")
    with pytest.raises(AzlinSettingsError, match=r"contexts/gone\.toml: azlin context .gone."):
        resolve_target(config(subscription="s", group="g"), "web-1")


def test_no_subscription_anywhere_is_one_clear_error(azure_dir: Path) -> None:
    with pytest.raises(LifecycleConfigError) as err:
        resolve_target(config(group="rg"), "web-1", azlin())
    message = str(err.value)
    assert "\n" not in message
    assert "web-1" in message and "[azure] subscription_id" in message
    assert "az account set --subscription" in message and "azlin context" in message


def test_no_group_says_why_azlins_config_did_not_give_one(azure_dir: Path) -> None:
    broken = AzlinSettings(config_path=Path("/a/config.toml"),
                           config_problem="not valid TOML (line 1)")
    with pytest.raises(LifecycleConfigError) as err:
        resolve_target(config(subscription="s"), "web-1", broken)
    assert str(err.value).endswith(
        "or azlin's default_resource_group; azlin's /a/config.toml not valid TOML (line 1)")


def test_origins_take_no_part_in_comparing_targets() -> None:
    a = VMTarget("vm", "s", "g", None, subscription_from="[azure]")
    b = VMTarget("vm", "s", "g", None, subscription_from="[vms.vm]")
    assert a == b and hash(a) == hash(b)


def test_unset_ssh_fields_stay_unset_for_the_address_book(azure_dir: Path) -> None:
    target = resolve_target(config(subscription="s", group="rg"), "web-1", azlin())
    assert (target.ssh_host, target.ssh_user, target.ssh_key) == (None, None, None)
    assert not target.ssh_resolved


def test_configured_ssh_fields_are_kept(azure_dir: Path) -> None:
    vm = MonitoringConfig(ssh_host="10.0.0.4", ssh_port=2222, ssh_user="ops", ssh_key="~/k")
    target = resolve_target(config(vm, "s", "rg"), "web-1", azlin())
    assert (target.ssh_host, target.ssh_port, target.ssh_user, target.ssh_key) == (
        "10.0.0.4", 2222, "ops", "~/k")
    assert target.ssh_resolved
