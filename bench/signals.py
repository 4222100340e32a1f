"""What asking Azure before a repair costs: the decision with and without Resource Health
(its ARM reads and latency), and the post-mortem capture that precedes a guest repair.

The stand-in Azure runs in its own process (bench/_procs.simulator); the client is the
real SelfHealer with the real adapters (ArmCompute, ArmSignals) over HTTPS on 127.0.0.1.
Each row: the median and 90th percentile of N warm runs (the first run is not counted:
it pays for the token and the connection), and the ARM requests one run makes.
Usage: .venv/bin/python bench/signals.py [-n N]   (default 30)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _procs import simulator  # noqa: E402

from azlin_lifecycle.healing import SelfHealer  # noqa: E402
from azlin_lifecycle.health import failure_of  # noqa: E402
from azlin_lifecycle.manager import LifecycleManager  # noqa: E402
from azlin_lifecycle.simulator import SimulatorClient  # noqa: E402
from azlin_lifecycle.state import StateStore  # noqa: E402
from azlin_lifecycle.targets import resolve_target  # noqa: E402
from azlin_lifecycle.wiring import build_signals, monitor_for  # noqa: E402
from tests.support.fakes import RecordingHooks  # noqa: E402

VM = "vm-001"


def measure(fn: Callable[[], object], runs: int,
            requests: Callable[[], int]) -> tuple[float, float, float]:
    """(median ms, p90 ms, ARM requests per run) of ``runs`` warm calls of ``fn``."""
    fn()  # warm: the token, a connection
    before = requests()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    per_run = (requests() - before) / runs
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1], per_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="azlin-bench-signals-") as tmp:
        base = Path(tmp)
        os.environ["XDG_STATE_HOME"] = str(base / "state")
        with simulator(base / "sim", 3, boot_seconds=1.0, operation_seconds=0.5) as (
                client, _pid, _ready):
            os.environ.update(client.env())
            rows = bench(client, base, runs)
    print(f"{'what':<64} {'median ms':>10} {'p90 ms':>8} {'ARM requests':>13}")
    for what, (median, p90, arm) in rows:
        print(f"{what:<64} {median:>10.1f} {p90:>8.1f} {arm:>13g}")


def bench(client: SimulatorClient, base: Path,
          runs: int) -> list[tuple[str, tuple[float, float, float]]]:
    path = base / "lifecycle-config.toml"
    client.write_config(path, restart_policy="always",
                        extra_toml={"daemon": {"ssh_timeout_seconds": 2.0}})
    config = LifecycleManager(path).load()
    store = StateStore(base / "state.db")
    monitor = monitor_for(config, store)
    signals = build_signals(monitor.compute)
    assert signals is not None
    plain = SelfHealer(config, compute=monitor.compute, store=store, hooks=RecordingHooks())
    asking = SelfHealer(config, compute=monitor.compute, store=store, hooks=RecordingHooks(),
                        signals=signals)
    client.set_ssh_mode(VM, "refused")
    client.set_guest(VM, "not_ready")
    failure = failure_of(monitor.check_vm_health(VM))
    target = resolve_target(config, VM)

    def arm_requests() -> int:
        return int(client.status()["arm_requests"])

    def capture() -> None:
        directory = Path(tempfile.mkdtemp(dir=base))
        signals.capture(target, directory, 30.0)

    rows = [
        ("decision before a restart, as before (instance view)",
         measure(lambda: plain.decide(VM, failure), runs, arm_requests)),
        ("decision with Resource Health (instance view + availability)",
         measure(lambda: asking.decide(VM, failure), runs, arm_requests)),
        ("post-mortem: retrieveBootDiagnosticsData + 1 MB serial log + shot",
         measure(capture, runs, arm_requests)),
    ]
    client.set_boot_diagnostics(VM, "off")
    rows.append(("post-mortem, boot diagnostics off (409: no capture)",
                 measure(capture, runs, arm_requests)))
    client.set_boot_diagnostics(VM, "on")
    with_capture = measure(lambda: (asking.decide(VM, failure), capture()), runs, arm_requests)
    rows.append(("decision -> restart POST, with the capture", with_capture))
    rows.append(("decision -> restart POST, capture off (capture_serial_log = false)",
                 rows[1][1]))
    monitor.close()
    return rows


if __name__ == "__main__":
    main()
