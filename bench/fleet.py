"""The fleet benchmark (``make bench``): health sweeps and the running daemon, 10-1,000 VMs.

A. One sweep with ``HealthMonitor.check_many`` and the real adapters (ArmCompute through
   the stand-in ``az`` and the simulator's CA, ParamikoSshProber), cold (fresh SSH
   connections) and warm (reused), in a fresh client process per N; and the spec's
   sequential loop as the baseline (``check_vm_health`` one VM after another, each with
   its own ``instance_view`` and a fresh SSH connection) for N = 10 and 100.
B. ``python -m azlin_lifecycle daemon run`` monitoring N VMs: sweep time, CPU per
   check, peak and idle RSS, detection latency (SSH hung -> on_failure hook), time
   back to healthy after the restart.
C. HA (bench/failover.py): failover time after SIGKILL of the leader and after a clean
   stop, and how soon a leader cut off from storage stops repairing.
D. [metrics] (bench/metrics_cost.py): what it costs off (nothing) and on at 100 VMs
   (import, memory, a scrape), and the daemon's RSS with it off and on.

The simulator runs in its own process. Its SSH endpoints answer the metrics command
after ``metrics_wire.CPU_SAMPLE_SECONDS``, as a real VM does (the command sleeps that
long between its two /proc/stat samples); one extra row shows the speedup with instant
answers. Prints a table and writes it as JSON to bench/results/fleet-latest.json.
Usage: .venv/bin/python bench/fleet.py [--quick]   (--quick: N = 10 and 100 only, no C,
D without its two daemon runs)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_case import INTERVAL, SSH_TIMEOUT, run_case
from _procs import REPO, simulator

from azlin_lifecycle.metrics_wire import CPU_SAMPLE_SECONDS

RESULTS = REPO / "bench" / "results" / "fleet-latest.json"
SWEEP_WALL_1000 = 15.0
CPU_MS = 10.0
RSS_MB = 150.0
IDLE_RSS_MB = 60.0
SPEEDUP = 20.0


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release()}


def sweep_client(n: int, tmp: Path, baseline: bool, command_seconds: float) -> dict[str, Any]:
    """Part A for one N: a fresh client process against a fresh simulator process."""
    with simulator(tmp / "sim", n, command_seconds=command_seconds) as (sim, sim_pid, ready):
        env = sim.env()
        env.update(AZLIN_CONFIG_DIR=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"))
        (tmp / "config").mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(REPO / "bench" / "_sweep_worker.py"), str(tmp / "sim"),
                str(sim_pid)] + (["--baseline"] if baseline else [])
        done = subprocess.run(argv, env=env, capture_output=True, timeout=300, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"sweep worker for {n} VMs failed:\n{done.stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        result["simulator_ready_s"] = ready
        result["command_seconds"] = command_seconds
        return result


def bound(client_cores: float, sim_cores: float) -> str:
    """Which side limits a sweep, from the cores each process kept busy."""
    if client_cores + sim_cores >= 1.8:
        return "both cores busy (machine)"
    if client_cores >= 0.8 and client_cores >= sim_cores:
        return "client CPU (one core: GIL)"
    if sim_cores >= 0.8:
        return "simulator CPU (one core: GIL)"
    return "waiting (VM-side command time, hand-offs)"


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, part: str, n: int | str, metric: str, value: float | str, unit: str = "",
            target: str = "", ok: bool | None = None, note: str = "") -> None:
        self.rows.append({"part": part, "vms": n, "metric": metric, "value": value,
                          "unit": unit, "target": target,
                          "result": "" if ok is None else ("PASS" if ok else "FAIL"),
                          "note": note})

    def render(self) -> str:
        head = ("part", "VMs", "metric", "value", "target", "result", "note")
        lines = [[r["part"], str(r["vms"]), r["metric"],
                  (f"{r['value']:.2f}" if isinstance(r["value"], float) else str(r["value"]))
                  + (f" {r['unit']}" if r["unit"] else ""), r["target"], r["result"],
                  r["note"]] for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line).rstrip() for line in lines]
        return "\n".join(out)


def part_a(table: Table, sizes: list[int], tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in sizes:
        print(f"A: sweep of {n} VMs ...", file=sys.stderr, flush=True)
        r = sweep_client(n, tmp / f"a{n}", n <= 100, CPU_SAMPLE_SECONDS)
        results[str(n)] = r
        wall_target = f"<= {SWEEP_WALL_1000:.0f} s" if n == 1000 else ""
        for kind in ("cold", "warm"):
            s = r[kind]
            okw = s["wall_s"] <= SWEEP_WALL_1000 if n == 1000 else None
            fails = "" if not s["failures"] else f"unhealthy: {s['failures']}"
            table.add("A", n, f"{kind} sweep wall", s["wall_s"], "s", wall_target, okw,
                      f"{s['healthy']}/{n} healthy, {s['connections_opened']} new SSH conns"
                      + (f"; {fails}" if fails else ""))
            if kind == "cold":
                table.add("A", n, "cold client CPU per check", s["client_cpu_ms_per_check"],
                          "ms", note="first sweep: the first az token, a new SSH connection "
                          "and host-key record per VM")
            else:
                table.add("A", n, "warm client CPU per check", s["client_cpu_ms_per_check"],
                          "ms", f"<= {CPU_MS:.0f} ms", s["client_cpu_ms_per_check"] <= CPU_MS,
                          "every later sweep")
            table.add("A", n, f"{kind} simulator CPU per check", s["sim_cpu_ms_per_check"],
                      "ms", note=f"bound: {bound(s['client_cores'], s['sim_cores'])} "
                      f"(client {s['client_cores']:.2f}, simulator {s['sim_cores']:.2f} cores)")
        peak = r["warm"]["peak_rss_mb"]
        table.add("A", n, "client peak RSS", peak, "MB", f"<= {RSS_MB:.0f} MB", peak <= RSS_MB,
                  f"fresh process; {r['rss_before_mb']:.0f} MB after imports")
        if "baseline" in r:
            b = r["baseline"]
            table.add("A", n, "sequential baseline wall", b["wall_s"], "s",
                      note=f"{b['client_cpu_ms_per_check']:.1f} ms CPU/check, "
                      f"{b['healthy']}/{n} healthy")
    if "100" in results:
        base100 = results["100"]["baseline"]["wall_s"]
        x = base100 / results["100"]["warm"]["wall_s"]
        table.add("A", 100, "speedup vs baseline (warm)", x, "x", f">= {SPEEDUP:.0f}x",
                  x >= SPEEDUP, "every sweep after the first")
        x = base100 / results["100"]["cold"]["wall_s"]
        table.add("A", 100, "speedup vs baseline (cold)", x, "x",
                  note="the first sweep after start")
        if 1000 in sizes:
            table.add("A", 1000, "sequential baseline wall", 10 * base100, "s",
                      note="EXTRAPOLATED: 10 x the 100-VM baseline (not measured)")
        print("A: 100 VMs with instant command answers ...", file=sys.stderr, flush=True)
        r0 = sweep_client(100, tmp / "a100-instant", True, 0.0)
        results["100-instant"] = r0
        x0 = r0["baseline"]["wall_s"] / r0["warm"]["wall_s"]
        table.add("A", 100, "speedup, instant VM answers", x0, "x",
                  note=f"baseline {r0['baseline']['wall_s']:.2f} s vs warm "
                  f"{r0['warm']['wall_s']:.2f} s: no VM/network latency left to overlap")
    return results


def part_b(table: Table, sizes: list[int], tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    detect_target = INTERVAL + SSH_TIMEOUT + 1
    for n in sizes:
        print(f"B: daemon with {n} VMs ...", file=sys.stderr, flush=True)
        try:
            r = run_case(n, tmp / f"b{n}")
        except (TimeoutError, RuntimeError) as exc:
            log = tmp / f"b{n}" / "daemon.log"
            kept = RESULTS.parent / f"daemon-{n}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            if log.exists():
                kept.write_bytes(log.read_bytes())
            results[str(n)] = {"error": str(exc)}
            table.add("B", n, "daemon run", "did not finish", target="all of B",
                      ok=False, note=f"{exc}; daemon log kept in {kept.relative_to(REPO)}")
            continue
        results[str(n)] = r
        cold, warm = r["sweeps"][0], r["sweeps"][1:]
        warm_s = max(s["seconds"] for s in warm)
        warm_cpu = sum(s["daemon_cpu_s"] for s in warm) / (len(warm) * n) * 1000
        table.add("B", n, "daemon cold sweep", cold["seconds"], "s",
                  f"<= {SWEEP_WALL_1000:.0f} s" if n == 1000 else "",
                  cold["seconds"] <= SWEEP_WALL_1000 if n == 1000 else None,
                  f"{cold['healthy']}/{n} healthy")
        table.add("B", n, "daemon warm sweep (max of 2)", warm_s, "s",
                  f"<= {SWEEP_WALL_1000:.0f} s" if n == 1000 else "",
                  warm_s <= SWEEP_WALL_1000 if n == 1000 else None,
                  f"{min(s['healthy'] for s in warm)}/{n} healthy")
        table.add("B", n, "daemon start-up CPU", r["startup_cpu_s"], "s",
                  note="interpreter and imports, until it reported ready")
        table.add("B", n, "daemon CPU per check, cold", cold["daemon_cpu_ms_per_check"], "ms",
                  note="from ready to sweep 1 done: a new SSH connection per VM")
        table.add("B", n, "daemon CPU per check, warm", warm_cpu, "ms", f"<= {CPU_MS:.0f} ms",
                  warm_cpu <= CPU_MS, "whole intervals incl. idle time")
        table.add("B", n, "daemon peak RSS (VmHWM)", r["peak_rss_mb"], "MB",
                  f"<= {RSS_MB:.0f} MB", r["peak_rss_mb"] <= RSS_MB)
        table.add("B", n, "daemon idle RSS (VmRSS)", r["idle_rss_mb"], "MB",
                  f"<= {IDLE_RSS_MB:.0f} MB", r["idle_rss_mb"] <= IDLE_RSS_MB,
                  "between sweeps, before any repair")
        table.add("B", n, "daemon RSS after its first repair", r["rss_after_repair_mb"], "MB",
                  note="a repair loads azure-mgmt-compute (its models: ~17 MB)")
        table.add("B", n, "detection (hung -> on_failure)", r["detection_s"], "s",
                  f"<= {detect_target:.0f} s", r["detection_s"] <= detect_target,
                  f"injected {r['fault_injected_after_last_check_s']:.1f} s after the "
                  "VM's last check started")
        table.add("B", n, "restart requested -> healthy", r["recovery_s"], "s",
                  note=f"ARM restart {r['restarts']}, boot 3 s, grace 5 s, interval "
                  f"{INTERVAL} s")
    return results


def part_c(table: Table) -> list[dict[str, Any]]:
    """HA: two monitors' elections on one Azurite (bench/failover.py)."""
    import failover

    print("C: HA failover on Azurite ...", file=sys.stderr, flush=True)
    rows = failover.rows()
    for r in rows:
        table.add("C", "-", r["metric"], r["value"], r["unit"], r["target"], r["ok"], r["note"])
    return rows


