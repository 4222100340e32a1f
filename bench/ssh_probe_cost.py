"""What one SSH probe costs on a connection kept open: the project's prober, plain
paramiko and, when it is installed, fabric.

Usage: .venv/bin/python bench/ssh_probe_cost.py [-n 200]

One simulated VM runs in its own process, so the CPU figures are this client's alone
(every thread of it: paramiko's transport thread, invoke's runner threads). Each way
connects once, probes 50 times to warm up, then N times (run the metrics command, read and
parse its output), and the table shows CPU and wall time per probe. paramiko's
SSHClient and fabric leave Nagle's algorithm on, which holds back small packets (tens
of ms on loopback); the prober sets TCP_NODELAY, so each is also measured with it.

fabric is not a dependency of azlin-lifecycle; for its rows,
``.venv/bin/pip install fabric`` (``make clean setup`` removes it again).
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import simulator

from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.metrics_wire import METRICS_COMMAND, parse_metrics
from azlin_lifecycle.models import VMTarget
from azlin_lifecycle.simulator import SimulatorClient

USER = "azureuser"  # the simulated VMs' admin user
TIMEOUT = 10.0
WARM_UP = 50  # probes before the measured ones (first-use imports and caches)
BLOCK_INVOKE = "import sys; sys.modules['invoke'] = None"  # as wiring.load_adapter_libraries

Row = tuple[float, float]  # CPU ms, wall ms per probe


def per_probe(probe: Callable[[], None], n: int) -> Row:
    """(CPU ms, wall ms) per call of ``probe``, after WARM_UP calls."""
    for _ in range(WARM_UP):
        probe()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        probe()
    return ((time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n)


def check_output(way: str, vm: str, status: int, output: str) -> None:
    """Parse the metrics as a probe does; stop the benchmark if the command failed."""
    if status != 0 or parse_metrics(output).memory_percent is None:
        raise SystemExit(f"{way}: the metrics command failed on {vm} (exit {status}); "
                         "the simulator's log is in its --dir")


def prober_row(sim: SimulatorClient, vm: str, tmp: Path, n: int) -> Row:
    prober = ParamikoSshProber(known_hosts=tmp / "known_hosts")
    target = VMTarget(vm, sim.subscription_id, sim.resource_group, "127.0.0.1",
                      sim.ssh_port(vm), USER, str(sim.client_key))

    def probe() -> None:
        result = prober.probe(target, TIMEOUT)
        if result.metrics is None or result.metrics.memory_percent is None:
            raise SystemExit(f"ParamikoSshProber: no metrics from {vm} ({result.reason})")

    try:
        return per_probe(probe, n)
    finally:
        prober.close()


def _socket(port: int, nodelay: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if nodelay:  # as ParamikoSshProber does
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def sshclient_row(sim: SimulatorClient, vm: str, n: int, nodelay: bool) -> Row:
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway, in memory
    client.connect("127.0.0.1", sim.ssh_port(vm), username=USER,
                   key_filename=str(sim.client_key), look_for_keys=False, allow_agent=False,
                   timeout=TIMEOUT, sock=_socket(sim.ssh_port(vm), nodelay))

    def probe() -> None:
        _, stdout, _ = client.exec_command(METRICS_COMMAND, timeout=TIMEOUT)
        output = stdout.read().decode("utf-8", "replace")
        check_output("SSHClient.exec_command", vm, stdout.channel.recv_exit_status(), output)

    try:
        return per_probe(probe, n)
    finally:
        client.close()


def fabric_row(sim: SimulatorClient, vm: str, n: int, nodelay: bool) -> Row:
    import fabric
    import paramiko

    conn = fabric.Connection(
        "127.0.0.1", port=sim.ssh_port(vm), user=USER, connect_timeout=TIMEOUT,
        connect_kwargs={"key_filename": str(sim.client_key), "look_for_keys": False,
                        "allow_agent": False, "sock": _socket(sim.ssh_port(vm), nodelay)})
    conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())

    def probe() -> None:
        result = conn.run(METRICS_COMMAND, hide=True, warn=True, timeout=TIMEOUT)
        check_output("fabric Connection.run", vm, result.exited, result.stdout)

    try:
        return per_probe(probe, n)
    finally:
        conn.close()


def import_rss_mb(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter that runs ``code``; median of 3 runs.
    (VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's.)"""
    probe = (f"{code}; print(next(line.split()[1] for line in open('/proc/self/status') "
             "if line.startswith('VmHWM:')))")
    runs = [int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True).stdout) / 1024 for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="probes per way (default 200)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("-n must be at least 1")
    has_fabric = importlib.util.find_spec("fabric") is not None
    ways: list[tuple[str, Callable[[SimulatorClient, str, int, bool], Row]]] = [
        ("paramiko SSHClient.exec_command", sshclient_row)]
    if has_fabric:
        ways.append(("fabric Connection.run", fabric_row))
    with tempfile.TemporaryDirectory(prefix="azlin-ssh-cost-") as tmp_text:
        tmp = Path(tmp_text)
        with simulator(tmp / "sim", 1) as (sim, _, _):
            vm = sim.vm_names[0]
            rows = [("ParamikoSshProber.probe (this project)", prober_row(sim, vm, tmp, args.n))]
            for name, row in ways:
                rows.append((name, row(sim, vm, args.n, False)))
                rows.append((f"{name} + TCP_NODELAY", row(sim, vm, args.n, True)))
    print(f"SSH probe cost, one simulated VM, connection kept open, {args.n} probes each")
    print(f"{'way (per probe)':<52} {'CPU ms':>7} {'wall ms':>8}")
    for name, (cpu, wall) in rows:
        print(f"{name:<52} {cpu:>7.2f} {wall:>8.2f}")
    if not has_fabric:
        print("fabric is not installed (not a dependency); for its rows: "
              ".venv/bin/pip install fabric")
        return
    daemon = import_rss_mb(BLOCK_INVOKE + "; import paramiko")
    plain = import_rss_mb("import paramiko")
    both = import_rss_mb("import paramiko, fabric")
    print(f"peak RSS after the imports: paramiko as the daemon loads it (invoke blocked) "
          f"{daemon:.1f} MB; with invoke {plain:.1f} MB; with fabric {both:.1f} MB "
          f"({both - plain:+.1f} MB, and fabric needs invoke: {both - daemon:+.1f} MB)")


if __name__ == "__main__":
    main()
