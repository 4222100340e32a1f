"""The config file under real processes: concurrent writers and a writer killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from azlin_lifecycle import LifecycleManager

BIN = Path(sys.executable).parent


def test_twenty_concurrent_enables_all_land(tmp_path: Path) -> None:
    env = {**os.environ, "AZLIN_CONFIG_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen([BIN / "azlin-lifecycle", "enable", f"vm-{i:02d}", "--interval", "30"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(20)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    manager = LifecycleManager(tmp_path / "lifecycle-config.toml")
    assert manager.list_monitored_vms() == [f"vm-{i:02d}" for i in range(20)]


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from azlin_lifecycle import LifecycleManager
real_fsync = os.fsync
def stall(fd):
    real_fsync(fd)
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stall
LifecycleManager(Path(sys.argv[1])).enable_monitoring("intruder")
"""


def test_writer_killed_half_way_leaves_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "lifecycle-config.toml"
    manager = LifecycleManager(path)
    manager.enable_monitoring("original")
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"  # the new text is in a temp file now
    temp_files = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert temp_files and b"intruder" in temp_files[0].read_bytes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert path.read_bytes() == before
    assert manager.list_monitored_vms() == ["original"]
    # The lock died with the writer: the next change goes through at once.
    start = time.monotonic()
    manager.enable_monitoring("next")
    assert time.monotonic() - start < 5
    assert manager.list_monitored_vms() == ["next", "original"]
