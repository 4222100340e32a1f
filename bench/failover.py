"""HA failover benchmark: two monitors' elections (the daemon's own Leadership, lease blob
and shared ledger, each in its own process) on one Azurite on 127.0.0.1, lease 15 s.

- SIGKILL of the leader, at a random point of its renewal cycle -> the standby leads
  (3 runs): bound lease + one standby poll.
- the leader stops cleanly (releases its lease) -> the standby leads.
- the leader is cut off from storage (its TCP link holds every byte) -> it stops
  repairing; the other leads only after that, once the lease has expired.
Prints a table; ``rows()`` gives it to bench/fleet.py.
Usage: .venv/bin/python bench/failover.py [--runs N]   (N SIGKILL runs, default 3)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from azlin_lifecycle.simulator.azurite import Azurite  # noqa: E402
from tests.support.tcp_forward import TcpForward  # noqa: E402

LEASE = 15
POLL = max(1.0, LEASE / 5)  # Leadership's standby poll


class Elector:
    def __init__(self, url: str, container: str, name: str) -> None:
        self.name = name
        self.events: list[tuple[str, float]] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "_elector.py"), url, container, name,
             str(LEASE)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            role, when = line.split()
            self.events.append((role, float(when)))

    def became(self, role: str, after: float = 0.0, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r, when in self.events:
                if r == role and when >= after:
                    return when
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not become {role} within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(20)


def pair(url_a: str, url_b: str) -> tuple[Elector, Elector]:
    container = "bench" + uuid.uuid4().hex[:10]
    a = Elector(url_a, container, "A")
    a.became("leader")
    b = Elector(url_b, container, "B")
    b.became("standby")
    return a, b


def measure(storage: Azurite, runs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kills = []
    phases = random.Random(12)
    for _ in range(runs):
        a, b = pair(storage.account_url, storage.account_url)
        # A renewed at least once; killed anywhere in its renewal cycle (just after a
        # renewal is the worst case: a whole lease to wait out).
        time.sleep(LEASE / 3 + phases.uniform(0.1, LEASE / 3 - 0.1))
        killed = time.time()
        a.stop(signal.SIGKILL)
        kills.append(b.became("leader", killed) - killed)
        b.stop()
    bound = LEASE + POLL
    rows.append({"metric": f"failover after SIGKILL of the leader (max of {runs})",
                 "value": round(max(kills), 1), "unit": "s", "target": f"<= {bound:g} s",
                 "ok": max(kills) <= bound,
                 "note": "runs: " + ", ".join(f"{k:.1f}" for k in sorted(kills))})
    a, b = pair(storage.account_url, storage.account_url)
    stopped = time.time()
    a.stop(signal.SIGTERM)
    took = b.became("leader", stopped) - stopped
    b.stop()
    rows.append({"metric": "failover after a clean stop (lease released)",
                 "value": round(took, 1), "unit": "s", "target": f"<= {POLL:g} s",
                 "ok": took <= POLL + 0.5, "note": ""})
    with TcpForward(("127.0.0.1", storage.port)) as link:
        a, b = pair(f"http://127.0.0.1:{link.port}/devstoreaccount1", storage.account_url)
        link.pause()
        cut = time.time()
        down = a.became("standby", cut) - cut
        up = b.became("leader", cut) - cut
        a.stop()
        b.stop()
    rows.append({"metric": "leader cut off from storage: it stops repairing after",
                 "value": round(down, 1), "unit": "s",
                 "target": f"< {LEASE} s and before the other leads",
                 "ok": down < LEASE and down < up, "note": f"the other leads after {up:.1f} s"})
    return rows


def rows(runs: int = 3) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite.log") as storage:
        return measure(storage, runs)


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    table = rows(runs)
    print(f"\nazlin-lifecycle HA failover - lease {LEASE} s, renewed every {LEASE / 3:g} s, "
          f"standby polls every {POLL:g} s; Azurite on 127.0.0.1")
    width = max(len(r["metric"]) for r in table)
    for r in table:
        print(f"{r['metric']:<{width}}  {r['value']:>6} {r['unit']}  {r['target']:<36} "
              f"{'ok' if r['ok'] else 'FAIL'}  {r['note']}")


if __name__ == "__main__":
    main()
