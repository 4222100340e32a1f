"""`azlin lifecycle demo`: watch a hung VM get detected, restarted and healthy again.

Everything is real except Azure itself: the stand-in Azure (ARM over HTTPS on
127.0.0.1) and its VMs' SSH servers run in this process, the daemon runs as its own
process (under the user's systemd manager when one is reachable, otherwise in the
foreground) with the real Azure SDK and SSH client, and the hooks are real scripts.
Nothing touches the user's own configuration: the demo uses a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from ..errors import LifecycleError
from ..models import VMState
from .fleet import SimulatedFleet
from .state import SshMode

UNIT = "azlin-lifecycle-demo.service"
VM_COUNT = 3
HUNG_VM = "vm-002"
DEADLINE_SECONDS = 110
HOOK_SCRIPT = """#!/bin/sh
# Prints one line per lifecycle event; the demo shows these lines.
line="$EVENT_TYPE $VM_NAME"
[ -n "$FAILURE_COUNT" ] && line="$line failures=$FAILURE_COUNT"
[ -n "$REASON" ] && line="$line reason=\\"$REASON\\""
[ -n "$RESTART_RESULT" ] && line="$line result=$RESTART_RESULT"
echo "$line" >> "$AZLIN_DEMO_HOOK_LOG"
"""
SHOWN_EVENTS = ("check_failed", "healing_held", "restart_", "vm_healthy", "breaker_",
                "power_changed", "daemon_", "escalation", "config_")


class Demo:
    deadline_seconds: float = DEADLINE_SECONDS

    def __init__(self, keep: bool, use_systemd: bool | None) -> None:
        self.keep = keep
        self.use_systemd = use_systemd
        self.t0 = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="azlin-lifecycle-demo-"))
        self.env = {
            **os.environ,
            "AZLIN_CONFIG_DIR": str(self.workdir / "azlin"),
            "XDG_STATE_HOME": str(self.workdir / "state"),
            "AZLIN_DEMO_HOOK_LOG": str(self.workdir / "hooks.log"),
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ output
    def say(self, who: str, text: str) -> None:
        with self._lock:
            click.echo(f"[{time.monotonic() - self.t0:5.1f}s] {who:<6} {text}")

    def wait(self, what: str, cond: Callable[[], bool]) -> float:
        """Poll ``cond`` until it holds (the demo's clock then), at most until
        ``deadline_seconds`` after the demo began."""
        while time.monotonic() < self.t0 + self.deadline_seconds:
            if cond():
                return time.monotonic() - self.t0
            time.sleep(0.2)
        raise LifecycleError(f"demo: timed out waiting until {what}; files kept in "
                             f"{self.workdir}")

    def _pump(self, lines: Iterator[str], who: str, keep: Callable[[str], bool]) -> None:
        for line in lines:
            if self._stop.is_set():
                return
            if keep(line):
                self.say(who, line.rstrip())

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        click.echo("azlin-lifecycle demo: 3 simulated Azure VMs, one of which hangs. Like the VMs "
                   "azlin makes, they have no public IP: the daemon reaches them through "
                   "their Azure Bastion, with tunnels of its own.")
        click.echo("Everything runs on 127.0.0.1; nothing contacts Azure. "
                   f"Demo files: {self.workdir}\n")
        with SimulatedFleet(self.workdir / "sim", VM_COUNT, boot_seconds=5.0,
                            operation_seconds=2.0) as fleet:
            self.env.update(fleet.env())
            self._configure(fleet)
            self.say("demo", f"stand-in Azure at {fleet.arm_endpoint}; private VMs "
                             f"{', '.join(fleet.vm_names)} each with a real SSH server, "
                             f"behind the stand-in Bastion {fleet.bastion.name}")
            self.say("demo", "monitoring: every 10s, restart policy on-failure after 2 failed "
                             "checks, 20s grace period after a restart, hooks print below")
            threading.Thread(target=self._pump, daemon=True, args=(
                _tail(Path(self.env["AZLIN_DEMO_HOOK_LOG"]), self._stop), "hook",
                lambda _: True)).start()
            stop_daemon = self._start_daemon()
            code = 1
            try:
                code = self._scenario(fleet, SshMode.HUNG)
                return code
            finally:
                stop_daemon()
                self._stop.set()
                self.say("demo", "stopped the daemon and the simulated fleet")
                self.clean_up(succeeded=code == 0)

    def clean_up(self, succeeded: bool) -> None:
        """Remove the demo's files, unless asked to keep them or the demo failed."""
        if self.keep or not succeeded:
            click.echo(f"Demo files kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _configure(self, fleet: SimulatedFleet) -> None:
        hook = self.workdir / "print-hook"
        hook.write_text(HOOK_SCRIPT)
        hook.chmod(0o755)
        config = Path(self.env["AZLIN_CONFIG_DIR"]) / "lifecycle-config.toml"
        fleet.write_config(
            config,
            resolve_ssh=True,  # address and user from Azure, as for azlin's VMs: the Bastion
            restart_policy="on-failure",
            check_interval_seconds=10,
            hooks={h: str(hook) for h in ("on_failure", "on_restart", "on_healthy")},
            extra_toml={
                "daemon": {"ssh_timeout_seconds": 3.0},
                "healing": {"grace_period_seconds": 20, "backoff_initial_seconds": 20},
                "vms": {vm: {"ssh_failure_threshold": 2} for vm in fleet.vm_names},
            },
        )

    def _start_daemon(self) -> Callable[[], None]:
        argv = [sys.executable, "-m", "azlin_lifecycle", "daemon", "run"]
        if self.use_systemd is not False and _user_manager_reachable():
            return self._start_under_systemd(argv)
        if self.use_systemd:
            raise LifecycleError("--systemd: no systemd user manager is reachable "
                                 "(systemctl --user does not answer)")
        self.say("demo", "starting the daemon in the foreground (no systemd user manager "
                         "reachable); its log lines follow")
        proc = subprocess.Popen(argv, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        threading.Thread(target=self._pump, daemon=True,
                         args=(iter(proc.stderr.readline, ""), "daemon", _interesting)).start()

        return lambda: stop_process(proc)

    def _start_under_systemd(self, argv: list[str]) -> Callable[[], None]:
        from ..adapters.journal import UnitJournal
        from ..adapters.process import run

        setenv = [f"--setenv={k}={self.env[k]}" for k in (
            "AZLIN_CONFIG_DIR", "XDG_STATE_HOME", "AZLIN_DEMO_HOOK_LOG", "PATH",
            "REQUESTS_CA_BUNDLE", "AZURE_CONFIG_DIR")]
        cmd = ["systemd-run", "--user", f"--unit={UNIT}", "--property=Type=notify",
               "--property=NotifyAccess=main", "--property=WatchdogSec=30", *setenv, *argv]
        self.say("demo", "starting the daemon under your systemd user manager: "
                         f"systemctl --user status {UNIT}")
        result = run(cmd, env=self.env, timeout=60)
        if result.exit_code != 0:
            raise LifecycleError(f"systemd-run failed ({result.explanation}): "
                                 f"{result.stderr.strip()}")
        self.say("demo", f"reading its journal: journalctl --user -u {UNIT}")
        journal = UnitJournal(UNIT)
        threading.Thread(target=self._pump, daemon=True, args=(
            journal.follow(lines=0, stop=self._stop.is_set), "daemon", _interesting)).start()

        def stop() -> None:
            run(["systemctl", "--user", "stop", UNIT], env=self.env, timeout=30)

        return stop

    def _scenario(self, fleet: SimulatedFleet, hung: SshMode) -> int:
        from ..state import StateStore

        store = StateStore(Path(self.env["XDG_STATE_HOME"]) / "azlin-lifecycle" / "state.db")
        try:
            self.wait("all VMs are healthy", lambda: len(
                [s for s in store.latest().values() if s.healthy]) == VM_COUNT)
            self.say("demo", f"all {VM_COUNT} VMs healthy. Now {HUNG_VM}'s OS hangs: SSH "
                             "accepts TCP but never answers, while Azure still says running")
            fleet.set_ssh_mode(HUNG_VM, hung)
            injected = time.monotonic() - self.t0
            detected = self.wait("the hang is detected", lambda: bool(
                (s := store.latest([HUNG_VM]).get(HUNG_VM)) and not s.healthy))
            restarted = self.wait("the daemon restarts the VM through the Azure API", lambda: any(
                op["vm"] == HUNG_VM and op["action"] == "restart" for op in fleet.operations()))
            done = self.wait("Azure finishes the restart", lambda: any(
                op["vm"] == HUNG_VM and op["action"] == "restart" and op["status"] == "Succeeded"
                for op in fleet.operations()))
            healthy = self.wait("the VM is healthy again", lambda: bool(
                (s := store.latest([HUNG_VM]).get(HUNG_VM)) and s.healthy
                and s.state is VMState.RUNNING))
            via = store.latest([HUNG_VM])[HUNG_VM].ssh_via
            time.sleep(1.0)  # let the last hook lines print
        finally:
            store.close()
        click.echo("")
        click.echo("What happened:")
        click.echo(f"  {injected:5.1f}s  {HUNG_VM} hung (fault injected)")
        click.echo(f"  {detected:5.1f}s  first failed check: SSH timed out (hung)")
        click.echo(f"  {restarted:5.1f}s  2nd consecutive failure: restart requested from Azure")
        click.echo(f"  {done:5.1f}s  Azure reported the restart done; grace period began")
        click.echo(f"  {healthy:5.1f}s  {HUNG_VM} healthy again; on_healthy hook fired")
        click.echo(f"  every check of {HUNG_VM} went through: {via}")
        click.echo("Every step above is in the daemon's journal (journalctl --user -u "
                   "azlin-lifecycle) when it runs as a service.")
        return 0


def stop_process(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """SIGTERM a daemon the demo started, SIGKILL it after ``timeout``; reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _interesting(line: str) -> bool:
    return any(f"{event}" in line for event in SHOWN_EVENTS)


def _tail(path: Path, stop: threading.Event) -> Iterator[str]:
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    if stop.is_set():
        return
    with path.open() as handle:
        while not stop.is_set():
            line = handle.readline()
            if line:
                yield line
            else:
                time.sleep(0.1)


def _user_manager_reachable() -> bool:
    try:
        from ..adapters.dbus import SystemdUserManager

        with SystemdUserManager() as manager:
            manager.properties("default.target")
        return True
    except Exception:
        return False


def run_demo(keep: bool = False, use_systemd: bool | None = None) -> int:
    return Demo(keep, use_systemd).run()
