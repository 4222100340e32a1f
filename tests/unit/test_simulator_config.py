"""The lifecycle configuration the simulator writes for its fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from azlin_lifecycle.config import load_file
from azlin_lifecycle.errors import LifecycleConfigError
from azlin_lifecycle.simulator.configfile import fleet_env, write_config


def write(path: Path, **kwargs: object) -> None:
    write_config(path, subscription_id="sub", resource_group="rg",
                 arm_endpoint="https://127.0.0.1:4443", ca_path=Path("/x/ca.pem"),
                 client_key=Path("/x/client_key"), ports={"vm-001": 2201, "vm-002": 2202},
                 **kwargs)  # type: ignore[arg-type]


def test_complete_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write(path, hooks={"on_failure": "/usr/local/bin/alert"},
          extra_toml={"healing": {"grace_period_seconds": 0}, "daemon": {"max_workers": 8}})
    text = path.read_text()
    assert 'credential = "cli"' in text
    config = load_file(path)
    assert (config.azure.subscription_id, config.azure.resource_group) == ("sub", "rg")
    assert config.azure.arm_endpoint == "https://127.0.0.1:4443"
    assert config.azure.ca_bundle == "/x/ca.pem"
    assert config.healing.grace_period_seconds == 0 and config.daemon.max_workers == 8
    vm = config.vms["vm-002"]
    assert (vm.ssh_host, vm.ssh_port, vm.ssh_user, vm.ssh_key) == (
        "127.0.0.1", 2202, "azureuser", "/x/client_key")
    assert vm.restart_policy.value == "on-failure" and vm.check_interval_seconds == 10
    assert dict(vm.hooks) == {"on_failure": "/usr/local/bin/alert"}


def test_invalid_extra_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    with pytest.raises(LifecycleConfigError, match="check_interval_seconds = 5"):
        write(path, check_interval_seconds=5)
    assert not path.exists()


def test_env_puts_az_first_and_trusts_the_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    env = fleet_env(Path("/sim/bin"), Path("/sim/ca.pem"))
    assert env["PATH"] == "/sim/bin:/usr/bin" and env["REQUESTS_CA_BUNDLE"] == "/sim/ca.pem"
