"""What notification-URL hooks (apprise) cost, and that without one they cost nothing.

Each case runs in a fresh interpreter that first loads what the daemon loads (the adapter
libraries, the daemon's modules, a config with a script hook and an https:// webhook),
then, step by step: reads a config that has an ``ntfy://`` hook (validation imports apprise
and asks it for its schemes, which loads its plugins), and sends one message through the
HookExecutor to a stand-in of ntfy on 127.0.0.1 (tests/support/notify_services.py).
Printed: the time of each step and the process's RSS after it, the median of --runs runs.

Usage: .venv/bin/python bench/notify_cost.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

steps = []
def step(name, started):
    steps.append({{"step": name, "seconds": time.perf_counter() - started, "rss_mb": rss_mb(),
                  "apprise_loaded": "apprise" in sys.modules}})

t = time.perf_counter()
from azlin_lifecycle.wiring import build_hooks, load_adapter_libraries
load_adapter_libraries()
import azlin_lifecycle.daemon
from azlin_lifecycle.config import load_file
plain = load_file(Path({plain!r}))
hooks = build_hooks(plain, lambda vm: plain.vms[vm].hooks)
step("daemon modules + a config without a notification URL", t)
if sys.argv[1] == "with":
    t = time.perf_counter()
    import apprise
    step("+ import apprise", t)
    t = time.perf_counter()
    notified = load_file(Path({notified!r}))
    step("+ validate an ntfy:// hook (apprise's plugins load)", t)
    from tests.support.notify_services import NtfyApi, serving
    with serving(NtfyApi(), None) as ntfy:
        url = ntfy.url("bench")
        hooks = build_hooks(notified, lambda vm: {{"on_failure": url}})
        t = time.perf_counter()
        result = hooks.execute_hook("on_failure", "web-1", {{"reason": "bench"}})
        step("+ first message sent to the ntfy stand-in", t)
        assert result.success and ntfy.received, result
        t = time.perf_counter()
        for _ in range(20):
            hooks.execute_hook("on_failure", "web-1", {{"reason": "bench"}})
        steps.append({{"step": "  each further message (mean of 20)",
                      "seconds": (time.perf_counter() - t) / 20, "rss_mb": rss_mb(),
                      "apprise_loaded": True}})
print(json.dumps(steps))
"""

PLAIN = """
[vms.web-1]
enabled = true
check_interval_seconds = 60
restart_policy = "never"
ssh_failure_threshold = 3

[vms.web-1.hooks]
on_failure = "/usr/local/bin/page-me"
on_healthy = "https://hooks.example.com/services/T0/B0/secret"
"""
NOTIFIED = PLAIN + 'on_restart = "ntfy://127.0.0.1:9/bench"\n'


def run(case: str, worker: str) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-c", worker, case], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    if done.returncode != 0:
        raise SystemExit(f"worker failed:\n{done.stderr}")
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        plain, notified = Path(tmp) / "plain.toml", Path(tmp) / "notified.toml"
        plain.write_text(PLAIN)
        notified.write_text(NOTIFIED)
        worker = WORKER.format(repo=str(REPO), plain=str(plain), notified=str(notified))
        results = {case: [run(case, worker) for _ in range(runs)] for case in ("without", "with")}
    print(f"notification hooks' cost: median of {runs} fresh interpreters each "
          f"(python {sys.version.split()[0]})\n")
    print(f"{'case':8} {'step':55} {'time':>9} {'RSS':>9} {'apprise loaded':>15}")
    for case, rows_by_run in results.items():
        for i, row in enumerate(rows_by_run[0]):
            seconds = statistics.median(float(r[i]["seconds"]) for r in rows_by_run)
            rss = statistics.median(float(r[i]["rss_mb"]) for r in rows_by_run)
            loaded = "yes" if row["apprise_loaded"] else "no"
            print(f"{case:8} {row['step']!s:55} {seconds * 1000:7.1f}ms {rss:7.1f}MB "
                  f"{loaded:>15}")
    base = statistics.median(float(r[0]["rss_mb"]) for r in results["without"])
    top = statistics.median(float(r[-1]["rss_mb"]) for r in results["with"])
    print(f"\nidle daemon without a notification URL: {base:.1f} MB, apprise not imported;"
          f" with one, after sending: {top:.1f} MB (+{top - base:.1f} MB)")


if __name__ == "__main__":
    main()
