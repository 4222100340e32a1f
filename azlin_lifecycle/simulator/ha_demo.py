"""`azlin lifecycle demo --ha`: two monitors, one acting; the leader dies mid-restart.

Two `daemon run` processes (each its own config and state directory, as on two
machines) watch one simulated fleet and share a lease blob in Azurite on 127.0.0.1. A
VM hangs, the leader restarts it, and is killed (SIGKILL) while Azure works; the
standby takes the lease once it expires, reads the shared ledger, and does not restart
the VM again. Nothing contacts Azure; Azurite's published key is used on loopback only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from ..state import StateStore
from .azurite import Azurite
from .demo import HOOK_SCRIPT, Demo, _interesting, _tail, stop_process
from .fleet import SimulatedFleet
from .state import SshMode

VM_COUNT = 2
HUNG_VM = "vm-002"
LEASE_SECONDS = 15
OPERATION_SECONDS = 20.0  # long enough to kill the leader while Azure restarts the VM
DEADLINE_SECONDS = 150
SHOWN = ("leader_elected", "leadership_lost", "standby", "restart_", "interrupted")


class Monitor:
    """One monitor: its directories, its daemon process, its state store."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.home = workdir / name
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None
        self._store: StateStore | None = None

    def store(self) -> StateStore | None:
        db = self.home / "state" / "azlin-lifecycle" / "state.db"
        if self._store is None and db.exists():
            self._store = StateStore(db)
        return self._store

    def role(self) -> str | None:
        store = self.store()
        return None if store is None else (store.daemon_facts().get("ha") or {}).get("role")

    def since(self) -> float:
        store = self.store()
        assert store is not None
        return float(store.daemon_facts()["ha"]["since"])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self._store is not None:
            self._store.close()


