"""A simulated fleet that this test's environment points at (the stand-in ``az`` first on
PATH, its CA, the simulator's endpoints), restored when the test ends."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet, SshMode


@contextlib.contextmanager
def fleet_in_env(monkeypatch: pytest.MonkeyPatch, workdir: Path, vm_count: int,
                 **options: Any) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(workdir, vm_count, **options) as fleet:
        for key, value in fleet.env().items():
            monkeypatch.setenv(key, value)
        yield fleet


def reset_vms(fleet: SimulatedFleet) -> None:
    """Every VM of a fleet shared by a module's tests back to plain health: no operation
    faults, SSH up, the agent following the guest, Azure's platform signals cleared, and
    running."""
    for vm in fleet.vm_names:
        fleet.reset_platform(vm)
        fleet.clear_operation_faults(vm)
        fleet.set_ssh_mode(vm, SshMode.UP)
        fleet.set_guest(vm)
        if fleet.power_state(vm) != "running":
            fleet.set_power_state(vm, "running")


SIMULATE = [sys.executable, "-c",
            "from azlin_lifecycle.cli.simulate_cmds import simulate_group; simulate_group()"]


@contextlib.contextmanager
def simulate_run(directory: Path, *options: str) -> Iterator[list[str]]:
    """``simulate run --dir DIRECTORY OPTIONS`` in a process of its own while the block runs
    (ready once its simulator.json is written, within 30 s); SIGTERM after, and it must exit
    0. The list it yields holds the process's standard output once it has stopped."""
    output: list[str] = []
    proc = subprocess.Popen([*SIMULATE, "run", "--dir", str(directory), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (directory / "simulator.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        yield output
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        output.append(out)
        assert proc.returncode == 0, err
