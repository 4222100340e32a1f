"""How much the simulator carries: start-up time and RSS for N VMs, ARM requests/s
under concurrent SDK clients, SSH checks/s over concurrent paramiko connections.

Runs the simulator in a child process (``azlin-lifecycle simulate run``-equivalent) so
its RSS and CPU are its own. Usage: .venv/bin/python bench/simulator_capacity.py [N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko

from azlin_lifecycle.metrics_wire import METRICS_COMMAND
from azlin_lifecycle.simulator import SimulatorClient


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def start(directory: Path, vms: int) -> tuple[subprocess.Popen[bytes], float]:
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle.simulator", "--vms",
                             str(vms), "--dir", str(directory)])
    while not (directory / "simulator.json").exists():
        if proc.poll() is not None:
            raise SystemExit("simulator exited")
        time.sleep(0.02)
    return proc, time.monotonic() - began


def arm_rate(sim: SimulatorClient, clients: int, seconds: float) -> tuple[float, int]:
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient

    os.environ["PATH"] = sim.env()["PATH"]
    cred = AzureCliCredential()
    cred.get_token("https://management.azure.com/.default")
    names = sim.vm_names
    done = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        c = ComputeManagementClient(cred, sim.subscription_id, base_url=sim.arm_endpoint,
                                    credential_scopes=["https://management.azure.com/.default"],
                                    connection_verify=str(sim.ca_path))
        n = 0
        while time.monotonic() < stop:
            c.virtual_machines.instance_view(sim.resource_group, names[(i * 7 + n) % len(names)])
            n += 1
        done[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / seconds, sum(done)


def _raw_worker(args: tuple[str, str, str, list[str], int, float]) -> int:
    import http.client
    import ssl

    endpoint, ca, prefix, names, threads_n, seconds = args
    port = int(endpoint.rsplit(":", 1)[1])
    counts = [0] * threads_n
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port,
                                           context=ssl.create_default_context(cafile=ca))
        n = 0
        while time.monotonic() < stop:
            conn.request("GET", f"{prefix}/{names[(i * 13 + n) % len(names)]}/instanceView"
                         "?api-version=2026-04-01", headers={"Authorization": "Bearer b"})
            conn.getresponse().read()
            n += 1
        counts[i] = n
        conn.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads_n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


def arm_rate_raw(sim: SimulatorClient, processes: int, threads_n: int,
                 seconds: float) -> float:
    """Requests/s the simulator serves to light keep-alive clients in other processes."""
    from multiprocessing import Pool

    prefix = (f"/subscriptions/{sim.subscription_id}/resourceGroups/{sim.resource_group}/"
              "providers/Microsoft.Compute/virtualMachines")
    job = (sim.arm_endpoint, str(sim.ca_path), prefix, sim.vm_names, threads_n, seconds)
    with Pool(processes) as pool:
        return sum(pool.map(_raw_worker, [job] * processes)) / seconds


def ssh_sweep(sim: SimulatorClient, workers: int) -> tuple[float, list[Any]]:
    key = paramiko.Ed25519Key(filename=str(sim.client_key))
    clients: list[Any] = []
    lock = threading.Lock()

    def check(name: str) -> None:
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", port=sim.ssh_port(name), username="azureuser", pkey=key,
                  look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=30)
        _, out, _ = c.exec_command(METRICS_COMMAND)
        out.read()
        assert out.channel.recv_exit_status() == 0
        with lock:
            clients.append(c)

    began = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(check, sim.vm_names))
    return time.monotonic() - began, clients


def main() -> None:
    vms = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        proc, startup = start(Path(tmp), vms)
        try:
            sim = SimulatorClient.from_dir(Path(tmp))
            pid = proc.pid
            print(f"VMs                         {vms}")
            print(f"start-up (to simulator.json) {startup:6.2f} s")
            print(f"RSS idle                     {rss_mb(pid):6.1f} MB, threads {threads(pid)}")
            cpu0 = cpu_seconds(pid)
            rate, total = arm_rate(sim, 100, 5.0)
            cpu1 = cpu_seconds(pid)
            print(f"ARM instance_view, 100 SDK clients: {rate:7.0f} req/s ({total} in 5 s), "
                  f"simulator CPU {1000 * (cpu1 - cpu0) / max(total, 1):.2f} ms/req")
            cpu_r = cpu_seconds(pid)
            raw = arm_rate_raw(sim, 4, 25, 5.0)
            cpu1 = cpu_seconds(pid)
            print(f"ARM instance_view, 100 raw keep-alive clients in 4 processes: {raw:7.0f} "
                  f"req/s, simulator CPU {1000 * (cpu1 - cpu_r) / max(raw * 5, 1):.2f} ms/req")
            wall, clients = ssh_sweep(sim, 32)
            cpu2 = cpu_seconds(pid)
            print(f"SSH sweep, fresh connection per VM, 32 at once: {wall:6.2f} s "
                  f"({vms / wall:.0f} checks/s), simulator CPU "
                  f"{1000 * (cpu2 - cpu1) / vms:.2f} ms/check")
            print(f"RSS with {len(clients)} open SSH connections: {rss_mb(pid):6.1f} MB, "
                  f"threads {threads(pid)}")
            time.sleep(3)
            cpu3 = cpu_seconds(pid)
            print(f"idle CPU with those connections open: {100 * (cpu3 - cpu2) / 3:.1f} %")
            began = time.monotonic()
            bench0 = cpu_seconds(os.getpid())
            with ThreadPoolExecutor(32) as pool:
                def again(c: Any) -> None:
                    _, out, _ = c.exec_command(METRICS_COMMAND)
                    out.read()
                list(pool.map(again, clients))
            wall2 = time.monotonic() - began
            cpu4 = cpu_seconds(pid)
            print(f"SSH sweep over open connections: {wall2:6.2f} s ({vms / wall2:.0f} checks/s),"
                  f" simulator CPU {1000 * (cpu4 - cpu3) / vms:.2f} ms/check, bench CPU "
                  f"{100 * (cpu_seconds(os.getpid()) - bench0) / wall2:.0f} % of a core")
            for c in clients:
                c.close()
            print(f"peak RSS (VmHWM)             {peak_mb(pid):6.1f} MB")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
