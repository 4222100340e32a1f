"""End to end: the real daemon as the installed, sandboxed user unit against the stand-in Azure.

One user session, one simulator running as the test user
and one installed unit serve every test here; :meth:`Stage.reset` gives each test a
stopped daemon, a fresh state directory, a fleet with every VM running and reachable,
and a configuration of its own. The unit is what ``azlin lifecycle install`` writes,
plus a drop-in that only puts the stand-in ``az`` on its PATH.

A hook script records every hook run in the state directory — the sandbox
(ProtectHome=read-only, PrivateTmp) leaves only the config and state directories
writable. Events are read as the user with ``journalctl --user -u azlin-lifecycle``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from azlin_lifecycle.simulator.client import SimulatorClient
from tests.support.real_unit import (
    UNIT,
    SimulatorProcess,
    dropin,
    install_unit,
    journal,
    show,
    uninstall_unit,
    user_python,
)
from tests.support.shared_session import shared_user_session
from tests.support.user_session import VENV_BIN, UserSession

HERE = Path(__file__).resolve().parent
# Re-exported for the tests here.
__all__ = ["UNIT", "Stage", "at", "show", "user_python", "wait_for"]
SIM_VMS = 4
BOOT_SECONDS = 2.0
OPERATION_SECONDS = 1.0
HOOK_TYPES = ("on_failure", "on_restart", "on_healthy", "on_start", "on_stop")
T = TypeVar("T")

HOOK_SCRIPT = """#!/bin/sh
# One line per hook run: event, VM, then the context the daemon passed.
printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$EVENT_TYPE" "$VM_NAME" "$FAILURE_COUNT" \\
    "$RESTART_RESULT" "$REASON" >> "{log}"
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.systemd)


@pytest.fixture(scope="package")
def session() -> Iterator[UserSession]:
    """The user session, up while this package's tests run (it holds a machine-wide
    lock: other runs wait for it, so it is not kept through the rest of the run)."""
    yield from shared_user_session()


@dataclass(frozen=True)
class HookRun:
    event: str
    vm: str
    failure_count: str
    restart_result: str
    reason: str


def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             explain: Callable[[], object] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(0.25)


def at(entry: dict[str, Any]) -> int:
    """When a journal entry was logged, in microseconds since the epoch."""
    return int(entry["__REALTIME_TIMESTAMP"])


