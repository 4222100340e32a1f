"""1,000 simulated VMs in one process: they start, list through the SDK, and every SSH
port answers with an SSH banner. Figures are printed (bench/ measures them properly)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import paramiko
import pytest

from azlin_lifecycle.metrics_wire import METRICS_COMMAND
from azlin_lifecycle.simulator import SimulatedFleet


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_thousand_vms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient

    before = rss_mb()
    began = time.monotonic()
    with SimulatedFleet(tmp_path / "sim", 1000) as fleet:
        started = time.monotonic() - began
        print(f"\n1000 VMs started in {started:.2f} s; RSS grew {rss_mb() - before:.1f} MB")
        assert len(fleet.vm_names) == 1000 and fleet.vm_names[-1] == "vm-1000"
        assert len({fleet.ssh_port(n) for n in fleet.vm_names}) == 1000

        monkeypatch.setenv("PATH", fleet.env()["PATH"])
        compute = ComputeManagementClient(
            AzureCliCredential(process_timeout=20), fleet.subscription_id,
            base_url=fleet.arm_endpoint,
            credential_scopes=["https://management.azure.com/.default"],
            connection_verify=str(fleet.ca_path), polling_interval=0)
        listed = list(compute.virtual_machines.list_all(status_only="true"))
        assert [vm.name for vm in listed] == fleet.vm_names
        assert all(vm.instance_view.statuses[1].code == "PowerState/running" for vm in listed)

        for name in fleet.vm_names:
            with socket.create_connection(("127.0.0.1", fleet.ssh_port(name)), timeout=5) as s:
                s.settimeout(5)
                assert s.recv(64).startswith(b"SSH-2.0-"), name

        key = paramiko.Ed25519Key(filename=str(fleet.client_key))
        for name in fleet.vm_names[::100]:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            client.connect("127.0.0.1", port=fleet.ssh_port(name), username="azureuser",
                           pkey=key, look_for_keys=False, allow_agent=False, timeout=10)
            _, out, _ = client.exec_command(METRICS_COMMAND)
            assert out.read().startswith(b"stat1 cpu") and out.channel.recv_exit_status() == 0
            client.close()
        print(f"after the checks: RSS grew {rss_mb() - before:.1f} MB, "
              f"{fleet.arm_requests} ARM requests served")
