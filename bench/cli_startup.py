"""How fast the CLI answers: `--help` and the config commands (target: < 300 ms).

Runs each command N times as a real subprocess of the installed console script and
prints a table of wall times. Usage: .venv/bin/python bench/cli_startup.py [-n 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 300.0
COMMANDS = [
    ["--help"],
    ["list"],
    ["show", "bench-vm"],
    ["config", "path"],
    ["config", "validate"],
    ["enable", "bench-vm", "--interval", "30"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="runs per command")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "azlin-lifecycle"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AZLIN_CONFIG_DIR": tmp, "XDG_STATE_HOME": tmp}
        subprocess.run([script, "enable", "bench-vm"], env=env, check=True,
                       capture_output=True)
        rows = []
        for argv in COMMANDS:
            times = []
            for _ in range(args.n):
                start = time.perf_counter()
                subprocess.run([script, *argv], env=env, check=True, capture_output=True)
                times.append((time.perf_counter() - start) * 1000)
            rows.append((" ".join(argv), statistics.median(times), max(times)))
    print(f"azlin-lifecycle CLI start-up, {args.n} runs each (target: median < {TARGET_MS:.0f} ms)")
    print(f"{'command':<36} {'median ms':>10} {'max ms':>8}  verdict")
    for name, median, worst in rows:
        verdict = "ok" if median < TARGET_MS else "SLOW"
        print(f"{name:<36} {median:>10.0f} {worst:>8.0f}  {verdict}")


if __name__ == "__main__":
    main()
