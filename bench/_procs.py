"""Process helpers for the fleet benchmark: /proc figures, a simulator child, clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from azlin_lifecycle.simulator import SimulatorClient

TICK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_mb(pid: int, key: str) -> float:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM ``proc`` (this process's own child), SIGKILL it if it does not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def simulator(directory: Path, vms: int, *, boot_seconds: float = 5.0,
              operation_seconds: float = 1.0, command_seconds: float = 0.0,
              timeout: float = 120.0, private: bool = False,
              wrap: Callable[[list[str]], list[str]] | None = None,
              env: dict[str, str] | None = None,
              ) -> Iterator[tuple[SimulatorClient, int, float]]:
    """A simulated fleet in its own process: (client, pid, seconds until it was ready);
    ``private``: VMs without a public IP, behind the stand-in Azure Bastion; ``wrap``
    the command (to run it as another user, say) and its ``env``."""
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "simulator.log").open("wb")
    began = time.monotonic()
    argv = [sys.executable, "-m", "azlin_lifecycle.simulator", "--vms", str(vms),
            "--dir", str(directory), "--boot-seconds", str(boot_seconds),
            "--operation-seconds", str(operation_seconds),
            "--command-seconds", str(command_seconds)] + ([] if private else ["--public"])
    proc = subprocess.Popen(argv if wrap is None else wrap(argv), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)
    try:
        info = directory / "simulator.json"
        while not info.exists():
            if proc.poll() is not None:
                raise SystemExit(f"the simulator exited early; see {directory}/simulator.log")
            if time.monotonic() - began > timeout:
                raise SystemExit(f"the simulator was not ready in {timeout:.0f} s")
            time.sleep(0.05)
        ready = time.monotonic() - began
        yield SimulatorClient.from_dir(directory), proc.pid, ready
    finally:
        stop(proc)
        log.close()
