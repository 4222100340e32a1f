"""adapters.process.run against real processes: timeouts, leftovers, floods, failures."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from azlin_lifecycle.adapters.process import run
from tests.support.processes import alive


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def test_output_exit_status_and_argv(tmp_path: Path) -> None:
    hook = script(tmp_path, "h", 'echo "out $# $1"; echo err >&2; exit 3\n')
    result = run([str(hook), "a b"], env={"PATH": "/usr/bin:/bin"}, timeout=10)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out 1 a b\n", "err\n")
    assert result.explanation == "exited with status 3"
    assert not result.timed_out and not result.truncated and not result.ok
    assert result.argv == (str(hook), "a b")


def test_missing_and_not_executable_are_results(tmp_path: Path) -> None:
    missing = run([str(tmp_path / "nope")], env=None, timeout=5)
    assert missing.exit_code == 127
    assert missing.explanation.startswith("not found or not executable (exit 127)")
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\nexit 0\n")
    plain.chmod(0o644)
    denied = run([str(plain)], env=None, timeout=5)
    assert denied.exit_code == 126 and "Permission denied" in denied.explanation
    # A shell reporting exit 127 itself reads the same.
    shell = run(["/bin/sh", "-c", "exec /nonexistent/x"], env=None, timeout=5)
    assert shell.exit_code == 127
    assert shell.explanation == "not found or not executable (exit 127)"


def test_killed_by_signal_is_explained() -> None:
    result = run(["/bin/sh", "-c", "kill -9 $$"], env=None, timeout=5)
    assert result.exit_code == -9
    assert result.explanation == "killed by signal 9 (SIGKILL)"


def test_timeout_terminates_a_cooperative_hook(tmp_path: Path) -> None:
    hook = script(tmp_path, "slow", "exec sleep 30\n")
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=0.3, kill_grace=5)
    assert time.monotonic() - started < 2.5
    assert result.timed_out and result.exit_code == -15
    assert result.explanation == "timed out after 0.3s and was terminated"


def test_hook_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    hook = script(tmp_path, "stubborn", "trap '' TERM\necho started\nsleep 30\necho never\n")
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=0.3, kill_grace=0.4)
    took = time.monotonic() - started
    assert result.timed_out and result.exit_code == -9
    assert result.stdout == "started\n"
    assert "killed (SIGKILL) after ignoring SIGTERM for 0.4s" in result.explanation
    assert 0.6 <= took < 3


def test_leftover_children_are_killed_and_not_waited_for(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    # One child ignores SIGTERM and keeps stdout open; one is a well-behaved sleeper with
    # its output redirected; the hook itself exits at once.
    hook = script(tmp_path, "forks", f"""\
(trap '' TERM; exec sleep 60) &
echo $! > {pidfile}
sleep 60 >/dev/null 2>&1 &
echo $! >> {pidfile}
echo parent done
exit 0
""")
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=20, kill_grace=5)
    took = time.monotonic() - started
    assert result.exit_code == 0 and result.stdout == "parent done\n" and not result.timed_out
    assert took < 3, f"waited {took:.1f}s on leftovers"
    children = pids(pidfile)
    assert len(children) == 2
    assert not any(alive(pid) for pid in children)


def test_leftovers_of_a_timed_out_hook_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    hook = script(tmp_path, "hang", f"(trap '' TERM; exec sleep 60) &\necho $! > {pidfile}\n"
                                    "trap '' TERM\nsleep 60\n")
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=0.3, kill_grace=0.3)
    assert time.monotonic() - started < 3
    assert result.timed_out and result.exit_code == -9
    assert not alive(pids(pidfile)[0])


def test_a_grandchild_that_left_the_group_does_not_hold_the_call(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # setsid puts the sleeper out of reach of the group signals, with stdout still open.
    hook = script(tmp_path, "escape", f"setsid sleep 60 &\necho $! > {pidfile}\necho bye\n")
    try:
        started = time.monotonic()
        result = run([str(hook)], env=None, timeout=20, kill_grace=5)
        assert time.monotonic() - started < 2
        assert result.exit_code == 0 and result.stdout == "bye\n"
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids(pidfile)[0], signal.SIGKILL)


def test_output_cap_with_a_10_mb_flood(tmp_path: Path) -> None:
    hook = script(tmp_path, "flood",
                  "head -c 10000000 /dev/zero | tr '\\0' x\nhead -c 3000000 /dev/zero >&2\n"
                  "echo tail-not-kept\n")
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=20, max_output=4096)
    assert time.monotonic() - started < 10
    assert result.exit_code == 0 and result.truncated
    assert result.stdout == "x" * 4096
    assert len(result.stderr) == 4096


def test_stop_event_terminates_like_a_shutdown(tmp_path: Path) -> None:
    hook = script(tmp_path, "long", "exec sleep 30\n")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    result = run([str(hook)], env=None, timeout=30, stop=stop)
    assert time.monotonic() - started < 3
    assert result.stopped and not result.timed_out and result.exit_code == -15
    assert "shutting down" in result.explanation


def test_environment_is_exactly_what_is_passed(tmp_path: Path) -> None:
    hook = script(tmp_path, "env", "env\n")
    result = run([str(hook)], env={"ONLY": "this", "PATH": os.defpath}, timeout=5)
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines["ONLY"] == "this"
    assert "HOME" not in lines
