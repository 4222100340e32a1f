"""ArmAddressBook against the stand-in Azure: real SDK pipeline over HTTPS, real SSH probes.

Every address here is a loopback one: the simulated public IPs are 127.1.x.y, the private
ones 127.2.x.y (nothing listens there).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.adapters.azure.network import NETWORK_API_VERSION, ArmAddressBook
from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.config import AzureSettings, LifecycleConfig
from azlin_lifecycle.models import SshFault, VMTarget
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.wiring import build_address_book


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and ~/.azlin (keys, known_hosts) for each test."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(home / ".azlin"))
    return home


@pytest.fixture
def fleet(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path / "fleet", vm_count=2, boot_seconds=0.3, private=False,
                        operation_seconds=0.3) as f:
        monkeypatch.setenv("PATH", f"{f.az_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        key = home / ".ssh" / "id_ed25519"  # third in azlin's order; the only one present
        shutil.copy(f.client_key, key)
        key.chmod(0o600)
        yield f


@pytest.fixture
def compute(fleet: SimulatedFleet) -> Iterator[ArmCompute]:
    arm = ArmCompute(AzureSettings(subscription_id=fleet.subscription_id,
                                   resource_group=fleet.resource_group,
                                   arm_endpoint=fleet.arm_endpoint, ca_bundle=str(fleet.ca_path)),
                     timeout=10.0, polling_interval=0.1)
    yield arm
    arm.close()


@pytest.fixture
def prober() -> Iterator[ParamikoSshProber]:
    probe = ParamikoSshProber(connect_timeout=5.0)
    yield probe
    probe.close()


def unset(fleet: SimulatedFleet, name: str) -> VMTarget:
    """The target of a VM whose config leaves SSH host, user and key unset (azlin's VMs)."""
    return VMTarget(name, fleet.subscription_id, fleet.resource_group, None,
                    fleet.ssh_port(name), None, None)


def wait_booted(fleet: SimulatedFleet, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = next(vm for vm in fleet.status()["vms"] if vm["name"] == name)
        if status["ssh"] == "up" and status["operation"] is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} did not boot")


def test_resolved_route_reaches_the_vm_at_its_public_ip(
        fleet: SimulatedFleet, compute: ArmCompute, prober: ParamikoSshProber, home: Path) -> None:
    name = fleet.vm_names[0]
    book = build_address_book(LifecycleConfig(), compute)
    route = book.route(unset(fleet, name))
    public_ip = fleet.public_ip(name)
    assert public_ip is not None and public_ip.startswith("127.1.")
    assert route.via == f"public IP {public_ip}"
    assert route.target is not None
    assert (route.target.ssh_host, route.target.ssh_port, route.target.ssh_user,
            route.target.ssh_key) == (public_ip, fleet.ssh_port(name), "azureuser",
                                      str(home / ".ssh" / "id_ed25519"))
    result = prober.probe(route.target, 10)
    assert result.reachable, result.reason
    assert result.metrics is not None and result.metrics.cpu_percent == 12.5


def test_each_vm_has_its_own_address(fleet: SimulatedFleet, compute: ArmCompute) -> None:
    book = ArmAddressBook(compute)
    hosts = {book.route(unset(fleet, n)).target.ssh_host  # type: ignore[union-attr]
             for n in fleet.vm_names}
    assert hosts == {fleet.public_ip(n) for n in fleet.vm_names} and len(hosts) == 2


def test_configured_fields_win_and_cost_no_azure_call(
        fleet: SimulatedFleet, compute: ArmCompute) -> None:
    name = fleet.vm_names[0]
    book = ArmAddressBook(compute)
    full = VMTarget(name, fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                    fleet.ssh_port(name), "ops", "/keys/mine")
    before = fleet.arm_requests
    assert book.route(full).target == full and book.route(full).via == "configured address"
    assert fleet.arm_requests == before
    # Host configured, user and key not: only the VM is read (for adminUsername).
    route = book.route(VMTarget(name, fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                                fleet.ssh_port(name), None, "/keys/mine"))
    assert route.via == "configured address"
    assert route.target is not None and route.target.ssh_user == "azureuser"
    assert fleet.arm_requests == before + 1


def test_redeploy_moves_the_vm_to_a_new_ip_seen_after_forget(
        fleet: SimulatedFleet, compute: ArmCompute, prober: ParamikoSshProber) -> None:
    name = fleet.vm_names[0]
    book = ArmAddressBook(compute)
    target = unset(fleet, name)
    first = book.route(target)
    assert first.target is not None
    compute.redeploy(target, timeout=30)
    wait_booted(fleet, name)
    new_ip = fleet.public_ip(name)
    assert new_ip is not None and new_ip != first.target.ssh_host
    stale = book.route(target)  # cached: still the old address, which no longer answers
    assert stale.target == first.target
    assert stale.target is not None
    assert prober.probe(stale.target, 5).fault is SshFault.REFUSED
    book.forget(name)
    fresh = book.route(target)
    assert fresh.via == f"public IP {new_ip}"
    assert fresh.target is not None
    result = prober.probe(fresh.target, 10)
    assert result.reachable, result.reason


def test_deallocate_then_start_gives_a_new_public_ip(
        fleet: SimulatedFleet, compute: ArmCompute) -> None:
    name = fleet.vm_names[1]
    book = ArmAddressBook(compute)
    before = book.route(unset(fleet, name)).via
    fleet.set_power_state(name, "deallocated")
    book.forget(name)
    # A released dynamic IP has no address: only the private IP is left, unreachable.
    assert book.route(unset(fleet, name)).target is None
    compute.start(unset(fleet, name), timeout=30)
    wait_booted(fleet, name)
    book.forget(name)
    after = book.route(unset(fleet, name)).via
    assert after.startswith("public IP 127.1.") and after != before


def test_private_only_vm_without_a_bastion_or_tunnel_is_ssh_not_applicable(
        fleet: SimulatedFleet, compute: ArmCompute) -> None:
    name = fleet.vm_names[0]
    fleet.set_public_ip(name, False)
    route = ArmAddressBook(compute).route(unset(fleet, name))
    private_ip = fleet.private_ip(name)
    assert private_ip.startswith("127.2.")
    assert route.target is None
    assert route.fault is None  # judged by Azure's view: nothing to fix on a Bastion
    assert route.via == (f"SSH not applicable: only private IP {private_ip}, not reachable "
                         f"from here, and no Azure Bastion in resource group "
                         f"{fleet.resource_group}")




def test_concurrent_checks_of_one_vm_resolve_it_once(
        fleet: SimulatedFleet, compute: ArmCompute) -> None:
    name = fleet.vm_names[0]
    book = ArmAddressBook(compute)
    fleet.set_arm_latency(0.2)
    vias: list[str] = []
    threads = [threading.Thread(target=lambda: vias.append(book.route(unset(fleet, name)).via))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert vias == [f"public IP {fleet.public_ip(name)}"] * 8
    assert book.resolutions == 1


def test_missing_key_still_routes_and_the_probe_says_key_unreadable(
        fleet: SimulatedFleet, compute: ArmCompute, prober: ParamikoSshProber, home: Path) -> None:
    (home / ".ssh" / "id_ed25519").unlink()
    route = ArmAddressBook(compute).route(unset(fleet, fleet.vm_names[0]))
    assert route.target is not None
    assert route.target.ssh_key == str(home / ".ssh" / "azlin_key")
    assert route.via.endswith(f"; no SSH key found (looked for {home}/.ssh/azlin_key, "
                              f"{home}/.ssh/id_ed25519_azlin, {home}/.ssh/id_ed25519, "
                              f"{home}/.ssh/id_rsa)")
    assert prober.probe(route.target, 5).fault is SshFault.KEY_UNREADABLE


def test_network_rp_refuses_the_compute_api_version(
        fleet: SimulatedFleet, compute: ArmCompute) -> None:
    name = fleet.vm_names[0]
    nic = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{fleet.resource_group}"
           f"/providers/Microsoft.Network/networkInterfaces/{name}-nic")
    with pytest.raises(AzureOperationError) as err:
        compute.read_json("NIC", nic)  # the reader's default: Compute's api-version
    assert err.value.code == "NoRegisteredProviderFound"
    body = compute.read_json("NIC", nic, {"api-version": NETWORK_API_VERSION})
    assert body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] == (
        fleet.private_ip(name))


