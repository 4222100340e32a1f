"""The Bastion benchmark: N private VMs checked through the stand-in Azure Bastion.

Every VM has no public IP; each check goes VM -> NIC -> (private IP does not answer) ->
the resource group's Bastion -> token exchange -> WebSocket over TLS -> SSH over it, with
the real adapters (``HealthMonitor.check_many``, ArmCompute through the stand-in ``az``,
BastionTunnels, ParamikoSshProber). The simulator (ARM, the Bastion's data plane, every VM's
sshd) runs in its own process; the client is a fresh process per fleet, so the CPU and
memory figures are the client's alone. VMs answer the metrics command after
``metrics_wire.CPU_SAMPLE_SECONDS``, as a real VM does.

Rows: the cold sweep (a new tunnel and SSH connection per VM, first tokens), the warm sweep
(tunnels and connections kept; the median of several), client CPU per warm check, and the
extra RSS per kept tunnel + connection (RSS with all of them open, minus RSS once they are
closed and freed memory is given back, over N). The same fleet with public IPs (direct SSH)
is measured alongside for reference, and websocket-client's import cost.

Usage: .venv/bin/python bench/bastion.py [--vms 100] [--warm 5] [--no-reference]
Writes the table as JSON to bench/results/bastion-latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import REPO, cpu_seconds, simulator

from azlin_lifecycle.metrics_wire import CPU_SAMPLE_SECONDS

RESULTS = REPO / "bench" / "results" / "bastion-latest.json"
WARM_WALL_S = 1.0
WARM_CPU_MS = 5.0
KEPT_KB = 150.0


# --------------------------------------------------------------------------- the client
def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(sim_dir: Path, sim_pid: int, warm: int) -> dict[str, Any]:
    """Run in a fresh process: the sweeps, then the memory of the kept tunnels."""
    from azlin_lifecycle.adapters.libc import release_free_memory
    from azlin_lifecycle.simulator import SimulatorClient
    from azlin_lifecycle.wiring import HealthMonitor, load_adapter_libraries

    load_adapter_libraries()  # imports are not part of a sweep (the daemon loads them early)
    sim = SimulatorClient.from_dir(sim_dir)
    config = Path(os.environ["AZLIN_CONFIG_DIR"]) / "lifecycle-config.toml"
    sim.write_config(config, resolve_ssh=True)
    monitor = HealthMonitor(config)
    names = sorted(monitor.config.enabled_vms())
    prober: Any = monitor.ssh

    def sweep() -> dict[str, Any]:
        cpu0, sim0, t0 = own_cpu(), cpu_seconds(sim_pid), time.monotonic()
        statuses = monitor.check_many(names)
        wall = time.monotonic() - t0
        bad = sorted({s.reason or "" for s in statuses.values() if not s.healthy})
        return {"wall_s": wall, "client_cpu_ms_per_check": 1000 * (own_cpu() - cpu0) / len(names),
                "sim_cpu_ms_per_check": 1000 * (cpu_seconds(sim_pid) - sim0) / len(names),
                "healthy": sum(1 for s in statuses.values() if s.healthy), "failures": bad[:3],
                "via": sorted({s.ssh_via or "" for s in statuses.values()})[:2]}

    opened = prober.connections_opened
    cold = sweep()
    cold["connections_opened"] = prober.connections_opened - opened
    opened = prober.connections_opened
    warms = [sweep() for _ in range(warm)]
    gc.collect()
    release_free_memory()
    kept_rss, threads_kept = rss_kb(), threading.active_count()
    tunnels = getattr(prober, "tunnels", None)
    result: dict[str, Any] = {
        "vms": len(names), "cold": cold,
        "warm": {"wall_s": statistics.median(w["wall_s"] for w in warms),
                 "client_cpu_ms_per_check": statistics.median(
                     w["client_cpu_ms_per_check"] for w in warms),
                 "sim_cpu_ms_per_check": statistics.median(
                     w["sim_cpu_ms_per_check"] for w in warms),
                 "healthy": min(w["healthy"] for w in warms),
                 "failures": warms[-1]["failures"],
                 "connections_opened": prober.connections_opened - opened,
                 "walls_s": [round(w["wall_s"], 3) for w in warms]},
        "tunnels_opened": None if tunnels is None else tunnels.opened,
        "threads_with_kept": threads_kept}
    for name in names:  # close every tunnel and connection (their sessions are deleted)
        monitor.forget_vm(name)
    time.sleep(0.5)
    gc.collect()
    release_free_memory()
    closed_rss = rss_kb()
    result.update(rss_kept_mb=kept_rss / 1024, rss_closed_mb=closed_rss / 1024,
                  kept_kb_each=(kept_rss - closed_rss) / len(names),
                  threads_closed=threading.active_count())
    monitor.close()
    return result


# --------------------------------------------------------------------------- the runner
def run_fleet(n: int, private: bool, warm: int, tmp: Path) -> dict[str, Any]:
    with simulator(tmp / "sim", n, command_seconds=CPU_SAMPLE_SECONDS,
                   private=private) as (sim, sim_pid, _ready):
        env = sim.env()
        env.update(AZLIN_CONFIG_DIR=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"))
        (tmp / "config").mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tmp / "sim"),
                str(sim_pid), "--warm", str(warm)]
        done = subprocess.run(argv, env=env, capture_output=True, timeout=600, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"the client for {n} VMs failed:\n{done.stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        if private:
            result["bastion"] = sim.status()["bastion"]
        return result


def import_cost() -> dict[str, float]:
    """websocket-client's import in a fresh interpreter that has loaded what the daemon has."""
    code = (
        "import importlib, sys, time\n"
        "sys.modules.setdefault('invoke', None)  # as wiring.load_adapter_libraries\n"
        "for name in ('azure.identity', 'azure.mgmt.core', 'requests', 'paramiko'):\n"
        "    importlib.import_module(name)\n"
        "def rss():\n"
        "    line = [x for x in open('/proc/self/status') if x.startswith('VmRSS')][0]\n"
        "    return int(line.split()[1])\n"
        "r0, t0, c0 = rss(), time.perf_counter(), time.process_time()\n"
        "import websocket\n"
        "print(1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0), rss() - r0)\n")
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=REPO).stdout.split()
        runs.append([float(x) for x in out])
    wall, cpu, kb = (statistics.median(r[i] for r in runs) for i in range(3))
    return {"wall_ms": wall, "cpu_ms": cpu, "rss_kb": kb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--warm", type=int, default=5, help="warm sweeps (the median is shown)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the same fleet with public IPs (direct SSH)")
    parser.add_argument("--worker", nargs=2, metavar=("SIM_DIR", "SIM_PID"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        json.dump(worker(Path(args.worker[0]), int(args.worker[1]), args.warm), sys.stdout)
        return
    n = args.vms
    with tempfile.TemporaryDirectory(prefix="azlin-bench-bastion-") as tmp:
        print(f"{n} private VMs through the stand-in Bastion ...", file=sys.stderr, flush=True)
        via = run_fleet(n, True, args.warm, Path(tmp) / "bastion")
        direct = None
        if not args.no_reference:
            print(f"{n} VMs with public IPs (direct SSH) ...", file=sys.stderr, flush=True)
            direct = run_fleet(n, False, args.warm, Path(tmp) / "direct")
    imports = import_cost()
    rows = table(via, direct, imports)
    print(render(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")},
        "bastion": via, "direct": direct, "websocket_import": imports, "rows": rows},
        indent=2))
    if via["cold"]["healthy"] != n or via["warm"]["healthy"] != n:
        raise SystemExit(f"not every VM was healthy: {via['cold']['failures']}")


def table(via: dict[str, Any], direct: dict[str, Any] | None,
          imports: dict[str, float]) -> list[list[str]]:
    n = via["vms"]

    def ref(value: str) -> str:
        return value if direct is not None else "-"

    d = direct or {"cold": {}, "warm": {}}
    rows = [
        ["cold sweep wall (new tunnels)", f"{via['cold']['wall_s']:.2f} s",
         ref(f"{d['cold'].get('wall_s', 0):.2f} s"), "", ""],
        ["cold client CPU per check", f"{via['cold']['client_cpu_ms_per_check']:.1f} ms",
         ref(f"{d['cold'].get('client_cpu_ms_per_check', 0):.1f} ms"), "", ""],
        ["warm sweep wall (median)", f"{via['warm']['wall_s']:.2f} s",
         ref(f"{d['warm'].get('wall_s', 0):.2f} s"), f"<= {WARM_WALL_S:g} s",
         ok(via["warm"]["wall_s"] <= WARM_WALL_S)],
        ["warm client CPU per check", f"{via['warm']['client_cpu_ms_per_check']:.2f} ms",
         ref(f"{d['warm'].get('client_cpu_ms_per_check', 0):.2f} ms"),
         f"<= {WARM_CPU_MS:g} ms", ok(via["warm"]["client_cpu_ms_per_check"] <= WARM_CPU_MS)],
        ["warm simulator CPU per check", f"{via['warm']['sim_cpu_ms_per_check']:.2f} ms",
         ref(f"{d['warm'].get('sim_cpu_ms_per_check', 0):.2f} ms"), "", ""],
        ["extra RSS per kept tunnel + connection", f"{via['kept_kb_each']:.0f} KB",
         ref(f"{d.get('kept_kb_each', 0):.0f} KB"), f"<= {KEPT_KB:g} KB",
         ok(via["kept_kb_each"] <= KEPT_KB)],
        ["client RSS, all kept / all closed",
         f"{via['rss_kept_mb']:.1f} / {via['rss_closed_mb']:.1f} MB",
         ref(f"{d.get('rss_kept_mb', 0):.1f} / {d.get('rss_closed_mb', 0):.1f} MB"), "", ""],
        ["threads, all kept / all closed",
         f"{via['threads_with_kept']} / {via['threads_closed']}",
         ref(f"{d.get('threads_with_kept', 0)} / {d.get('threads_closed', 0)}"), "", ""],
        ["connections opened, cold / warm",
         f"{via['cold']['connections_opened']} / {via['warm']['connections_opened']}",
         ref(f"{d['cold'].get('connections_opened', 0)} / "
             f"{d['warm'].get('connections_opened', 0)}"), "", ""],
        ["healthy, cold / warm", f"{via['cold']['healthy']} / {via['warm']['healthy']} of {n}",
         ref(f"{d['cold'].get('healthy', 0)} / {d['warm'].get('healthy', 0)} of {n}"), "", ""],
    ]
    b = via.get("bastion") or {}
    rows.append(["Bastion: token exchanges / tunnels / deletes",
                 f"{b.get('exchanges')} / {b.get('tunnels')} / {b.get('deletes')}", "-", "", ""])
    rows.append(["import websocket (websocket-client)",
                 f"{imports['wall_ms']:.1f} ms, +{imports['rss_kb']:.0f} KB RSS", "-", "", ""])
    return rows


def ok(good: bool) -> str:
    return "PASS" if good else "FAIL"


def render(rows: list[list[str]]) -> str:
    head = ["what", "via Bastion", "direct SSH", "target", "result"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*r).rstrip() for r in rows])


if __name__ == "__main__":
    main()
