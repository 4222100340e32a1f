"""`azlin-lifecycle daemon run` as a real process: prompt, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from azlin_lifecycle.state import StateStore


def test_sigterm_stops_at_once_even_with_a_check_stuck_on_a_hung_vm(tmp_path: Path) -> None:
    with SimulatedFleet(tmp_path / "sim", 2) as fleet:
        fleet.set_ssh_mode("vm-002", SshMode.HUNG)
        config_dir = tmp_path / "azlin"
        fleet.write_config(config_dir / "lifecycle-config.toml", restart_policy="never",
                           extra_toml={"daemon": {"ssh_timeout_seconds": 60.0}})
        env = {**fleet.env(), "AZLIN_CONFIG_DIR": str(config_dir),
               "XDG_STATE_HOME": str(tmp_path / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "azlin_lifecycle", "daemon", "run"],
                                env=env, stderr=subprocess.PIPE, text=True)
        store = StateStore(tmp_path / "state" / "azlin-lifecycle" / "state.db")
        try:
            deadline = time.monotonic() + 60
            while "vm-001" not in store.latest() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "vm-001" in store.latest()  # vm-002's check is now stuck for up to 60 s
            assert "vm-002" not in store.latest()
            began = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - began
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()
    assert proc.returncode == 0, err
    assert took < 10, f"stopping took {took:.1f}s"
    assert "daemon_stopping" in err
