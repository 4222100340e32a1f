"""[discovery] end to end: a real daemon (the Azure SDK, Bastion tunnels, paramiko) against
the stand-in ARM over HTTPS. VMs created after the start are checked within one sweep; a
deleted one is one VM_GONE and no failed check; [vms.X] excludes or overrides; the CLI's
``enable --all`` refuses an unknown resource group or a malformed tag in one line and
leaves the file byte for byte."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.daemon import LifecycleDaemon
from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from tests.support.inprocess import running_daemon
from tests.support.journal_events import Events, caught_events
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

INTERVAL = 10


@pytest.fixture
def events() -> Iterator[Events]:
    with caught_events() as handler:
        yield handler


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 2, boot_seconds=2.0,
                      operation_seconds=1.0) as f:
        yield f


def write_config(fleet: SimulatedFleet, path: Path, *, vms: dict[str, Any] | None = None,
                 healing: dict[str, Any] | None = None, **discovery: Any) -> None:
    """[azure] of the fleet, and [discovery] (SSH through the fleet's Bastion, the user
    from Azure, the fleet's client key); no [vms.X] unless ``vms``."""
    doc: dict[str, Any] = {
        "azure": {"subscription_id": fleet.subscription_id,
                  "resource_group": fleet.resource_group, "arm_endpoint": fleet.arm_endpoint,
                  "ca_bundle": str(fleet.ca_path), "credential": "cli"},
        "daemon": {"ssh_timeout_seconds": 3.0},
        "healing": {"grace_period_seconds": 5, **(healing or {})},
        "discovery": {"enabled": True, "check_interval_seconds": INTERVAL,
                      "ssh_failure_threshold": 1, "ssh_key": str(fleet.client_key),
                      **discovery},
    }
    if vms:
        doc["vms"] = vms
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(doc))


def monitored(daemon: LifecycleDaemon) -> list[str]:
    return daemon.get_status().monitored_vms


def latest_healthy(daemon: LifecycleDaemon, vm: str) -> bool:
    status = daemon.store.latest([vm]).get(vm)
    return status is not None and status.healthy


def test_a_vm_created_after_the_start_is_checked_within_one_sweep(
        fleet: SimulatedFleet, isolated_dirs: Path, events: Events) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    write_config(fleet, config)
    with running_daemon(config) as daemon:
        wait_for(lambda: daemon.get_status().healthy == 2, 40, "the 2 VMs found and healthy")
        assert monitored(daemon) == ["vm-001", "vm-002"]
        created = fleet.create_vm(session="dev")
        assert created.startswith("azlin-vm-")
        began = time.monotonic()
        wait_for(lambda: latest_healthy(daemon, created), INTERVAL + 20, "the new VM checked")
        took = time.monotonic() - began
        assert took <= INTERVAL + 10, f"checked {took:.1f} s after it appeared"
        assert [r.VM_NAME for r in events.of("vm_discovered")] == [  # type: ignore[attr-defined]
            "vm-001", "vm-002", created]
        assert events.of("check_failed") == []
    logging.getLogger(__name__).info("new VM checked %.1f s after its creation", took)


def test_a_deleted_vm_is_one_vm_gone_and_no_failed_check(
        fleet: SimulatedFleet, isolated_dirs: Path, events: Events) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    write_config(fleet, config)
    with running_daemon(config) as daemon:
        wait_for(lambda: daemon.get_status().healthy == 2, 40, "the 2 VMs healthy")
        fleet.delete_vm("vm-002")
        wait_for(lambda: monitored(daemon) == ["vm-001"], INTERVAL + 15, "vm-002 dropped")
        time.sleep(3 + 1)  # a check under way as it was dropped ends (ssh_timeout_seconds)
        kept = daemon.store.history("vm-002")
        time.sleep(2 * INTERVAL + 2)  # two more sweeps: nothing more about vm-002
        (gone,) = events.of("vm_gone", "vm-002")
        # A check under way as the VM went (its listing before, its SSH after) may fail;
        # none after the vm_gone, and none of vm-001.
        failed = events.of("check_failed")
        assert len(failed) <= 1 and all(r.created < gone.created for r in failed), failed
        assert all(getattr(r, "VM_NAME", None) == "vm-002" for r in failed)
        assert events.of("vm_gone", "vm-001") == [] and latest_healthy(daemon, "vm-001")
        assert fleet.operations() == []
        assert daemon.store.history("vm-002") == kept  # its history kept, no check since
        assert kept[-1].healthy or kept[-1].state.value == "not_found"


