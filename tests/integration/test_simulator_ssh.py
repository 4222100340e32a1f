"""The simulated VMs' SSH endpoints with a real paramiko client: every mode, power
states, restarts dropping connections, boot timing."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from azlin_lifecycle.metrics_wire import METRICS_COMMAND, parse_metrics
from azlin_lifecycle.models import VMMetrics
from azlin_lifecycle.simulator import SimulatedFleet, SshMode

BOOT = 1.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("ssh"), 8, boot_seconds=BOOT,
                        operation_seconds=0.3) as fleet:
        yield fleet


@pytest.fixture(autouse=True)
def reset(fleet: SimulatedFleet) -> Iterator[None]:
    yield
    for name in fleet.vm_names:
        fleet.set_power_state(name, "running")
        fleet.set_ssh_mode(name, SshMode.UP)


def connect(fleet: SimulatedFleet, name: str, *, key: Path | None = None,
            known: str | None = None, timeout: float = 3.0) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if known is not None:
        keytype, blob = known.split()[:2]
        entry = f"[127.0.0.1]:{fleet.ssh_port(name)}"
        client.get_host_keys().add(entry, keytype, paramiko.PKey.from_type_string(
            keytype, base64.b64decode(blob)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=fleet.ssh_port(name), username="azureuser",
                   key_filename=str(key or fleet.client_key), look_for_keys=False,
                   allow_agent=False, timeout=timeout, banner_timeout=timeout,
                   auth_timeout=timeout)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[str, str, int]:
    _, out, err = client.exec_command(command, timeout=10)
    return out.read().decode(), err.read().decode(), out.channel.recv_exit_status()


def tcp_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def post_action(fleet: SimulatedFleet, name: str, action: str) -> None:
    port = int(fleet.arm_endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=ssl.create_default_context(cafile=str(fleet.ca_path)))
    conn.request("POST", f"/subscriptions/{fleet.subscription_id}/resourceGroups/rg-sim/"
                 f"providers/Microsoft.Compute/virtualMachines/{name}/{action}"
                 "?api-version=2026-04-01", headers={"Authorization": "Bearer x"})
    assert conn.getresponse().status == 202
    conn.close()


def test_up_answers_the_metrics_command_only(fleet: SimulatedFleet) -> None:
    fleet.set_metrics("vm-001", VMMetrics(cpu_percent=55.0, memory_percent=70.0,
                                          disk_percent=91.0, load_1m=2.5))
    client = connect(fleet, "vm-001", known=fleet.host_public_key("vm-001"))
    try:
        out, err, status = run(client, METRICS_COMMAND)
        assert status == 0 and err == ""
        metrics = parse_metrics(out)
        assert (metrics.cpu_percent, metrics.memory_percent, metrics.disk_percent,
                metrics.load_1m) == (55.0, 70.0, 91.0, 2.5)
        out, err, status = run(client, "uptime")
        assert (out, status) == ("", 127) and "command not found" in err
        # the connection is reusable for the next check
        assert run(client, METRICS_COMMAND)[2] == 0
    finally:
        client.close()


def test_unset_metric_is_left_out(fleet: SimulatedFleet) -> None:
    fleet.set_metrics("vm-002", VMMetrics(cpu_percent=10.0))
    client = connect(fleet, "vm-002")
    try:
        metrics = parse_metrics(run(client, METRICS_COMMAND)[0])
    finally:
        client.close()
    assert metrics.cpu_percent == 10.0 and metrics.memory_percent is None
    assert metrics.disk_percent is None and metrics.load_1m is None


def test_refused_keeps_the_port(fleet: SimulatedFleet) -> None:
    port = fleet.ssh_port("vm-003")
    fleet.set_ssh_mode("vm-003", SshMode.REFUSED)
    assert tcp_refused(port)
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(fleet, "vm-003")
    fleet.set_ssh_mode("vm-003", SshMode.UP)
    assert fleet.ssh_port("vm-003") == port
    connect(fleet, "vm-003").close()


def test_hung_accepts_tcp_but_sends_no_banner(fleet: SimulatedFleet) -> None:
    fleet.set_ssh_mode("vm-004", SshMode.HUNG)
    sock = socket.create_connection(("127.0.0.1", fleet.ssh_port("vm-004")), timeout=2)
    sock.settimeout(0.7)
    with pytest.raises(TimeoutError):
        sock.recv(100)
    sock.close()
    began = time.monotonic()
    with pytest.raises(paramiko.SSHException, match=r"banner|No existing session"):
        connect(fleet, "vm-004", timeout=1.0)
    assert time.monotonic() - began >= 0.9


def test_auth_fail_and_wrong_key(fleet: SimulatedFleet, tmp_path: Path) -> None:
    fleet.set_ssh_mode("vm-005", SshMode.AUTH_FAIL)
    with pytest.raises(paramiko.AuthenticationException):
        connect(fleet, "vm-005")
    fleet.set_ssh_mode("vm-005", SshMode.UP)
    other = tmp_path / "other_key"
    from azlin_lifecycle.simulator.keys import ensure_client_key

    ensure_client_key(other)
    with pytest.raises(paramiko.AuthenticationException):
        connect(fleet, "vm-005", key=other)
    connect(fleet, "vm-005").close()


def test_host_key_changed_presents_another_key(fleet: SimulatedFleet) -> None:
    original = fleet.host_public_key("vm-006")
    connect(fleet, "vm-006", known=original).close()
    fleet.set_ssh_mode("vm-006", SshMode.HOST_KEY_CHANGED)
    with pytest.raises(paramiko.BadHostKeyException):
        connect(fleet, "vm-006", known=original)
    changed = fleet.host_public_key("vm-006", changed=True)
    assert changed != original
    connect(fleet, "vm-006", known=changed).close()
    fleet.set_ssh_mode("vm-006", SshMode.UP)
    connect(fleet, "vm-006", known=original).close()


def test_slow_delays_the_reply(fleet: SimulatedFleet) -> None:
    fleet.set_ssh_mode("vm-007", SshMode.SLOW, slow_seconds=1.0)
    client = connect(fleet, "vm-007")
    try:
        began = time.monotonic()
        assert run(client, METRICS_COMMAND)[2] == 0
        assert time.monotonic() - began >= 1.0
    finally:
        client.close()


def test_power_state_drives_ssh(fleet: SimulatedFleet) -> None:
    port = fleet.ssh_port("vm-008")
    for state in ("stopped", "deallocated", "starting", "stopping", "deallocating"):
        fleet.set_power_state("vm-008", state)
        assert tcp_refused(port), state
    fleet.set_power_state("vm-008", "running")
    connect(fleet, "vm-008").close()


def test_mode_change_drops_live_connections(fleet: SimulatedFleet) -> None:
    client = connect(fleet, "vm-001")
    transport = client.get_transport()
    assert transport is not None and run(client, METRICS_COMMAND)[2] == 0
    fleet.set_ssh_mode("vm-001", SshMode.AUTH_FAIL)
    deadline = time.monotonic() + 2
    while transport.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not transport.is_active()
    client.close()


def test_restart_drops_ssh_and_boot_brings_it_back(fleet: SimulatedFleet) -> None:
    client = connect(fleet, "vm-002")
    transport: Any = client.get_transport()
    began = time.monotonic()
    post_action(fleet, "vm-002", "restart")
    assert tcp_refused(fleet.ssh_port("vm-002"))
    deadline = time.monotonic() + 2
    while transport.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not transport.is_active()
    client.close()
    while tcp_refused(fleet.ssh_port("vm-002")):
        assert time.monotonic() - began < BOOT + 2, "SSH did not come back after boot"
        time.sleep(0.02)
    back = time.monotonic() - began
    assert BOOT - 0.05 <= back <= BOOT + 1.0
    assert fleet.power_state("vm-002") == "running"
    client = connect(fleet, "vm-002")
    assert run(client, METRICS_COMMAND)[2] == 0
    client.close()


def test_power_off_then_start_through_arm(fleet: SimulatedFleet) -> None:
    port = fleet.ssh_port("vm-003")
    post_action(fleet, "vm-003", "powerOff")
    assert tcp_refused(port)
    time.sleep(0.5)
    assert fleet.power_state("vm-003") == "stopped" and tcp_refused(port)
    began = time.monotonic()
    post_action(fleet, "vm-003", "start")
    assert fleet.power_state("vm-003") == "starting" and tcp_refused(port)
    while tcp_refused(port):
        assert time.monotonic() - began < BOOT + 2
        time.sleep(0.02)
    assert time.monotonic() - began >= BOOT - 0.05
    connect(fleet, "vm-003").close()
