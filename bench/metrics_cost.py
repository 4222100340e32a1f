"""What [metrics] costs (``make bench`` part D): off must cost nothing; on, at most 5 MB at
100 VMs.

1. In a fresh interpreter that has loaded what the daemon loads (the adapter libraries
   and the daemon's modules) and holds a daemon's books for 100 VMs (latest checks, a
   state store with repairs): the switch started with [metrics] off (modules and threads
   it adds: none), then turned on — the import's time and memory, then the endpoint
   started and scraped 30 times over HTTP; RSS after each step, CPU and size of a scrape.
2. The real daemon (``daemon run``) monitoring 100 simulated VMs, once with [metrics]
   off and once on with a scraper every second: RSS after its third sweep (skipped with
   --quick).

Usage: .venv/bin/python bench/metrics_cost.py [--quick]
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_case import INTERVAL, running_daemon, wait_for
from _procs import REPO, simulator, status_mb

VMS = 100
SCRAPES = 30
ON_BUDGET_MB = 5.0

WORKER = r"""
import datetime as dt, gc, json, sys, threading, time, urllib.request
from pathlib import Path
sys.path.insert(0, {bench!r})
from _procs import status_mb
import os
def rss(): return status_mb(os.getpid(), "VmRSS")
from azlin_lifecycle.wiring import load_adapter_libraries
load_adapter_libraries()
import azlin_lifecycle.daemon  # the daemon's own modules
from azlin_lifecycle.adapters.prometheus import MetricsExporter, Sources
from azlin_lifecycle.config import LifecycleConfig, MetricsSettings, MonitoringConfig
from azlin_lifecycle.fleet_book import FleetBook
from azlin_lifecycle.models import HealthStatus, RepairAction, VMMetrics, VMState
from azlin_lifecycle.state import StateStore
n, port = {vms}, {port}
vms = {{f"vm-{{i:03d}}": MonitoringConfig(resource_group="rg") for i in range(n)}}
off = LifecycleConfig(vms=vms)
on = LifecycleConfig(vms=vms, metrics=MetricsSettings(listen=f"127.0.0.1:{{port}}"))
store = StateStore(Path({state!r}))
book = FleetBook(store)
book.enabled = off.enabled_vms()
now = dt.datetime.now(dt.UTC)
for i, vm in enumerate(vms):
    book.latest[vm] = HealthStatus(vm, VMState.RUNNING, True, 0, True, metrics=VMMetrics(
        cpu_percent=10.0, memory_percent=40.0, disk_percent=50.0),
        check_duration_seconds=0.2, timestamp=now)
    book.last_healthy[vm] = now.timestamp()
    if i % 10 == 0:
        rid = store.begin_repair(vm, RepairAction.RESTART, dry_run=False, grace_until=0)
        store.end_repair(rid, success=True, error=None, grace_until=None)
book.swept(book.latest.values())
exporter = MetricsExporter(off, Sources(book, threading.Lock(), store))
gc.collect()
out = {{"rss_base_mb": rss()}}
mods, threads = set(sys.modules), threading.active_count()
exporter.start()
gc.collect()
out["off_modules"] = len(set(sys.modules) - mods)
out["off_threads"] = threading.active_count() - threads
out["rss_off_mb"] = rss()
t = time.perf_counter()
import prometheus_client.registry, prometheus_client.process_collector
import azlin_lifecycle.adapters.prometheus.collector, azlin_lifecycle.adapters.prometheus.serve
out["import_ms"] = (time.perf_counter() - t) * 1000
out["on_modules"] = len(set(sys.modules) - mods)
gc.collect()
out["rss_imported_mb"] = rss()
exporter.apply(on)
exporter.wait()
out["on_threads"] = threading.active_count() - threads
size = 0
for _ in range({scrapes}):
    with urllib.request.urlopen(f"http://127.0.0.1:{{port}}/metrics", timeout=10) as r:
        size = len(r.read())
gc.collect()
out["rss_on_mb"] = rss()
out["scrape_bytes"] = size
from prometheus_client.exposition import generate_latest
cpu = time.process_time()
from azlin_lifecycle.adapters.prometheus.collector import EventCounts, FleetCollector
from prometheus_client.registry import CollectorRegistry
reg = CollectorRegistry(auto_describe=False)
reg.register(FleetCollector(exporter.sources, lambda: on, EventCounts()))
for _ in range({scrapes}):
    generate_latest(reg)