def test_a_restart_announces_changes_not_every_vm_again(
        fleet: SimulatedFleet, isolated_dirs: Path, events: Events) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    write_config(fleet, config)
    with running_daemon(config) as daemon:
        wait_for(lambda: daemon.get_status().healthy == 2, 40, "the 2 VMs healthy")
    fleet.delete_vm("vm-002")  # while no daemon runs
    with running_daemon(config) as daemon:
        wait_for(lambda: monitored(daemon) == ["vm-001"], 20, "vm-002 dropped")
        wait_for(lambda: len(daemon.store.history("vm-001")) >= 2, 20, "vm-001 checked again")
    assert [r.VM_NAME for r in events.of("vm_discovered")] == ["vm-001", "vm-002"]  # type: ignore[attr-defined]
    assert [r.VM_NAME for r in events.of("vm_gone")] == ["vm-002"]  # type: ignore[attr-defined]
    assert events.of("check_failed") == []

def test_a_vms_table_excludes_one_vm_and_overrides_another(
        fleet: SimulatedFleet, isolated_dirs: Path, events: Events) -> None:
    fleet.create_vm("vm-003")
    config = isolated_dirs / "lifecycle-config.toml"
    # [discovery]: never restart; vm-001 left out; vm-002 restarted on its first failure.
    write_config(fleet, config, restart_policy="never", healing={"breaker_min_failing": 3},
                 vms={
        "vm-001": {"enabled": False},
        "vm-002": {"restart_policy": "on-failure", "ssh_failure_threshold": 1,
                   "check_interval_seconds": INTERVAL}})
    with running_daemon(config) as daemon:
        wait_for(lambda: daemon.get_status().healthy == 2, 40, "vm-002 and vm-003 healthy")
        assert monitored(daemon) == ["vm-002", "vm-003"]
        for vm in ("vm-002", "vm-003"):
            fleet.set_ssh_mode(vm, SshMode.HUNG)
        wait_for(lambda: any(op["vm"] == "vm-002" and op["action"] == "restart"
                             for op in fleet.operations()), 40, "vm-002's restart")
        wait_for(lambda: not daemon.store.latest(["vm-003"])["vm-003"].healthy, 30,
                 "vm-003 seen failing")
        time.sleep(INTERVAL)
        assert [op["vm"] for op in fleet.operations()] == ["vm-002"]  # vm-003: never
        assert daemon.store.latest(["vm-001"]) == {}  # never checked
        assert [r.VM_NAME for r in events.of("vm_discovered")] == ["vm-003"]  # type: ignore[attr-defined]
        # vm-002's table leaves ssh_key unset: the discovery's key, from its first check on
        assert not any("private key" in r.getMessage() for r in events.of("check_failed"))
    # list and status say where each VM comes from (the daemon's last listing).
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", str(config), "list", "--all"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1] for line in listed.output.splitlines()[1:4]}
    assert rows == {"vm-001": "override", "vm-002": "override", "vm-003": "discovery"}
    assert "discovery: 1 VMs discovered in rg-sim" in listed.output
    status = runner.invoke(cli, ["--config", str(config), "status"])
    assert "vm-003 (discovered)" in status.output, status.output


