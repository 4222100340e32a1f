from __future__ import annotations

import dataclasses
import logging
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from azlin_lifecycle.config import (
    SECTIONS,
    AzureSettings,
    DaemonSettings,
    HaCredential,
    HaSettings,
    HealingSettings,
    HookSettings,
    LifecycleConfig,
    LogLevel,
    MetricsSettings,
    MonitoringConfig,
    RestartPolicy,
    parse_toml,
    render_toml,
    rules,
)
from azlin_lifecycle.errors import LifecycleConfigError

SPEC_EXAMPLE = Path(__file__).parent.parent / "support" / "spec_example.toml"


def test_spec_example_loads_unchanged_and_round_trips(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = parse_toml(SPEC_EXAMPLE.read_text(), "spec.toml")
    assert "pid_file is unused" in caplog.text and "log_file is unused" in caplog.text
    assert cfg.daemon.log_level is LogLevel.INFO
    vm = cfg.vms["my-vm"]
    assert vm.enabled and vm.check_interval_seconds == 60
    assert vm.restart_policy is RestartPolicy.ON_FAILURE and vm.ssh_failure_threshold == 3
    assert vm.hooks == {
        "on_failure": "/usr/local/bin/alert-failure.sh",
        "on_healthy": "/usr/local/bin/alert-healthy.sh",
        "on_restart": "/usr/local/bin/alert-restart.sh",
    }
    assert cfg.vms["another-vm"].check_interval_seconds == 120
    again = parse_toml(render_toml(cfg), "rendered")
    assert again == cfg


def test_defaults_are_safe() -> None:
    vm = MonitoringConfig()
    assert vm.restart_policy is RestartPolicy.NEVER
    assert (vm.check_interval_seconds, vm.ssh_failure_threshold, vm.ssh_port) == (60, 3, 22)
    assert (vm.ssh_host, vm.ssh_user, vm.ssh_key) == (None, None, None)  # resolved from Azure
    cfg = LifecycleConfig()
    assert cfg.healing.grace_period_seconds == 300 and cfg.healing.restart_budget == 3
    assert cfg.azure.arm_endpoint == "https://management.azure.com"


def test_string_policy_is_accepted_as_in_the_spec() -> None:
    vm = MonitoringConfig(restart_policy="on-failure", hooks={"on_failure": "/bin/true"})  # type: ignore[arg-type]
    assert vm.restart_policy is RestartPolicy.ON_FAILURE


BAD = [
    ("[vms.a]\ncheck_interval_seconds = 5\n",
     'f.toml [vms.a]: check_interval_seconds = 5 is not allowed: expected an integer from 10 to 86400'),
    ("[vms.a]\ncheck_interval_seconds = \"60\"\n",
     'f.toml [vms.a]: check_interval_seconds = "60" is not allowed: expected an integer from 10'),
    ("[vms.a]\nenabled = 1\n",
     "f.toml [vms.a]: enabled = 1 is not allowed: expected true or false"),
    ("[vms.a]\nrestart_policy = \"sometimes\"\n",
     'f.toml [vms.a]: restart_policy = "sometimes" is not allowed: expected one of "never", '
     '"on-failure", "always"'),
    ("[vms.a]\nssh_failure_threshold = 0\n",
     "f.toml [vms.a]: ssh_failure_threshold = 0 is not allowed: expected an integer from 1 to 100"),
    ("[vms.a]\nssh_port = 70000\n",
     "f.toml [vms.a]: ssh_port = 70000 is not allowed: expected an integer from 1 to 65535"),
    ("[vms.a]\ncolour = \"red\"\n",
     "f.toml [vms.a]: unknown key 'colour'; allowed keys: bastion, check_interval_seconds,"),
    ("[vms.a.hooks]\non_boot = \"/bin/true\"\n",
     "f.toml [vms.a.hooks]: unknown hook type 'on_boot'; allowed: on_start, on_stop, on_restart, "
     "on_failure, on_healthy"),
    ("[vms.a.hooks]\non_failure = \"alert.sh\"\n",
     'f.toml [vms.a.hooks]: on_failure = "alert.sh" is not allowed: expected an absolute path'),
    ("[vms.a.hooks]\non_failure = \"http://example.test/x\"\n",
     'f.toml [vms.a.hooks]: on_failure = "http://example.test/…" is not allowed: apprise has '
     "no service with the scheme http://; expected an absolute path to an executable (may "
     "start with ~), an https:// URL (a JSON webhook) or a notification URL such as slack://"),
    ("[vms.\"bad name\"]\n", "f.toml [vms.bad name]: invalid VM name 'bad name'"),
    ("[vms]\na = 3\n", "f.toml: vms.a must be a table ([vms.a])"),
    ("[daemon]\nlog_level = \"LOUD\"\n",
     'f.toml [daemon]: log_level = "LOUD" is not allowed: expected one of "DEBUG", "INFO"'),
    ("[azure]\narm_endpoint = \"http://127.0.0.1\"\n",
     'f.toml [azure]: arm_endpoint = "http://127.0.0.1" is not allowed: expected an https:// URL'),
    ("[azure]\ncredential = \"password\"\n",
     'f.toml [azure]: credential = "password" is not allowed: expected one of "cli", "default"'),
    ("[healing]\nrestart_budget = -1\n",
     "f.toml [healing]: restart_budget = -1 is not allowed: expected an integer from 0 to 1000"),
    ("[healing]\nbreaker_failing_ratio = 2.0\n",
     "f.toml [healing]: breaker_failing_ratio = 2.0 is not allowed: expected a number from 0.01 to 1"),
    ("[hooks]\ntimeout_seconds = 0\n",
     "f.toml [hooks]: timeout_seconds = 0 is not allowed: expected a number from 0.1 to 3600"),
    ("surprise = 1\n",
     "f.toml: unknown table or key 'surprise'; allowed: azure, daemon, discovery, ha, healing"),
    ("daemon = 1\n", "f.toml: daemon must be a table ([daemon])"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_every_validation_error_names_file_table_key_value_and_allowed(
    text: str, message: str
) -> None:
    with pytest.raises(LifecycleConfigError) as info:
        parse_toml(text, "f.toml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_syntax_error_gives_path_line_and_column() -> None:
    with pytest.raises(LifecycleConfigError) as info:
        parse_toml("[vms.a]\nenabled = true\ncheck_interval_seconds = = 3\n", "/x/f.toml")
    text = str(info.value)
    assert text.startswith("/x/f.toml: not valid TOML:")
    assert "line 3" in text and "column" in text


def test_programmatic_config_is_validated_too() -> None:
    with pytest.raises(LifecycleConfigError, match="check_interval_seconds = 1 is not allowed"):
        MonitoringConfig(check_interval_seconds=1)
    with pytest.raises(LifecycleConfigError, match="unknown hook type 'on_reboot'"):
        MonitoringConfig(hooks={"on_reboot": "/bin/true"})


MI_CLIENT_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def test_managed_identity_with_and_without_a_client_id_round_trips() -> None:
    from azlin_lifecycle.config import CredentialKind

    system = parse_toml('[azure]\ncredential = "managed_identity"\n', "f.toml")
    assert system.azure.credential is CredentialKind.MANAGED_IDENTITY
    assert system.azure.managed_identity_client_id is None
    user = parse_toml('[azure]\ncredential = "managed_identity"\n'
                      f'managed_identity_client_id = "{MI_CLIENT_ID.upper()}"\n', "f.toml")
    assert user.azure.managed_identity_client_id == MI_CLIENT_ID.upper()
    assert parse_toml(render_toml(user), "rendered") == user
    # "default" tries managed identity too, so the client id means something there.
    default = parse_toml('[azure]\ncredential = "default"\n'
                         f'managed_identity_client_id = "{MI_CLIENT_ID}"\n', "f.toml")
    assert default.azure.managed_identity_client_id == MI_CLIENT_ID


@pytest.mark.parametrize("value", ["not-a-guid", MI_CLIENT_ID[:-1], MI_CLIENT_ID + "0",
                                   MI_CLIENT_ID.replace("-", ""), "", 42])
def test_managed_identity_client_id_must_be_a_guid(value: object) -> None:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    text = f'[azure]\ncredential = "managed_identity"\nmanaged_identity_client_id = {shown}\n'
    with pytest.raises(LifecycleConfigError) as caught:
        parse_toml(text, "f.toml")
    assert str(caught.value) == (f"f.toml [azure]: managed_identity_client_id = {shown} is not "
                                 "allowed: expected a GUID such as "
                                 "12345678-90ab-cdef-1234-567890abcdef")


def test_a_client_id_with_the_cli_credential_is_refused() -> None:
    for text in (f'[azure]\nmanaged_identity_client_id = "{MI_CLIENT_ID}"\n',
                 f'[azure]\ncredential = "cli"\nmanaged_identity_client_id = "{MI_CLIENT_ID}"\n'):
        with pytest.raises(LifecycleConfigError) as caught:
            parse_toml(text, "f.toml")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith('f.toml [azure]: managed_identity_client_id is set but '
                                  'credential = "cli" does not use it: set credential = '
                                  '"managed_identity"')


def test_unknown_credential_lists_managed_identity() -> None:
    with pytest.raises(LifecycleConfigError, match='expected one of "cli", "default", '
                                                   '"managed_identity"'):
        parse_toml('[azure]\ncredential = "msi"\n', "f.toml")


def test_the_file_has_one_table_per_settings_section() -> None:
    assert list(SECTIONS.items()) == [("daemon", DaemonSettings), ("azure", AzureSettings),
                                      ("healing", HealingSettings), ("hooks", HookSettings),
                                      ("ha", HaSettings), ("metrics", MetricsSettings)]


@pytest.mark.parametrize("kind", [*SECTIONS.values(), MonitoringConfig],
                         ids=lambda kind: kind.__name__)
def test_every_default_passes_its_own_rule(kind: type[Any]) -> None:
    table = "vms.a" if kind is MonitoringConfig else next(
        name for name, section in SECTIONS.items() if section is kind)
    keys = rules(kind)
    for f in dataclasses.fields(kind):
        if f.name not in keys:
            assert (kind, f.name) == (MonitoringConfig, "hooks")  # its own [vms.NAME.hooks]
            continue
        if f.default is None:  # unset: resolved at run time, or not used
            continue
        rule = keys[f.name]
        assert rule.check(f.default), f"{kind.__name__}.{f.name} = {f.default!r}"
        assert rule.convert(f.default) == f.default
        # Written to a file, the default loads back as itself.
        value = f.default.value if isinstance(f.default, StrEnum) else f.default
        text = tomli_w.dumps({"vms": {"a": {f.name: value}}} if table == "vms.a"
                             else {table: {f.name: value}})
        loaded = parse_toml(text, "f.toml")
        section = loaded.vms["a"] if table == "vms.a" else getattr(loaded, table)
        assert getattr(section, f.name) == f.default and type(getattr(section, f.name)) is type(
            f.default), f"{table}.{f.name}"


def test_unknown_key_lists_exactly_the_settings() -> None:
    with pytest.raises(LifecycleConfigError) as vm:
        parse_toml("[vms.a]\nhook = 1\n", "f.toml")
    assert str(vm.value) == (
        "f.toml [vms.a]: unknown key 'hook'; allowed keys: bastion, check_interval_seconds, dry_run, "
        "enabled, resource_group, restart_policy, ssh_failure_threshold, ssh_host, ssh_key, "
        "ssh_port, ssh_user, subscription_id")
    with pytest.raises(LifecycleConfigError) as daemon:
        parse_toml("[daemon]\nworkers = 1\n", "f.toml")
    assert str(daemon.value) == (
        "f.toml [daemon]: unknown key 'workers'; allowed keys: azure_timeout_seconds, "
        "history_size, log_level, max_open_ssh_connections, max_workers, ssh_timeout_seconds")


def test_only_the_four_spec_keys_are_written_at_their_defaults() -> None:
    doc = tomllib.loads(render_toml(LifecycleConfig().with_vm("a", MonitoringConfig())))
    assert doc == {"vms": {"a": {"enabled": True, "check_interval_seconds": 60,
                                 "restart_policy": "never", "ssh_failure_threshold": 3}}}


# --------------------------------------------------------------------------- [ha]
def test_ha_is_off_by_default_and_round_trips() -> None:
    assert parse_toml("", "f.toml").ha.enabled is False
    text = ('[ha]\nenabled = true\naccount_url = "https://acct.blob.core.windows.net/"\n'
            'lease_seconds = 20\n')
    cfg = parse_toml(text, "f.toml")
    assert cfg.ha.account_url == "https://acct.blob.core.windows.net"
    assert cfg.ha.container == "azlin-lifecycle" and cfg.ha.blob == "leader"
    assert cfg.ha.credential is HaCredential.AZURE and cfg.ha.lease_seconds == 20
    assert parse_toml(render_toml(cfg), "f.toml") == cfg


@pytest.mark.parametrize(("text", "message"), [
    ("enabled = true\n",
     "f.toml [ha]: enabled = true needs account_url, the storage account's blob endpoint "
     "(https://ACCOUNT.blob.core.windows.net)"),
    ('account_url = "https://a.blob.core.windows.net"\nlease_seconds = 10\n',
     "f.toml [ha]: lease_seconds = 10 is not allowed: expected an integer from 15 to 60"),
    ('account_url = "http://acct.blob.core.windows.net"\n',
     'f.toml [ha]: account_url = "http://acct.blob.core.windows.net" is not allowed: expected '
     "the storage account's blob endpoint, https://ACCOUNT.blob.core.windows.net (http:// only "
     "on a loopback address, for Azurite)"),
    ('account_url = "http://127.0.0.1:10000/devstoreaccount1"\n',
     'f.toml [ha]: account_url = "http://127.0.0.1:10000/devstoreaccount1" is plain http, and '
     'an Azure token is only sent over https: use an https:// URL, or credential = "azurite" '
     "for a local Azurite"),
    ('account_url = "https://acct.blob.core.windows.net"\ncredential = "azurite"\n',
     'f.toml [ha]: credential = "azurite" (Azurite\'s published key) is only for a loopback '
     'Azurite, not account_url = "https://acct.blob.core.windows.net": set credential = '
     '"azure" to use the [azure] login'),
    ('container = "Has_Caps"\n',
     'f.toml [ha]: container = "Has_Caps" is not allowed: expected a container name: 3-63 '
     "lowercase letters, digits and single hyphens, starting with a letter or digit"),
    ('container = "a--b"\n', 'container = "a--b" is not allowed'),
])
def test_bad_ha_settings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(LifecycleConfigError) as caught:
        parse_toml("[ha]\n" + text, "f.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_azurite_is_accepted_only_on_loopback() -> None:
    cfg = parse_toml('[ha]\nenabled = true\naccount_url = "http://127.0.0.1:10000/'
                     'devstoreaccount1"\ncredential = "azurite"\n', "f.toml")
    assert cfg.ha.credential is HaCredential.AZURITE