out["scrape_cpu_ms"] = (time.process_time() - cpu) * 1000 / {scrapes}
exporter.stop()
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_process(tmp: Path) -> dict[str, Any]:
    """Part 1, in a fresh interpreter; its figures as a dict."""
    script = WORKER.format(bench=str(REPO / "bench"), vms=VMS, port=free_port(),
                           state=str(tmp / "state.db"), scrapes=SCRAPES)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"the metrics worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def daemon_rss(tmp: Path, sim: Any, on: bool) -> float:
    """Part 2: the daemon's VmRSS after its third sweep of ``VMS`` VMs, [metrics] on or off
    (on: scraped every second meanwhile, as Prometheus would)."""
    work = tmp / ("on" if on else "off")
    (work / "config").mkdir(parents=True)
    port = free_port()
    extra: dict[str, Any] = {"metrics": {"listen": f"127.0.0.1:{port}"}} if on else {}
    sim.write_config(work / "config" / "lifecycle-config.toml",
                     check_interval_seconds=INTERVAL, extra_toml=extra)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(1.0):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    r.read()
            except OSError:
                pass  # not listening yet

    with running_daemon(work, sim) as (proc, watcher):
        thread = threading.Thread(target=scraper, daemon=True)
        if on:
            thread.start()
        try:
            names = sim.vm_names

            def swept(k: int) -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited; see {work}/daemon.log")
                watcher.poll()
                return watcher.sweeps_done(names) >= k

            wait_for(lambda: swept(3), 120, f"3 sweeps of {VMS} VMs")
            time.sleep(1.0)
            return status_mb(proc.pid, "VmRSS")
        finally:
            stop.set()


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """The figures as the fleet benchmark's table rows."""
    with tempfile.TemporaryDirectory(prefix="azlin-metrics-bench-") as text:
        tmp = Path(text)
        p = in_process(tmp)
        on_mb = p["rss_on_mb"] - p["rss_off_mb"]
        out = [
            {"metric": "[metrics] off: modules, threads, RSS added",
             "value": f"{p['off_modules']}, {p['off_threads']}, "
                      f"{p['rss_off_mb'] - p['rss_base_mb']:.1f} MB", "unit": "",
             "target": "0, 0, 0", "ok": p["off_modules"] == 0 and p["off_threads"] == 0
             and p["rss_off_mb"] - p["rss_base_mb"] < 0.5, "note": "the switch started, off"},
            {"metric": "[metrics] on: import (in the daemon's process)",
             "value": f"{p['import_ms']:.0f} ms, {p['rss_imported_mb'] - p['rss_off_mb']:.1f} MB",
             "unit": "", "target": "", "ok": None,
             "note": f"{p['on_modules']} modules: prometheus_client and the exporter"},
            {"metric": f"[metrics] on: RSS added at {VMS} VMs", "value": on_mb, "unit": "MB",
             "target": f"<= {ON_BUDGET_MB:.0f} MB", "ok": on_mb <= ON_BUDGET_MB,
             "note": f"import, endpoint thread, {SCRAPES} scrapes"},
            {"metric": f"[metrics] scrape at {VMS} VMs", "value": p["scrape_cpu_ms"],
             "unit": "ms CPU", "target": "", "ok": None,
             "note": f"{p['scrape_bytes'] / 1024:.0f} KiB of text per scrape"},
        ]
        if not quick:
            with simulator(tmp / "sim", VMS) as (sim, _, _):
                off = daemon_rss(tmp, sim, on=False)
                on = daemon_rss(tmp, sim, on=True)
            out.append({"metric": f"daemon RSS after 3 sweeps of {VMS} VMs, off / on",
                        "value": f"{off:.1f} / {on:.1f} MB ({on - off:+.1f})", "unit": "",
                        "target": f"on - off <= {ON_BUDGET_MB:.0f} MB",
                        "ok": on - off <= ON_BUDGET_MB,
                        "note": "two daemon runs (RSS varies ~1 MB run to run); "
                                "on: scraped every second"})
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    table = rows(quick)
    width = max(len(r["metric"]) for r in table)
    print(f"{'metric':<{width}}  value")
    for r in table:
        value = f"{r['value']:.2f} {r['unit']}" if isinstance(r["value"], float) else r["value"]
        verdict = "" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")
        print(f"{r['metric']:<{width}}  {value}  {r['target']}  {verdict}  {r['note']}".rstrip())


if __name__ == "__main__":
    main()
