"""Private VMs checked through the stand-in Azure Bastion, with real parts only: the real
azure-identity AzureCliCredential (the stand-in az on PATH), the real ARM pipeline, real TLS
(the simulator's CA), websocket-client, paramiko against the simulated VM's real sshd.

Every VM here has no public IP and a private IP (127.2.x.y) where nothing answers, so the
only way in is the Bastion. Each fault of the Bastion says whose side it is on: the VM's
(counted toward a restart), the monitor's (never counted), or a person's ("needs you").
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.adapters.azure.login import SharedTokenCache
from azlin_lifecycle.adapters.bastion.tunnel import BastionTunnels
from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.health import HealthMonitor
from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import BastionEndpoint, HealthStatus, SshFault, VMTarget
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.simulator.azcli import TENANT_ID
from azlin_lifecycle.simulator.tls import client_context
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import monitor_for
from tests.support.waiting import wait_for

SSH_TIMEOUT = 1.5
BASTION = "azlin-bastion-eastus"
VIA = f"Bastion {BASTION}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("bastion") / "sim", 2, private=True,
                        boot_seconds=0.3, operation_seconds=0.3) as f:
        yield f


@pytest.fixture(autouse=True)
def bastion_up(fleet: SimulatedFleet) -> None:
    """Every test starts with the module's Bastion answering (a test before it, in whatever
    order a worker runs them, may have left a fault set)."""
    fleet.set_bastion_mode("up")


@pytest.fixture
def config(fleet: SimulatedFleet, isolated_dirs: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config for the fleet, host and user left to Azure; the Bastion and VMs healthy."""
    for key, value in fleet.env().items():
        monkeypatch.setenv(key, value)
    for vm in fleet.vm_names:
        fleet.set_ssh_mode(vm, "up")
    path = isolated_dirs / "lifecycle-config.toml"
    fleet.write_config(path, resolve_ssh=True,
                       extra_toml={"daemon": {"ssh_timeout_seconds": SSH_TIMEOUT}})
    return path


@pytest.fixture
def monitor(config: Path, tmp_path: Path) -> Iterator[HealthMonitor]:
    m = monitor_for(LifecycleManager(config).load(), StateStore(tmp_path / "state.db"))
    yield m
    m.close()


def check(monitor: HealthMonitor, vm: str) -> HealthStatus:
    return monitor.check_vm_health(vm)


def test_private_vm_is_checked_through_bastion_and_a_hang_is_the_vms_fault(
        fleet: SimulatedFleet, monitor: HealthMonitor, isolated_dirs: Path) -> None:
    vm = fleet.vm_names[0]
    assert fleet.public_ip(vm) is None
    before = dict(fleet.bastion.counts)
    status = check(monitor, vm)
    assert status.healthy, status.reason
    assert status.ssh_via == VIA
    assert status.metrics is not None and status.metrics.cpu_percent == 12.5
    again = check(monitor, vm)  # the tunnel and its SSH connection are kept
    assert again.healthy and again.ssh_via == VIA
    counts = fleet.bastion.counts
    assert counts["exchanges"] == before["exchanges"] + 1
    assert counts["tunnels"] == before["tunnels"] + 1
    vm_id = (f"/subscriptions/{fleet.subscription_id}/resourcegroups/{fleet.resource_group}"
             f"/providers/microsoft.compute/virtualmachines/{vm}")
    # The host key is pinned for the VM itself, not for a private IP another network reuses.
    assert vm_id in (isolated_dirs / "known_hosts").read_text().lower()

    fleet.set_ssh_mode(vm, "hung")  # the VM's sshd accepts and never speaks
    hung = check(monitor, vm)
    assert not hung.healthy and hung.fault is SshFault.HUNG
    assert hung.fault.guest_side and hung.ssh_failures == 1  # counted toward a restart
    assert hung.ssh_via == VIA
    assert hung.check_duration_seconds < SSH_TIMEOUT + 1.0

    fleet.set_ssh_mode(vm, "up")
    assert check(monitor, vm).healthy


def test_a_hung_command_through_the_tunnel_is_the_vms_fault(
        fleet: SimulatedFleet, monitor: HealthMonitor) -> None:
    vm = fleet.vm_names[1]
    assert check(monitor, vm).healthy
    # The VM's sshd drops its connections (so the kept tunnel ends, closed by the VM's end:
    # not a Bastion fault) and from now on never finishes the command in time.
    fleet.set_ssh_mode(vm, "slow", slow_seconds=10)
    status = check(monitor, vm)
    assert status.fault is SshFault.COMMAND_TIMEOUT, status.reason
    assert status.fault.guest_side and status.ssh_failures == 1
    assert status.check_duration_seconds < SSH_TIMEOUT + 1.0