def part_d(table: Table, quick: bool) -> list[dict[str, Any]]:
    """[metrics]: its cost off and on (bench/metrics_cost.py)."""
    import metrics_cost

    print("D: [metrics] cost ...", file=sys.stderr, flush=True)
    rows = metrics_cost.rows(quick)
    for r in rows:
        table.add("D", metrics_cost.VMS, r["metric"], r["value"], r["unit"], r["target"],
                  r["ok"], r["note"])
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = [10, 100] if quick else [10, 100, 1000]
    began = time.monotonic()
    info = machine()
    table = Table()
    with tempfile.TemporaryDirectory(prefix="azlin-bench-") as tmp_text:
        tmp = Path(tmp_text)
        a = part_a(table, sizes, tmp)
        b = part_b(table, sizes, tmp)
        c = [] if quick else part_c(table)
        d = part_d(table, quick)
    took = time.monotonic() - began
    print(f"\nazlin-lifecycle fleet benchmark - {info['date']}; {info['nproc']} CPUs "
          f"({info['cpu']}), Python {info['python']}, Linux {info['kernel']}; "
          f"simulator in its own process, VM command time {CPU_SAMPLE_SECONDS} s; "
          f"run took {took:.0f} s\n")
    print(table.render())
    failed = [r for r in table.rows if r["result"] == "FAIL"]
    print(f"\n{len(failed)} of {sum(1 for r in table.rows if r['result'])} targets missed"
          + (": " + "; ".join(f"{r['part']} {r['vms']} {r['metric']}" for r in failed)
             if failed else ""))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": info, "seconds": took, "rows": table.rows,
                                   "sweeps": a, "daemon": b, "failover": c, "metrics": d}, indent=2,
                                  default=str) + "\n")
    print(f"written: {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