class HaDemo(Demo):
    deadline_seconds = DEADLINE_SECONDS

    def __init__(self, keep: bool) -> None:
        super().__init__(keep, use_systemd=False)
        self.monitors = [Monitor(name, self.workdir) for name in ("mon-a", "mon-b")]

    def run(self) -> int:
        click.echo("azlin-lifecycle HA demo: two monitors, one simulated fleet, one lease "
                   "blob in Azurite.")
        click.echo("Everything runs on 127.0.0.1; nothing contacts Azure. "
                   f"Demo files: {self.workdir}\n")
        with Azurite(self.workdir / "azurite" / "azurite.log") as storage, \
                SimulatedFleet(self.workdir / "sim", VM_COUNT, boot_seconds=3.0,
                               operation_seconds=OPERATION_SECONDS) as fleet:
            self.say("demo", f"Azurite at {storage.account_url}; stand-in Azure at "
                             f"{fleet.arm_endpoint}; VMs {', '.join(fleet.vm_names)}")
            self.say("demo", f"[ha] lease {LEASE_SECONDS}s, renewed every "
                             f"{LEASE_SECONDS // 3}s; checks every 10s, restart after 2 failures")
            code = 1
            try:
                for monitor in self.monitors:  # its own directories, as on its own machine
                    monitor.env = {**fleet.env(), "AZLIN_CONFIG_DIR": str(monitor.home / "azlin"),
                                   "XDG_STATE_HOME": str(monitor.home / "state"),
                                   "AZLIN_DEMO_HOOK_LOG": str(monitor.home / "hooks.log")}
                    self._configure_monitor(fleet, monitor, storage.account_url)
                    self._start(monitor)
                code = self._ha_scenario(fleet)
                return code
            finally:
                for monitor in self.monitors:
                    monitor.stop()
                self._stop.set()
                self.say("demo", "stopped both monitors, Azurite and the simulated fleet")
                self.clean_up(succeeded=code == 0)

    def _configure_monitor(self, fleet: SimulatedFleet, monitor: Monitor, url: str) -> None:
        hook = monitor.home / "print-hook"
        hook.parent.mkdir(parents=True)
        hook.write_text(HOOK_SCRIPT)
        hook.chmod(0o755)
        fleet.write_config(
            monitor.home / "azlin" / "lifecycle-config.toml", restart_policy="on-failure",
            check_interval_seconds=10,
            hooks={h: str(hook) for h in ("on_failure", "on_restart", "on_healthy")},
            extra_toml={
                "daemon": {"ssh_timeout_seconds": 3.0},
                "healing": {"grace_period_seconds": 20, "restart_timeout_seconds": 120},
                "ha": {"enabled": True, "account_url": url, "credential": "azurite",
                       "lease_seconds": LEASE_SECONDS},
                "vms": {vm: {"ssh_failure_threshold": 2} for vm in fleet.vm_names},
            })
        threading.Thread(target=self._pump, daemon=True, args=(
            _tail(monitor.home / "hooks.log", self._stop), f"{monitor.name}>",
            lambda _: True)).start()

    def _start(self, monitor: Monitor) -> None:
        monitor.proc = subprocess.Popen(
            [sys.executable, "-m", "azlin_lifecycle", "daemon", "run"], env=monitor.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        assert monitor.proc.stderr is not None
        threading.Thread(target=self._pump, daemon=True, args=(
            iter(monitor.proc.stderr.readline, ""), monitor.name, _shown)).start()

    def _ha_scenario(self, fleet: SimulatedFleet) -> int:
        def restarts() -> int:
            return sum(1 for op in fleet.operations()
                       if op["vm"] == HUNG_VM and op["action"] == "restart")

        self.wait("one monitor leads", lambda: sorted(str(m.role()) for m in self.monitors)
             == ["leader", "standby"])
        leader = next(m for m in self.monitors if m.role() == "leader")
        standby = next(m for m in self.monitors if m is not leader)
        self.say("demo", f"{leader.name} leads, {standby.name} stands by (it checks, but "
                         "never repairs or fires hooks)")
        time.sleep(12)  # both have checked every VM
        self.say("demo", f"now {HUNG_VM} hangs: SSH accepts TCP but never answers")
        fleet.set_ssh_mode(HUNG_VM, SshMode.HUNG)
        restarted = self.wait("the leader restarts the VM", lambda: restarts() == 1)
        time.sleep(2.0)
        leader_pid = leader.proc.pid if leader.proc else 0
        self.say("demo", f"SIGKILL {leader.name} (pid {leader_pid}) while Azure restarts "
                         f"{HUNG_VM} (the operation takes {OPERATION_SECONDS:g}s)")
        killed_at = time.time()
        if leader.proc is not None:
            os.kill(leader.proc.pid, signal.SIGKILL)
            leader.proc.wait()
        killed = time.monotonic() - self.t0
        took_over = self.wait(f"{standby.name} leads", lambda: standby.role() == "leader")
        failover = standby.since() - killed_at
        standby_store = standby.store()
        assert standby_store is not None
        healthy = self.wait(f"{HUNG_VM} is healthy again", lambda: bool(
            (s := standby_store.latest([HUNG_VM]).get(HUNG_VM)) and s.healthy))
        time.sleep(12)  # one more check: no second restart
        count = restarts()
        click.echo("")
        click.echo("What happened:")
        click.echo(f"  {restarted:5.1f}s  {leader.name} (leader) asked Azure to restart "
                   f"{HUNG_VM}; its intent was in the shared ledger first")
        click.echo(f"  {killed:5.1f}s  {leader.name} killed mid-restart")
        click.echo(f"  {took_over:5.1f}s  {standby.name} took the lease {failover:.1f}s after "
                   f"the kill (bound: lease {LEASE_SECONDS}s + one poll), read the ledger: "
                   "the restart is interrupted, its grace period stands")
        click.echo(f"  {healthy:5.1f}s  {HUNG_VM} healthy again")
        click.echo(f"Restarts requested from Azure: {count} (a failover never repeats one)")
        return 0 if count == 1 else 1


def _shown(line: str) -> bool:
    return _interesting(line) or any(event in line for event in SHOWN)


def run_ha_demo(keep: bool = False) -> int:
    return HaDemo(keep).run()