@pytest.mark.parametrize(("mode", "words"), [
    ("tunneling_disabled", f"Bastion not usable: native client support is off on {BASTION}: "
                           f"enable it (az network bastion update --name {BASTION} "
                           "--resource-group rg-sim --enable-tunneling)"),
    ("basic", f"Bastion not usable: {BASTION} is a Basic SKU Bastion, which has no native "
              "client tunnels: upgrade it to the Standard SKU"),
    ("elsewhere", "Bastion not usable: no Azure Bastion in eastus in resource group rg-sim "
                  "(it has azlin-bastion-westus2 in westus2): create azlin-bastion-eastus"),
    ("exchange_401", f"Bastion not usable: {BASTION} refused the Azure token for VM vm-001 "
                     "(HTTP 401, The access token is invalid or has expired): check that your "
                     "login (az login) is current"),
    ("exchange_403", f"Bastion not usable: {BASTION} refused access to VM vm-001 (HTTP 403, "
                     "The client does not have authorization to access the target resource): "
                     f"give your login the Reader role on the VM, its network interface and "
                     f"{BASTION}"),
])
def test_a_bastion_only_a_person_can_fix_needs_you_and_is_never_counted(
        fleet: SimulatedFleet, monitor: HealthMonitor, mode: str, words: str) -> None:
    fleet.set_bastion_mode(mode)
    vm = fleet.vm_names[0]
    for _ in range(2):
        status = check(monitor, vm)
        assert status.fault is SshFault.BASTION_UNUSABLE, status.reason
        assert status.needs_you and not status.failing and status.ssh_failures == 0
        assert status.reason is not None and words in status.reason, status.reason
        assert status.reason.endswith("a restart cannot fix this (not counted)")


@pytest.mark.parametrize(("mode", "words"), [
    ("exchange_500", f"Bastion unreachable: {BASTION} answered the token exchange with HTTP "
                     "500"),
    ("refuse", f"Bastion unreachable: {BASTION} refused the WebSocket (HTTP 503)"),
    ("down", f"Bastion unreachable: {BASTION} (127.0.0.1) refused the connection"),
    ("hang", f"Bastion unreachable: {BASTION} (127.0.0.1) did not answer in time"),
])
def test_a_bastion_that_fails_is_the_monitors_side_never_counted(
        fleet: SimulatedFleet, monitor: HealthMonitor, mode: str, words: str) -> None:
    fleet.set_bastion_mode(mode)
    vm = fleet.vm_names[0]
    for _ in range(2):
        status = check(monitor, vm)
        assert status.fault is SshFault.BASTION_UNREACHABLE, status.reason
        assert not status.fault.guest_side and status.ssh_failures == 0 and not status.failing
        assert status.reason is not None and status.reason.startswith(f"SSH {words}"), (
            status.reason)
        assert "not the VM's" in status.reason
        # One deadline covers the exchange and the WebSocket's opening, TLS included.
        assert status.check_duration_seconds < SSH_TIMEOUT + 1.0
    fleet.set_bastion_mode("up")
    assert check(monitor, vm).healthy


def test_a_tunnel_dropped_mid_session_is_the_monitors_side_then_re_exchanged(
        fleet: SimulatedFleet, monitor: HealthMonitor) -> None:
    vm = fleet.vm_names[0]
    assert check(monitor, vm).healthy
    reexchanges = fleet.bastion.counts["reexchanges"]
    fleet.set_bastion_mode("drop")  # the kept tunnel is cut; new ones after 1,500 bytes
    status = check(monitor, vm)
    assert status.fault is SshFault.BASTION_UNREACHABLE, status.reason
    assert status.reason is not None and f"{BASTION} dropped the tunnel" in status.reason
    assert status.ssh_failures == 0 and not status.failing
    fleet.set_bastion_mode("up")
    assert check(monitor, vm).healthy
    # The dropped session was handed back (token = the previous authToken), not leaked.
    assert fleet.bastion.counts["reexchanges"] > reexchanges


def test_no_bastion_in_the_resource_group_is_judged_by_azures_view(
        fleet: SimulatedFleet, monitor: HealthMonitor) -> None:
    fleet.set_bastion_mode("missing")
    status = check(monitor, fleet.vm_names[0])
    assert status.fault is SshFault.NOT_APPLICABLE and not status.ssh_checked
    assert status.healthy  # its agent reports Ready
    assert status.ssh_via is not None and "no Azure Bastion in resource group rg-sim" in (
        status.ssh_via)


