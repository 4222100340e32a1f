"""The chaos soak (bench/chaos.py) for 2 minutes on a small fleet with a fixed seed: every
invariant holds (exit 0) and the table is printed. The daemon runs under the soak's own
supervisor (not the machine-wide user session), so this test runs on any worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 7


def test_a_two_minute_chaos_soak_keeps_every_invariant() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--minutes", "2", "--seed",
         str(SEED), "--vms", "12", "--supervisor", "foreground"], capture_output=True, text=True, timeout=400, cwd=ROOT)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    for row in ("no VM repaired twice for one incident", "no repair for a monitor-side fault",
                "no repair beyond a VM's budget", "every repair recorded",
                "every on_restart matches a repair", "config always valid TOML",
                "the daemon died only when killed"):
        line = next((x for x in out.splitlines() if x.startswith(row)), None)
        assert line is not None and line.endswith("  ok"), (row, line)
    assert "not judged (run shorter than 15 min)" in out  # never shown as a pass
    assert "SIGKILLs: " in out and "SIGKILLs: 0," not in out
    assert "RESULT: ok" in out
