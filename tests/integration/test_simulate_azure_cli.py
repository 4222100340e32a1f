"""`simulate health | boot-diagnostics | maintenance | approval | refuse` against a real
`simulate run --recorded-pace` process, read back by the real Azure adapters."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.adapters.azure.platform import ArmSignals
from azlin_lifecycle.cli.simulate_cmds import simulate_group
from azlin_lifecycle.config import AzureSettings
from azlin_lifecycle.models import VMTarget
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.signals import Cause
from azlin_lifecycle.simulator import SimulatorClient
from tests.support.simulated import simulate_run


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("simazure")
    with simulate_run(directory, "--vms", "2", "--boot-seconds", "0.5",
                      "--operation-seconds", "0.2", "--recorded-pace"):
        yield directory


def invoke(*args: str) -> str:
    result = CliRunner().invoke(simulate_group, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_what_azure_knows_is_set_from_the_command_line(sim_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    client = SimulatorClient.from_dir(sim_dir)
    for key, value in client.env().items():
        monkeypatch.setenv(key, value)
    compute = ArmCompute(AzureSettings(subscription_id=client.subscription_id,
                                       resource_group=client.resource_group,
                                       arm_endpoint=client.arm_endpoint,
                                       ca_bundle=str(client.ca_path)), timeout=10)
    signals = ArmSignals(compute)
    target = VMTarget("vm-001", client.subscription_id, client.resource_group, "127.0.0.1")
    d = str(sim_dir)
    assert "vm-001: Resource Health unavailable (VirtualMachineHostCrashed)" in invoke(
        "health", "--dir", d, "vm-001", "unavailable", "--annotation",
        "VirtualMachineHostCrashed")
    assert signals.platform_health(target).cause is Cause.PLATFORM
    invoke("health", "--dir", d, "vm-001", "auto")
    assert signals.platform_health(target).resolved_at is not None  # recentlyResolved
    assert "boot diagnostics off" in invoke("boot-diagnostics", "--dir", d, "vm-001", "off")
    box = sim_dir / "capture"
    box.mkdir()
    assert signals.capture(target, box, 10).note.startswith(
        "no capture: boot diagnostics are off")
    invoke("maintenance", "--dir", d, "vm-001", "--starts-in", "-10", "--lasts", "600")
    window = compute.instance_view(target).maintenance
    assert window is not None and window.open_at(time.time())
    invoke("approval", "--dir", d, "vm-001", "30")
    invoke("refuse", "--dir", d, "vm-001", "--action", "start", "--message", "Not now.",
           "--detail", "OperationNotAllowed:The VM is currently allocated. Please deallocate "
           "and try again.")
    with pytest.raises(AzureOperationError) as refused:
        compute.start(target, timeout=10)
    assert "Please deallocate and try again" in str(refused.value)
    (vm,) = [v for v in json.loads(invoke("status", "--dir", d, "--json"))["vms"]
             if v["name"] == "vm-001"]
    assert (vm["health"], vm["boot_diagnostics"], vm["approval_seconds"]) == ("auto", "off", 30)
    assert vm["maintenance"] is not None
    invoke("maintenance", "--dir", d, "vm-001", "--clear")
    assert compute.instance_view(target).maintenance is None
    assert os.environ["REQUESTS_CA_BUNDLE"] == str(client.ca_path)