def test_developer_sku_tunnels_on_its_own_path(fleet: SimulatedFleet,
                                               monitor: HealthMonitor) -> None:
    fleet.set_bastion_mode("developer")  # the stand-in serves only /omni/webtunnel then
    status = check(monitor, fleet.vm_names[0])
    assert status.healthy, status.reason


def test_configured_bastion_by_name_by_id_and_unknown(
        fleet: SimulatedFleet, config: Path, tmp_path: Path) -> None:
    vm = fleet.vm_names[0]
    rid = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{fleet.resource_group}"
           f"/providers/Microsoft.Network/bastionHosts/{BASTION}")
    for ref, healthy in ((BASTION, True), (rid, True), ("no-such-bastion", False)):
        fleet.write_config(config, resolve_ssh=True, extra_toml={
            "daemon": {"ssh_timeout_seconds": SSH_TIMEOUT}, "vms": {vm: {"bastion": ref}}})
        m = monitor_for(LifecycleManager(config).load(), StateStore(tmp_path / f"{healthy}.db"))
        try:
            status = check(m, vm)
        finally:
            m.close()
        assert status.healthy is healthy, status.reason
        if not healthy:
            assert status.fault is SshFault.BASTION_UNUSABLE and status.needs_you
            assert 'bastion = "no-such-bastion" was not found in Azure' in (status.reason or "")


def test_tunnels_live_as_long_as_their_connections_within_the_cap(
        fleet: SimulatedFleet, config: Path, tmp_path: Path) -> None:
    data = LifecycleManager(config).load()
    m = monitor_for(data, StateStore(tmp_path / "state.db"))
    try:
        m.ssh.max_open = 1  # type: ignore[attr-defined]
        deletes = fleet.bastion.counts["deletes"]
        assert all(s.healthy for s in m.check_many(fleet.vm_names).values())
        # One kept (tunnel and connection), the other closed at once: its session deleted.
        wait_for(lambda: fleet.bastion.counts["deletes"] == deletes + 1, 5, "one DELETE")
        assert fleet.bastion.describe()["open_tunnels"] == 1
    finally:
        m.close()  # the kept one is closed and its session deleted too
    wait_for(lambda: fleet.bastion.counts["deletes"] == deletes + 2, 5, "the second DELETE")
    wait_for(lambda: fleet.bastion.describe()["open_tunnels"] == 0, 5, "no tunnel left")


def token(audience: str, lifetime: int) -> str:
    """An access token in the stand-in az's format (see simulator.azcli)."""
    def part(claims: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return ".".join([part({"alg": "none", "typ": "JWT"}), part({
        "aud": audience, "iss": f"https://sts.windows.net/{TENANT_ID}/", "iat": now,
        "nbf": now - 300, "exp": now + lifetime, "tid": TENANT_ID}), "simulator"])


class CountingCredential:
    def __init__(self, audience: str, lifetime: int) -> None:
        self.audience, self.lifetime, self.calls = audience, lifetime, 0

    def get_token(self, *scopes: str, **kwargs: object) -> object:
        from azure.core.credentials import AccessToken

        self.calls += 1
        return AccessToken(token(self.audience, self.lifetime), int(time.time()) + self.lifetime)


@pytest.mark.parametrize(("lifetime", "asked"), [(3600, 1), (200, 3)])
def test_arm_token_is_renewed_before_an_exchange_when_it_nears_expiry(
        fleet: SimulatedFleet, tmp_path: Path, lifetime: int, asked: int) -> None:
    vm = fleet.vm_names[0]
    credential = CountingCredential(fleet.arm_endpoint, lifetime)
    tunnels = BastionTunnels(SharedTokenCache(credential),  # type: ignore[arg-type]
                             f"{fleet.arm_endpoint}/.default", ca_bundle=str(fleet.ca_path))
    prober = ParamikoSshProber(known_hosts=tmp_path / "known_hosts", tunnels=tunnels)
    vm_id = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{fleet.resource_group}"
             f"/providers/Microsoft.Compute/virtualMachines/{vm}")
    endpoint = BastionEndpoint(BASTION, fleet.bastion.dns_name, "Standard", vm_id)
    target = VMTarget(vm, fleet.subscription_id, fleet.resource_group, "127.2.0.1",
                      fleet.ssh_port(vm), "azureuser", str(fleet.client_key), bastion=endpoint)
    try:
        for _ in range(3):  # three tunnels, each with its own exchange
            result = prober.probe(target, 5)
            assert result.reachable, result.reason
            prober.forget(target)
    finally:
        prober.close()
    # 300 s before expiry a token is renewed (SharedTokenCache): a 200 s one every time.
    assert credential.calls == asked


