"""The daemon's memory over many sweeps: does it settle, or grow without bound?

``.venv/bin/python bench/soak.py [VMS] [SWEEPS]`` (default 100 VMs, 18 sweeps, ~3 min):
runs ``python -m azlin_lifecycle daemon run`` against a simulated fleet with the minimum
10 s interval and prints, after each sweep, the daemon's RSS and CPU time so far.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_case import INTERVAL, running_daemon, wait_for
from _procs import cpu_seconds, simulator, status_mb

from azlin_lifecycle.metrics_wire import CPU_SAMPLE_SECONDS


def main() -> None:
    vms = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    sweeps = int(sys.argv[2]) if len(sys.argv) > 2 else 18
    with tempfile.TemporaryDirectory(prefix="azlin-soak-") as tmp_text:
        tmp = Path(tmp_text)
        with simulator(tmp / "sim", vms, command_seconds=CPU_SAMPLE_SECONDS) as (sim, _, _):
            (tmp / "config").mkdir()
            sim.write_config(tmp / "config" / "lifecycle-config.toml",
                             check_interval_seconds=INTERVAL)
            with running_daemon(tmp, sim) as (proc, watcher):
                print(f"{'sweep':>5}  {'RSS MB':>7}  {'CPU s':>6}   ({vms} VMs, every "
                      f"{INTERVAL} s)")
                for k in range(1, sweeps + 1):
                    def done(k: int = k) -> bool:
                        if proc.poll() is not None:
                            raise RuntimeError(f"the daemon exited; see {tmp}/daemon.log")
                        watcher.poll()
                        return watcher.sweeps_done(sim.vm_names) >= k

                    wait_for(done, INTERVAL + 120, f"sweep {k}")
                    time.sleep(1)  # between sweeps: idle
                    print(f"{k:>5}  {status_mb(proc.pid, 'VmRSS'):>7.1f}  "
                          f"{cpu_seconds(proc.pid):>6.1f}", flush=True)


if __name__ == "__main__":
    main()
