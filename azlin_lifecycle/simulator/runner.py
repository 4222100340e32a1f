"""Run a fleet as a process: ``azlin lifecycle simulate run`` (until SIGTERM/SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ..fsio import atomic_write
from .client import INFO_FILE
from .fleet import SimulatedFleet


def write_info(fleet: SimulatedFleet) -> Path:
    info = {
        "pid": os.getpid(),
        "arm_endpoint": fleet.arm_endpoint,
        "ca_path": str(fleet.ca_path),
        "az_dir": str(fleet.az_dir),
        "client_key": str(fleet.client_key),
        "resource_group": fleet.resource_group,
        "subscription_id": fleet.subscription_id,
        "control_token": fleet.control_token,
        "vms": {name: fleet.ssh_port(name) for name in fleet.vm_names},
    }
    path = fleet.workdir / INFO_FILE
    atomic_write(path, json.dumps(info, indent=2).encode("utf-8"))
    return path


def serve_forever(fleet: SimulatedFleet,
                  on_ready: Callable[[SimulatedFleet, float], None] | None = None) -> None:
    """Start ``fleet``, write ``simulator.json``, and serve until SIGTERM or SIGINT."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    began = time.monotonic()
    info: Path | None = None
    try:
        fleet.start()
        info = write_info(fleet)
        if on_ready is not None:
            on_ready(fleet, time.monotonic() - began)
        known = len(fleet.vm_names)
        while not stop.wait(0.5):
            if len(fleet.vm_names) != known:  # VMs added through the control API
                known = len(fleet.vm_names)
                write_info(fleet)
    finally:
        if info is not None:
            info.unlink(missing_ok=True)
        fleet.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)
