"""What keeps the daemon's idle memory down: trimming the heap, no needless imports."""

from __future__ import annotations

import subprocess
import sys

from azlin_lifecycle.adapters.libc import release_free_memory

SCRIPT = """
import sys
from azlin_lifecycle.adapters.libc import release_free_memory
from azlin_lifecycle.wiring import load_adapter_libraries

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

load_adapter_libraries()
import paramiko
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and (
    m.split(".")[0] in ("invoke",) or m.startswith("azure.mgmt.compute")))
assert paramiko.SSHClient and not loaded, loaded
garbage = [bytes(2000) for _ in range(40000)]  # ~80 MB in malloc'd blocks
pin = bytes(2000)  # above them: free() alone cannot shrink the heap past it
before = rss_kb()
del garbage
if sys.argv[1] == "trim":
    release_free_memory()
print(before - rss_kb())
"""


def test_heap_trim_runs_on_this_c_library() -> None:
    assert release_free_memory() is True  # glibc (Debian): the daemon's target platform


def _freed_kb(trim: bool) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, "trim" if trim else "no"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_adapter_libraries_load_without_invoke_and_trimming_returns_freed_memory() -> None:
    assert _freed_kb(trim=False) < 20_000  # free() alone keeps the pages
    assert _freed_kb(trim=True) > 60_000  # kB given back to the system