class Stage:
    """The session, the simulator, the installed unit, and per-test reset and observation."""

    def __init__(self, session: UserSession, sim: SimulatorProcess) -> None:
        self.session = session
        self.simproc = sim
        self.sim: SimulatorClient = sim.client()
        self.vms: list[str] = sorted(sim.info["vms"])
        self.config_path = session.home / ".azlin" / "lifecycle-config.toml"
        self.state_dir = session.home / ".local" / "state" / "azlin-lifecycle"
        self.hook = session.home / "e2e-hook"
        self.hook_log = self.state_dir / "hooks.log"
        self.since = 0.0
        self.ops_before = 0

    # ------------------------------------------------------------------ set-up
    def install(self) -> None:
        self.session.run_as_user(["sh", "-c", f"cat > {self.hook} && chmod 0755 {self.hook}"],
                                 input=HOOK_SCRIPT.format(log=self.hook_log), check=True)
        install_unit(self.session)
        # The stand-in `az` first on PATH: the one change to the unit `install` writes.
        dropin(self.session, f"[Service]\nEnvironment=PATH={self.simproc.bin_dir}:"
                             "/usr/bin:/bin\n")

    def reset(self, vms: list[str] | None = None, *, hooks: bool = True,
              vm_settings: dict[str, Any] | None = None, **sections: dict[str, Any]) -> None:
        """Stopped daemon, healthy fleet, empty state, and a config for ``vms`` (default
        all) with 10 s checks, a 3 s SSH timeout, threshold 1, a 5 s grace period and
        the recording hook on every event; ``sections`` override [daemon], [healing] ..."""
        self.session.systemctl("stop", UNIT, check=False)
        # The unit's start limit (5 in 300 s) counts the tests' own starts too.
        self.session.systemctl("reset-failed", UNIT, check=False)
        for vm in self.vms:
            self.sim.clear_operation_faults(vm)
            self.sim.set_ssh_mode(vm, "up")
            self.sim.set_guest(vm)  # the VM agent follows the guest again
            self.sim.set_power_state(vm, "running")
        # Empty the state directory, not remove it: ReadWritePaths= needs it to exist.
        self.session.run_as_user(["find", str(self.state_dir), "-mindepth", "1", "-delete"],
                                 check=True)
        extra: dict[str, Any] = {
            "daemon": {"ssh_timeout_seconds": 3.0},
            "healing": {"grace_period_seconds": 5},
            "vms": {vm: {"ssh_failure_threshold": 1, **(vm_settings or {})}
                    for vm in (vms or self.vms)},
        }
        for name, values in sections.items():
            extra[name] = {**extra.get(name, {}), **values}
        self.simproc.write_config(
            self.config_path, vms, restart_policy="on-failure", check_interval_seconds=10,
            hooks={h: str(self.hook) for h in HOOK_TYPES} if hooks else None,
            extra_toml=extra)
        self.since = time.time()
        self.ops_before = len(self.sim.operations())

    # ------------------------------------------------------------------ acting
    def start(self) -> int:
        """``systemctl --user start`` (returns after READY=1); the daemon's PID."""
        self.session.systemctl("start", UNIT)
        return int(show(self.session, "MainPID")["MainPID"])

    def azlin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``azlin lifecycle ARGS`` as the user, in a login-like environment."""
        result = self.session.run_as_user([str(VENV_BIN / "azlin"), "lifecycle", *args])
        if check and result.returncode != 0:
            raise AssertionError(f"azlin lifecycle {' '.join(args)}: exit {result.returncode}"
                                 f"\n{result.stdout}\n{result.stderr}")
        return result

    # ------------------------------------------------------------------ observing
    def entries(self) -> list[dict[str, Any]]:
        """This test's journal entries of the unit (the daemon's and the manager's)."""
        since_us = int(self.since * 1e6)
        return [e for e in journal(self.session, f"--since=@{int(self.since) - 1}")
                if int(e["__REALTIME_TIMESTAMP"]) >= since_us]

    def events(self, event: str, vm: str | None = None, pid: int | None = None,
               after: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Entries with EVENT=``event`` (of ``vm``, of process ``pid``, logged after the
        entry ``after``), oldest first."""
        return [e for e in self.entries() if e.get("EVENT") == event
                and (vm is None or e.get("VM_NAME") == vm)
                and (pid is None or int(e["_PID"]) == pid)
                and (after is None or at(e) > at(after))]

    def wait_events(self, event: str, vm: str | None = None, pid: int | None = None,
                    after: dict[str, Any] | None = None, count: int = 1,
                    timeout: float = 30) -> list[dict[str, Any]]:
        """At least ``count`` matching entries, waiting up to ``timeout`` s for them."""
        def enough() -> list[dict[str, Any]] | None:
            found = self.events(event, vm, pid, after)
            return found if len(found) >= count else None

        return wait_for(enough, timeout, f"{count} x {event}" + (f" of {vm}" if vm else "")
                        + " in the journal", self.tail)

    def wait_event(self, event: str, vm: str | None = None, pid: int | None = None,
                   after: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """The first matching entry, waiting up to ``timeout`` s for it."""
        return self.wait_events(event, vm, pid, after, 1, timeout)[0]

    def tail(self, n: int = 25) -> str:
        return "\n".join(f"{e.get('EVENT', '-'):>18} {e.get('MESSAGE', '')}"
                         for e in self.entries()[-n:])

    def hook_runs(self, event: str | None = None, vm: str | None = None) -> list[HookRun]:
        if not self.hook_log.exists():
            return []
        runs = [HookRun(*line.split("\t", 4)) for line in self.hook_log.read_text().splitlines()]
        return [r for r in runs if (event is None or r.event == event)
                and (vm is None or r.vm == vm)]

    def operations(self, vm: str | None = None) -> list[dict[str, Any]]:
        """The Azure operations the simulator saw during this test."""
        return [op for op in self.sim.operations()[self.ops_before:]
                if vm is None or op["vm"] == vm]


@pytest.fixture(scope="package")
def stage(session: UserSession) -> Iterator[Stage]:
    sim = SimulatorProcess(session, name="sim-e2e", vms=SIM_VMS, boot_seconds=BOOT_SECONDS,
                           operation_seconds=OPERATION_SECONDS).start()
    try:
        staged = Stage(session, sim)
        staged.install()
        yield staged
    finally:
        session.systemctl("stop", UNIT, check=False)
        uninstall_unit(session)
        sim.stop()
        session.run_as_user(["rm", "-rf", str(session.home / "e2e-hook"), str(sim.dir)])


@pytest.fixture
def e2e(stage: Stage) -> Iterator[Stage]:
    """The stage, reset by the test itself (it picks its config); stopped afterwards."""
    try:
        yield stage
    finally:
        stage.session.systemctl("stop", UNIT, check=False)