def lifecycle(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, in a process of its own (the fleet's az and CA in its environment)."""
    return subprocess.run([sys.executable, "-m", "azlin_lifecycle", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=60, check=False)


def test_enable_all_refuses_an_unknown_group_and_a_malformed_tag_leaving_the_file(
        fleet: SimulatedFleet, isolated_dirs: Path) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(tomli_w.dumps({
        "azure": {"subscription_id": fleet.subscription_id,
                  "resource_group": fleet.resource_group, "arm_endpoint": fleet.arm_endpoint,
                  "ca_bundle": str(fleet.ca_path)},
        "vms": {"web-1": {"enabled": True, "restart_policy": "never"}}}))
    before = config.read_bytes()
    for args, words in (
            (["--resource-group", "rg-nope"], "resource group 'rg-nope' (from [discovery] "
             "resource_groups) in subscription 00000000-0000-0000-0000-0000000000aa (from "
             "[azure]) does not exist"),
            (["--tag", "=x"], "tags entry '=x' is not allowed: the tag name is empty"),
            (["--tag", "a/b=c"], "tags entry 'a/b=c' is not allowed: not a valid Azure tag name"),
            (["--resource-group", "bad/name"], "resource_groups entry 'bad/name' is not "
             "allowed")):
        result = lifecycle(config, "enable", "--all", *args)
        assert result.returncode == 1, result
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result
        assert words in result.stderr, result.stderr
        assert config.read_bytes() == before
    # The fleet's own group ([azure]'s): written, with what it finds there now.
    result = lifecycle(config, "enable", "--all", "--tag", "azlin-simulator=true",
                       "--policy", "on-failure")
    assert result.returncode == 0, result
    assert f"in {fleet.resource_group} (from [azure])" in result.stdout
    assert "Found now: 2 VMs (vm-001, vm-002)" in result.stdout
    text = config.read_text()
    assert "[discovery]" in text and 'tags = [\n    "azlin-simulator=true",' in text
    assert "vm-001" not in text  # found VMs are never written to the file
    listed = lifecycle(config, "list")
    assert "discovery: on (azlin's resource group); no listing yet" in listed.stdout
    off = lifecycle(config, "disable", "--all")
    assert off.returncode == 0 and "enabled = false" in config.read_text()


def test_the_stand_in_lists_tags_answers_a_group_and_deletes_through_arm_and_control(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real Azure SDK pipeline (our ArmCompute) and the control client of a
    ``simulate run`` process: tags in the status-only listing, GET of a resource group
    (404 ResourceGroupNotFound for another), an ARM DELETE of a VM, azlin-style creation."""
    from azlin_lifecycle.adapters.azure.compute import ArmCompute
    from azlin_lifecycle.config import AzureSettings
    from azlin_lifecycle.ports import AzureOperationError
    from azlin_lifecycle.simulator import SimulatorClient
    from tests.support.simulated import simulate_run

    directory = tmp_path / "sim"
    directory.mkdir()
    with simulate_run(directory, "--vms", "2", "--boot-seconds", "0.5"):
        client = SimulatorClient.from_dir(directory)
        for key, value in client.env().items():
            monkeypatch.setenv(key, value)
        created = client.create_vm(session="dev", tags={"env": "test"})
        sub = client.subscription_id
        compute = ArmCompute(AzureSettings(subscription_id=sub, arm_endpoint=client.arm_endpoint,
                                           ca_bundle=str(client.ca_path)), timeout=10)
        try:
            listing = compute.power_states(sub, "rg-sim")
            assert dict(listing[created.lower()].tags) == {"azlin-session": "dev", "env": "test"}
            assert listing[created.lower()].name == created
            group = compute.read_json("rg", f"/subscriptions/{sub}/resourcegroups/RG-SIM",
                                      {"api-version": "2021-04-01"})
            assert group["name"] == "rg-sim"
            with pytest.raises(AzureOperationError) as missing:
                compute.read_json("rg", f"/subscriptions/{sub}/resourcegroups/rg-nope",
                                  {"api-version": "2021-04-01"})
            assert missing.value.code == "ResourceGroupNotFound"
            compute.client(sub).virtual_machines.begin_delete("rg-sim", "vm-001").result()
            client.delete_vm(created)
            compute.forget_power_states()
            assert sorted(compute.power_states(sub, "rg-sim")) == ["vm-002"]
        finally:
            compute.close()
        assert [vm["name"] for vm in client.status()["vms"]] == ["vm-002"]



def test_enable_all_follows_azlins_selected_context_as_a_user_has_it(
        fleet: SimulatedFleet, isolated_dirs: Path) -> None:
    """No resource group in our file: `enable --all` takes azlin's selected context's
    (~/.azlin/active-context, contexts/NAME.toml), as `azlin list` would."""
    (isolated_dirs / "contexts").mkdir(parents=True)
    (isolated_dirs / "active-context").write_text("lab\n")
    (isolated_dirs / "contexts" / "lab.toml").write_text(tomli_w.dumps({
        "name": "lab", "subscription_id": fleet.subscription_id,
        "resource_group": fleet.resource_group, "region": "eastus"}))
    config = isolated_dirs / "lifecycle-config.toml"
    config.write_text(tomli_w.dumps({"azure": {"arm_endpoint": fleet.arm_endpoint,
                                               "ca_bundle": str(fleet.ca_path)}}))
    result = lifecycle(config, "enable", "--all")
    assert result.returncode == 0, result
    assert f"in {fleet.resource_group} (from azlin context lab" in result.stdout, result.stdout
    assert "Found now: 2 VMs (vm-001, vm-002)" in result.stdout
    assert fleet.resource_group not in config.read_text()  # azlin's setting stays azlin's
