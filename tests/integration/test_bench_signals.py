"""bench/signals.py still runs and prints its table (its figures are in the README): the
decision with Resource Health costs one ARM read more than without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_signals_benchmark_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "signals.py"), "-n", "2"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {(parts := line.rsplit(maxsplit=3))[0].strip(): parts[1:]
            for line in result.stdout.splitlines()[1:]}
    before = rows["decision before a restart, as before (instance view)"]
    asking = rows["decision with Resource Health (instance view + availability)"]
    assert float(asking[2]) - float(before[2]) == 1  # ARM requests per decision
    captured = rows["post-mortem: retrieveBootDiagnosticsData + 1 MB serial log + shot"]
    assert float(captured[0]) > 0 and float(captured[2]) == 1
