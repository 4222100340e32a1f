"""One client process of the fleet benchmark, part A (run by bench/fleet.py, not by hand).

``python bench/_sweep_worker.py SIM_DIR SIM_PID [--baseline]`` with PATH, REQUESTS_CA_BUNDLE,
AZLIN_CONFIG_DIR and XDG_STATE_HOME set by the caller. Writes the config for the fleet,
then times, in this fresh process: a cold sweep (``HealthMonitor.check_many``, fresh SSH
connections, first Azure token), a warm sweep (reused connections) and, with
``--baseline``, the spec's sequential loop (``check_vm_health`` one VM after another,
each with its own ``instance_view`` and a fresh SSH connection). Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import cpu_seconds

from azlin_lifecycle.health import HealthStatus
from azlin_lifecycle.simulator import SimulatorClient
from azlin_lifecycle.wiring import HealthMonitor, load_adapter_libraries


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(sim_pid: int, checks: int, run: Any) -> dict[str, Any]:
    cpu0, sim0, t0 = own_cpu(), cpu_seconds(sim_pid), time.monotonic()
    statuses: list[HealthStatus] = run()
    healthy = sum(1 for s in statuses if s.healthy)
    failures = Counter(s.reason for s in statuses if not s.healthy)
    wall = time.monotonic() - t0
    cpu, sim = own_cpu() - cpu0, cpu_seconds(sim_pid) - sim0
    return {"checks": checks, "healthy": healthy, "wall_s": wall, "client_cpu_s": cpu,
            "client_cpu_ms_per_check": 1000 * cpu / checks, "sim_cpu_s": sim,
            "sim_cpu_ms_per_check": 1000 * sim / checks,
            "client_cores": cpu / wall, "sim_cores": sim / wall,
            "peak_rss_mb": peak_rss_mb(), "failures": dict(failures.most_common(5))}


def main() -> None:
    sim_dir, sim_pid, baseline = Path(sys.argv[1]), int(sys.argv[2]), "--baseline" in sys.argv
    t0 = time.monotonic()
    load_adapter_libraries()  # imports are not part of a sweep (the daemon loads them early)

    imports = time.monotonic() - t0
    sim = SimulatorClient.from_dir(sim_dir)
    config_path = Path(os.environ["AZLIN_CONFIG_DIR"]) / "lifecycle-config.toml"
    sim.write_config(config_path)
    monitor = HealthMonitor(config_path)
    names = sorted(monitor.config.enabled_vms())
    n = len(names)
    result: dict[str, Any] = {"vms": n, "imports_s": imports, "rss_before_mb": peak_rss_mb(),
                              "max_workers": monitor.config.daemon.max_workers}

    def sweep() -> list[HealthStatus]:
        return list(monitor.check_many(names).values())

    prober: Any = monitor.ssh
    opened = prober.connections_opened
    result["cold"] = measure(sim_pid, n, sweep)
    result["cold"]["connections_opened"] = prober.connections_opened - opened
    opened = prober.connections_opened
    result["warm"] = measure(sim_pid, n, sweep)
    result["warm"]["connections_opened"] = prober.connections_opened - opened
    if baseline:
        def sequential() -> list[HealthStatus]:
            statuses = []
            for name in names:
                prober.forget(monitor.target(name))  # a fresh SSH connection each, as the spec
                statuses.append(monitor.check_vm_health(name))
            return statuses

        opened = prober.connections_opened
        result["baseline"] = measure(sim_pid, n, sequential)
        result["baseline"]["connections_opened"] = prober.connections_opened - opened
    monitor.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
