"""`simulate run` as a real process, driven by the other simulate commands and by
SimulatorClient from this process."""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.simulate_cmds import simulate_group
from azlin_lifecycle.config import parse_toml
from azlin_lifecycle.errors import SimulatorError
from azlin_lifecycle.simulator import SimulatorClient
from tests.support.simulated import simulate_run


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("simcli")
    with simulate_run(directory, "--vms", "4", "--boot-seconds", "0.5",
                      "--operation-seconds", "0.2") as output:
        yield directory
    assert "Simulating 4 VMs in resource group rg-sim" in output[0]
    assert not (directory / "simulator.json").exists()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(simulate_group, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_status_lists_vms(sim_dir: Path) -> None:
    lines = invoke("status", "--dir", str(sim_dir)).splitlines()
    assert lines[0].split() == ["VM", "POWER", "PROVISIONING", "SSH", "MODE", "PORT", "OPERATION"]
    assert [line.split()[:5] for line in lines[1:5]] == [
        [f"vm-00{i}", "running", "succeeded", "up", "up"] for i in range(1, 5)]
    data = json.loads(invoke("status", "--dir", str(sim_dir), "--json"))
    assert len(data["vms"]) == 4


def test_ssh_and_power_commands_change_the_running_simulator(sim_dir: Path) -> None:
    client = SimulatorClient.from_dir(sim_dir)
    port = client.ssh_port("vm-002")
    invoke("ssh", "--dir", str(sim_dir), "vm-002", "refused")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    invoke("ssh", "--dir", str(sim_dir), "vm-002", "up")
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert "vm-003: power state deallocated" in invoke("power", "--dir", str(sim_dir), "vm-003",
                                                        "deallocated")
    assert client.power_state("vm-003") == "deallocated"
    client.set_power_state("vm-003", "running")
    assert client.power_state("vm-003") == "running"


def test_arm_fault_and_operations_through_the_sdk(sim_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient

    client = SimulatorClient.from_dir(sim_dir)
    monkeypatch.setenv("PATH", client.env()["PATH"])
    compute = ComputeManagementClient(
        AzureCliCredential(process_timeout=20), client.subscription_id,
        base_url=client.arm_endpoint, credential_scopes=["https://management.azure.com/.default"],
        connection_verify=str(client.ca_path), polling_interval=0, retry_total=0)
    invoke("arm-fault", "--dir", str(sim_dir), "--status", "503", "--count", "1")
    with pytest.raises(HttpResponseError) as exc:
        compute.virtual_machines.instance_view("rg-sim", "vm-001")
    assert exc.value.status_code == 503
    assert "fails with Boom" in invoke("fail-next", "--dir", str(sim_dir), "vm-004",
                                       "--code", "Boom")
    with pytest.raises(HttpResponseError, match="Boom"):
        compute.virtual_machines.begin_restart("rg-sim", "vm-004").result()
    compute.virtual_machines.begin_restart("rg-sim", "vm-001").result()
    ops = client.operations()
    assert [(o["vm"], o["action"], o["status"]) for o in ops[-2:]] == [
        ("vm-004", "restart", "Failed"), ("vm-001", "restart", "Succeeded")]
    table = invoke("operations", "--dir", str(sim_dir))
    assert "vm-004  restart  Failed" in table and "Boom" in table


def test_config_command_writes_a_valid_config(sim_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "lifecycle-config.toml"
    invoke("config", "--dir", str(sim_dir), str(target), "--policy", "always")
    config = parse_toml(target.read_text(), str(target))
    client = SimulatorClient.from_dir(sim_dir)
    assert config.azure.arm_endpoint == client.arm_endpoint
    assert config.azure.ca_bundle == str(client.ca_path)
    assert sorted(config.vms) == ["vm-001", "vm-002", "vm-003", "vm-004"]
    vm = config.vms["vm-002"]
    assert (vm.ssh_host, vm.ssh_port, vm.ssh_key, vm.restart_policy.value) == (
        "127.0.0.1", client.ssh_port("vm-002"), str(client.client_key), "always")
    assert tomllib.loads(target.read_text())["azure"]["credential"] == "cli"


def test_commands_without_a_simulator_say_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="simulate run --dir"):
        SimulatorClient.from_dir(tmp_path, wait=0.1)
    result = CliRunner().invoke(simulate_group, ["status", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, SimulatorError)
