"""Part B of the fleet benchmark: the running daemon against a simulated fleet.

``python -m azlin_lifecycle daemon run`` runs as a child process (foreground, its own
AZLIN_CONFIG_DIR and XDG_STATE_HOME); everything is read from outside: check records
from its state database (read-only), CPU and memory from /proc/PID, hook firings from
the file the hook script writes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _procs import REPO, cpu_seconds, simulator, status_mb, stop

from azlin_lifecycle.metrics_wire import CPU_SAMPLE_SECONDS
from azlin_lifecycle.models import HealthStatus

INTERVAL = 10
SSH_TIMEOUT = 10.0  # the default [daemon] ssh_timeout_seconds
GRACE = 5
BOOT_SECONDS = 3.0
HOOK = '#!/bin/sh\necho "$EVENT_TYPE $(date +%s.%N)" >> {log}\n'


class Watcher:
    """New check records of the daemon's state database, polled read-only."""

    def __init__(self, db: Path, pid: int) -> None:
        self.db, self.pid = db, pid
        self.conn: sqlite3.Connection | None = None
        self.last_id = 0
        self.checks: dict[str, list[HealthStatus]] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if self.conn is None and self.db.exists():
            self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        return self.conn

    def poll(self) -> None:
        conn = self._connect()
        if conn is None:
            return
        try:
            rows = conn.execute("SELECT id, record FROM checks WHERE id > ? ORDER BY id",
                                (self.last_id,)).fetchall()
        except sqlite3.OperationalError:
            return  # schema not created yet
        for row_id, record in rows:
            status = HealthStatus.from_record(json.loads(record))
            self.checks.setdefault(status.vm_name, []).append(status)
            self.last_id = row_id

    def fact(self, key: str) -> Any:
        conn = self._connect()
        if conn is None:
            return None
        try:
            row = conn.execute("SELECT value FROM daemon WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else json.loads(row[0])

    def repair_started(self, vm: str) -> float | None:
        conn = self._connect()
        if conn is None:
            return None
        row = conn.execute("SELECT MIN(started) FROM repairs WHERE vm = ? AND outcome != "
                           "'dry_run'", (vm,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def sweeps_done(self, vms: list[str]) -> int:
        return min((len(self.checks.get(vm, [])) for vm in vms), default=0)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    began = time.monotonic()
    while not cond():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - began


def hook_times(path: Path, event: str) -> list[float]:
    if not path.exists():
        return []
    return [float(line.split()[1]) for line in path.read_text().splitlines()
            if line.startswith(event + " ")]


@contextlib.contextmanager
def running_daemon(workdir: Path,
                   sim: Any) -> Iterator[tuple[subprocess.Popen[bytes], Watcher]]:
    """``python -m azlin_lifecycle daemon run`` on ``workdir/config`` (already written),
    state in ``workdir/state``, output in ``workdir/daemon.log``; stopped on exit."""
    env = sim.env()
    env.update(AZLIN_CONFIG_DIR=str(workdir / "config"), XDG_STATE_HOME=str(workdir / "state"))
    with (workdir / "daemon.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle", "daemon", "run"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        watcher = Watcher(workdir / "state" / "azlin-lifecycle" / "state.db", proc.pid)
        try:
            yield proc, watcher
        finally:
            watcher.close()
            stop(proc)


def run_case(n: int, workdir: Path) -> dict[str, Any]:
    """Start a fleet of ``n`` and the daemon; measure 3 sweeps, a fault and its repair."""
    out: dict[str, Any] = {"vms": n}
    with simulator(workdir / "sim", n, boot_seconds=BOOT_SECONDS,
                   command_seconds=CPU_SAMPLE_SECONDS) as (sim, sim_pid, _):
        cfg = workdir / "config"
        cfg.mkdir(parents=True, exist_ok=True)
        hook_log, hook = workdir / "hooks.log", workdir / "hook.sh"
        hook.write_text(HOOK.format(log=hook_log))
        hook.chmod(0o755)
        names = sim.vm_names
        fault = names[0]
        sim.write_config(cfg / "lifecycle-config.toml", check_interval_seconds=INTERVAL,
                         extra_toml={
                             "daemon": {"ssh_timeout_seconds": SSH_TIMEOUT},
                             "healing": {"grace_period_seconds": GRACE},
                             "vms": {fault: {"ssh_failure_threshold": 1,
                                             "hooks": {h: str(hook) for h in (
                                                 "on_failure", "on_restart", "on_healthy")}}}})
        with running_daemon(workdir, sim) as (proc, watcher):
            out.update(_measure(n, proc, sim, sim_pid, watcher, names, fault, hook_log))
    return out


def _measure(n: int, proc: subprocess.Popen[bytes], sim: Any, sim_pid: int, w: Watcher,
             names: list[str], fault: str, hook_log: Path) -> dict[str, Any]:
    pid = proc.pid

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}; see daemon.log")

    def started() -> bool:
        alive()
        return w.fact("started_at") is not None

    wait_for(started, 60, "the daemon to start", every=0.02)
    cpu0, sim0 = cpu_seconds(pid), cpu_seconds(sim_pid)
    out: dict[str, Any] = {"rss_at_start_mb": status_mb(pid, "VmRSS"), "startup_cpu_s": cpu0}
    sweeps: list[dict[str, Any]] = []
    for k in (1, 2, 3):
        def done(k: int = k) -> bool:
            alive()
            w.poll()
            return w.sweeps_done(names) >= k

        wait_for(done, 90 if k == 1 else INTERVAL + 60, f"sweep {k} of {n} VMs")
        cpu1, sim1 = cpu_seconds(pid), cpu_seconds(sim_pid)
        batch = [w.checks[vm][k - 1] for vm in names]
        sweeps.append({
            "sweep": k, "seconds": max(s.check_duration_seconds for s in batch),
            "healthy": sum(1 for s in batch if s.healthy),
            "daemon_cpu_s": cpu1 - cpu0, "daemon_cpu_ms_per_check": 1000 * (cpu1 - cpu0) / n,
            "sim_cpu_s": sim1 - sim0, "rss_after_mb": status_mb(pid, "VmRSS")})
        cpu0, sim0 = cpu1, sim1
    out["sweeps"] = sweeps
    out["idle_rss_mb"] = max(s["rss_after_mb"] for s in sweeps[1:])
    out["peak_rss_before_fault_mb"] = status_mb(pid, "VmHWM")

    # detection: hang the VM's SSH just after one of its checks finished (the worst case:
    # a whole interval until its next check, then the SSH timeout); the on_failure hook
    # writes when it runs
    seen = len(w.checks[fault])

    def fresh_check() -> bool:
        alive()
        w.poll()
        return len(w.checks[fault]) > seen

    wait_for(fresh_check, INTERVAL + 60, f"the next check of {fault}", every=0.02)
    last = w.checks[fault][-1]
    injected = time.time()
    sim.set_ssh_mode(fault, "hung")
    out["fault_injected_after_last_check_s"] = (
        injected - (last.timestamp.timestamp() - last.check_duration_seconds))

    def failure_hook() -> bool:
        alive()
        return any(t >= injected for t in hook_times(hook_log, "on_failure"))

    wait_for(failure_hook, INTERVAL + SSH_TIMEOUT + 60, "the on_failure hook")
    out["detection_s"] = min(t for t in hook_times(hook_log, "on_failure") if t >= injected) \
        - injected

    # recovery: restart requested (the repair intent in the state DB) -> a healthy check
    def repaired() -> bool:
        alive()
        return w.repair_started(fault) is not None

    wait_for(repaired, 60, "the restart request")
    requested = w.repair_started(fault) or 0.0

    def healthy_again() -> bool:
        alive()
        w.poll()
        return any(s.healthy and s.timestamp.timestamp() > requested for s in w.checks[fault])

    wait_for(healthy_again, 120, f"{fault} healthy again")
    back = next(s for s in w.checks[fault] if s.healthy and s.timestamp.timestamp() > requested)
    out["recovery_s"] = back.timestamp.timestamp() - requested
    out["restarts"] = [op["status"] for op in sim.operations() if op["vm"] == fault]
    out["peak_rss_mb"] = status_mb(pid, "VmHWM")
    time.sleep(2)  # settled: the repair thread has finished
    out["rss_after_repair_mb"] = status_mb(pid, "VmRSS")
    return out
