"""execute_hook_async: the bounded pool, the bounded backlog, and shutdown."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from pathlib import Path

import pytest

from azlin_lifecycle.config import HookSettings
from azlin_lifecycle.hooks import HookExecutor
from tests.support.processes import alive
from tests.support.waiting import wait_for


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path



def hook_threads() -> int:
    return sum(t.name.startswith("hook") for t in threading.enumerate())


def test_fifty_events_never_run_more_than_two_at_once(tmp_path: Path) -> None:
    running = tmp_path / "running"
    running.mkdir()
    log = tmp_path / "concurrency.log"
    # Each run marks itself running, lets others overlap, then records how many it sees.
    hook = script(tmp_path, "count", f"""\
touch {running}/$$
sleep 0.05
ls {running} | wc -l >> {log}
rm {running}/$$
""")
    executor = HookExecutor(lambda vm: {"on_failure": str(hook)}, HookSettings(max_concurrent=2))
    threads_before = hook_threads()
    started = time.monotonic()
    futures = [executor.execute_hook_async("on_failure", f"vm-{i}", {"n": i}) for i in range(50)]
    submitted = time.monotonic() - started
    results = [f.result(timeout=30) for f in futures]
    assert submitted < 0.5, f"submitting 50 events took {submitted:.2f}s"
    assert all(r.success for r in results)
    seen = [int(line) for line in log.read_text().split()]
    assert len(seen) == 50
    assert max(seen) == 2, f"observed concurrency {max(seen)}"
    assert hook_threads() - threads_before <= 2
    assert executor.shutdown(5)


def test_backlog_overflow_drops_with_a_warning(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    gate = tmp_path / "gate"
    count = tmp_path / "count"
    hook = script(tmp_path, "gated",
                  f"while [ ! -e {gate} ]; do sleep 0.02; done\necho x >> {count}\n")
    executor = HookExecutor(lambda vm: {"on_failure": str(hook)},
                            HookSettings(max_concurrent=1), max_backlog=3)
    first = executor.execute_hook_async("on_failure", "vm-0", {})
    wait_for(lambda: executor.pending == 0)  # the first one is running, holding the worker
    queued = [executor.execute_hook_async("on_failure", f"vm-{i}", {}) for i in range(1, 4)]
    assert executor.pending == 3
    with caplog.at_level(logging.WARNING, logger="azlin_lifecycle.hooks"):
        dropped = executor.execute_hook_async("on_failure", "vm-4", {})
    assert dropped.done()
    result = dropped.result()
    assert not result.success and result.vm_name == "vm-4"
    assert "dropped: 3 hook events already waiting (backlog limit 3)" in (result.error or "")
    assert any("dropped" in r.getMessage() for r in caplog.records)
    gate.touch()
    assert all(f.result(timeout=10).success for f in [first, *queued])
    assert len(count.read_text().split()) == 4
    assert executor.shutdown(5)


def test_shutdown_terminates_running_and_cancels_waiting(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hook = script(tmp_path, "long", f"sleep 30 &\necho $$ $! > {pidfile}\nwait\n")
    executor = HookExecutor(lambda vm: {"on_stop": str(hook)},
                            HookSettings(max_concurrent=1, kill_grace_seconds=1))
    running = executor.execute_hook_async("on_stop", "vm-a", {})
    waiting = [executor.execute_hook_async("on_stop", "vm-b", {}) for _ in range(5)]
    wait_for(lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2)
    started = time.monotonic()
    assert executor.shutdown(timeout=5)
    assert time.monotonic() - started < 3
    result = running.result(timeout=1)
    assert not result.success and not result.timed_out
    assert "shutting down" in (result.error or "")
    assert all(f.cancelled() for f in waiting)
    assert executor.pending == 0
    for pid in map(int, pidfile.read_text().split()):
        assert not alive(pid)
    late = executor.execute_hook_async("on_stop", "vm-c", {}).result(timeout=1)
    assert not late.success and "shut down" in (late.error or "")
    sync = executor.execute_hook("on_stop", "vm-c", {})
    assert not sync.success and "shut down" in (sync.error or "")


def test_a_future_is_returned_at_once_even_for_a_slow_hook(tmp_path: Path) -> None:
    hook = script(tmp_path, "slow", "sleep 0.5\n")
    executor = HookExecutor(lambda vm: {"on_restart": str(hook)})
    started = time.monotonic()
    future = executor.execute_hook_async("on_restart", "vm", {"restart_result": "success"})
    assert time.monotonic() - started < 0.1
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5).success
    assert executor.shutdown(5)