def test_unknown_vm_is_an_azure_error(fleet: SimulatedFleet, compute: ArmCompute) -> None:
    with pytest.raises(AzureOperationError) as err:
        ArmAddressBook(compute).route(VMTarget("no-such-vm", fleet.subscription_id,
                                               fleet.resource_group, None))
    assert err.value.code == "ResourceNotFound"
    assert "no-such-vm" in str(err.value)


def test_control_api_and_cli_make_a_vm_private_only(
        fleet: SimulatedFleet, compute: ArmCompute, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from azlin_lifecycle.cli.main import cli
    from azlin_lifecycle.simulator.runner import write_info

    name = fleet.vm_names[1]
    write_info(fleet)
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "public-ip", "--dir", str(fleet.workdir), name,
                                 "none"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{name}: private-only (no public IP)\n"
    assert ArmAddressBook(compute).route(unset(fleet, name)).target is None
    result = runner.invoke(cli, ["simulate", "public-ip", "--dir", str(fleet.workdir), name,
                                 "new"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{name}: public IP {fleet.public_ip(name)}\n"
    assert ArmAddressBook(compute).route(unset(fleet, name)).via == (
        f"public IP {fleet.public_ip(name)}")
    config = tmp_path / "resolved.toml"
    result = runner.invoke(cli, ["simulate", "config", "--dir", str(fleet.workdir), str(config),
                                 "--resolve-ssh"])
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert "ssh_host" not in text and "ssh_user" not in text and "ssh_port" in text


def test_vms_show_says_what_is_resolved_from_azure(tmp_path: Path, home: Path) -> None:
    from click.testing import CliRunner

    from azlin_lifecycle.cli.main import cli

    config = str(tmp_path / "lifecycle.toml")
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", config, "enable", "web-1", "--subscription", "s",
                                 "--resource-group", "rg"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(cli, ["--config", config, "show", "web-1"]).output
    assert "ssh_host" in shown and shown.count("(resolved from Azure)") == 2
    assert "azlin's search order" in shown
    assert "ssh_host" not in Path(config).read_text()
    runner.invoke(cli, ["--config", config, "enable", "web-1", "--ssh-host", "10.1.2.3",
                        "--ssh-user", "ops"])
    shown = runner.invoke(cli, ["--config", config, "show", "web-1"]).output
    assert "10.1.2.3" in shown and "ops" in shown and shown.count("(resolved from Azure)") == 0