def test_stand_in_exchange_refuses_json_and_an_authorization_header(
        fleet: SimulatedFleet) -> None:
    host, port = fleet.bastion.dns_name.split(":")
    vm_id = (f"/subscriptions/{fleet.subscription_id}/resourceGroups/{fleet.resource_group}"
             f"/providers/Microsoft.Compute/virtualMachines/{fleet.vm_names[0]}")
    form = (f"resourceId={vm_id}&protocol=tcptunnel&workloadHostPort=22&aztoken="
            f"{token(fleet.arm_endpoint, 3600)}")

    def post(body: str, headers: dict[str, str]) -> tuple[int, object]:
        conn = http.client.HTTPSConnection(host, int(port), context=client_context(fleet.ca_path),
                                           timeout=5)
        try:
            conn.request("POST", "/api/tokens", body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    formed = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(json.dumps({"resourceId": vm_id}), {"Content-Type": "application/json"})[0] == 500
    assert post(form, {**formed, "Authorization": "Bearer x"})[0] == 500
    assert post(form.replace("simulator", "forged"), formed)[0] == 401
    assert post(form.replace(fleet.vm_names[0], "no-such-vm"), formed)[0] == 404
    status, answer = post(form, formed)
    assert status == 200 and isinstance(answer, dict)
    assert sorted(answer) == ["authToken", "nodeId", "websocketToken"]


def test_no_token_or_tunnel_url_reaches_logs_errors_status_or_hooks(
        fleet: SimulatedFleet, config: Path, caplog: pytest.LogCaptureFixture) -> None:
    from azlin_lifecycle.cli.main import cli
    from azlin_lifecycle.health import failure_of

    caplog.set_level(logging.DEBUG)  # every logger, paramiko's and websocket-client's too
    vm = fleet.vm_names[0]
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str) -> None:
        result = runner.invoke(cli, ["--config", str(config), *args])
        outputs.append(result.output + (str(result.exception) if result.exception else ""))

    run("check", vm, "--json")
    for mode in ("drop", "exchange_500", "exchange_401", "refuse", "up"):
        fleet.set_bastion_mode(mode)
        run("check", vm, "--json")
        run("check", vm)
    run("status", "--json")
    run("history", vm, "--json")
    statuses = StateStore().history(vm)
    assert any(s.healthy for s in statuses) and any(not s.healthy for s in statuses)
    records = [json.dumps(s.to_record()) for s in statuses]
    hooks = [repr(vars(failure_of(s))) for s in statuses if not s.healthy]  # on_failure's REASON
    seen = "\n".join([caplog.text, *outputs, *records, *hooks])
    secrets = set(fleet.bastion.secrets_seen)
    assert len(secrets) >= 10  # tokens issued and received: ARM tokens, auth, node, websocket
    leaked = [s[:12] + "..." for s in secrets if s in seen]
    assert not leaked, f"secrets in logs or output: {leaked}"
    for marker in ("webtunnel", "/api/tokens/", "X-Node-Id", "aztoken", "eyJ"):
        assert marker not in seen, marker
    assert f"SSH Bastion unreachable: {BASTION}" in seen  # the faults were reported, in words


def test_simulate_bastion_sets_the_stand_ins_mode_from_another_process(
        fleet: SimulatedFleet, config: Path) -> None:
    from azlin_lifecycle.cli.main import cli
    from azlin_lifecycle.simulator.runner import write_info

    write_info(fleet)
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "bastion", "--dir", str(fleet.workdir), "hang"])
    assert result.exit_code == 0 and result.output == "Bastion: hang\n", result.output
    assert fleet.bastion.mode.value == "hang"
    result = runner.invoke(cli, ["simulate", "status", "--dir", str(fleet.workdir)])
    assert f"Bastion {BASTION} (Standard, eastus) at {fleet.bastion.dns_name}: hang" in (
        result.output)
    result = runner.invoke(cli, ["simulate", "bastion", "--dir", str(fleet.workdir), "sideways"])
    assert result.exit_code == 2 and "'sideways' is not one of" in result.output
