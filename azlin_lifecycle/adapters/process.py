"""The one subprocess wrapper of the project: argv lists, bounded time, bounded output.

The child runs in its own session (so its own process group). On timeout, or when the
caller's ``stop`` event is set, the whole group gets SIGTERM and, after ``kill_grace``
seconds, SIGKILL. When the child itself exits, whatever it left behind in its group gets
SIGTERM, a short grace, then SIGKILL, and the call does not wait on pipes those leftovers
hold open. stdout and stderr are read concurrently; each keeps at most ``max_output``
bytes and the rest is read and discarded, so a flooding child neither blocks nor grows
memory. Failing to start (missing file, no execute permission) is a result, not an
exception.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 65536
POLL_SECONDS = 0.05
LEFTOVER_GRACE = 0.5
REAP_WAIT = 0.5
DRAIN_AFTER_KILL = 0.2


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    truncated: bool
    explanation: str
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.stopped


def explain(returncode: int | None) -> str:
    """Plain words for a return code as :class:`subprocess.Popen` reports it."""
    if returncode is None:
        return "did not finish"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return f"killed by signal {-returncode}"
        return f"killed by signal {-returncode} ({name})"
    if returncode == 127:
        return "not found or not executable (exit 127)"
    if returncode == 126:
        return "found but could not be executed (exit 126)"
    return f"exited with status {returncode}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


class _Capture:
    """Keeps the first ``limit`` bytes of one stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.discarded = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.discarded += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is alive (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg also reaches zombies that nobody has reaped yet; look closer.
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


class _Run:
    def __init__(self, proc: subprocess.Popen[bytes], max_output: int) -> None:
        self.proc = proc
        self.pgid = proc.pid
        self.selector = selectors.DefaultSelector()
        self.captures: dict[int, _Capture] = {}
        assert proc.stdout is not None and proc.stderr is not None
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            self.captures[stream.fileno()] = _Capture(max_output)
            self.selector.register(stream.fileno(), selectors.EVENT_READ)
        self.stdout = self.captures[proc.stdout.fileno()]
        self.stderr = self.captures[proc.stderr.fileno()]
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(proc.pid)
            self.selector.register(self.pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            self.pidfd = None

    def pipes_open(self) -> bool:
        return any(fd in self.captures for fd in self._registered())

    def _registered(self) -> list[int]:
        return [key.fd for key in self.selector.get_map().values()]

    def pump(self, wait: float) -> None:
        """Read whatever is ready within ``wait`` seconds."""
        if not self._registered():
            time.sleep(max(0.0, wait))
            return
        for key, _ in self.selector.select(max(0.0, wait)):
            fd = key.fd
            if fd == self.pidfd:
                self.selector.unregister(fd)
                continue
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                self.captures[fd].add(chunk)
            else:
                self.selector.unregister(fd)

    def leader_exited(self) -> bool:
        """Has the child exited? It is not reaped, so its pid keeps naming the group."""
        if self.proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def pump_until(self, end: float, done: Callable[[], bool]) -> None:
        while time.monotonic() < end and not done():
            self.pump(min(POLL_SECONDS, end - time.monotonic()))

    def close(self) -> None:
        for fd in self._registered():
            self.selector.unregister(fd)
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    timeout: float,
    kill_grace: float = 5.0,
    max_output: int = 65536,
    cwd: str | Path | None = None,
    stop: threading.Event | None = None,
) -> ProcessResult:
    """Run ``argv`` (no shell) and return what happened; never raises for the child's sake."""
    args = tuple(str(a) for a in argv)
    if not args:
        raise ValueError("run() needs a program to run")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        reason = exc.strerror or type(exc).__name__
        return ProcessResult(args, code, "", "", time.monotonic() - started, False, False,
                             f"{explain(code)}: {reason}")

    state = _Run(proc, max_output)
    timed_out = stopped = killed = False
    deadline = started + timeout
    kill_at: float | None = None
    try:
        while not state.leader_exited():
            now = time.monotonic()
            if kill_at is None and (now >= deadline or (stop is not None and stop.is_set())):
                timed_out = now >= deadline
                stopped = not timed_out
                _signal_group(state.pgid, signal.SIGTERM)
                kill_at = now + kill_grace
            if kill_at is not None and not killed and now >= kill_at:
                _signal_group(state.pgid, signal.SIGKILL)
                killed = True
            next_event = kill_at if kill_at is not None and not killed else deadline
            wait = next_event - now if next_event > now else POLL_SECONDS
            if state.pidfd is None or stop is not None:
                wait = min(wait, POLL_SECONDS)
            state.pump(wait)
        # The child has exited but is not reaped: its pid still names the group, so
        # signalling the group cannot reach an unrelated process.
        _signal_group(state.pgid, signal.SIGTERM)
        returncode = proc.wait()
        linger_end = time.monotonic() + min(kill_grace, LEFTOVER_GRACE)
        state.pump_until(linger_end, lambda: not _group_alive(state.pgid))
        if _group_alive(state.pgid):
            _signal_group(state.pgid, signal.SIGKILL)
            state.pump_until(time.monotonic() + REAP_WAIT, lambda: not _group_alive(state.pgid))
        # Only a process that left the group (setsid) could still hold the pipes now.
        state.pump_until(time.monotonic() + DRAIN_AFTER_KILL, lambda: not state.pipes_open())
    finally:
        if proc.returncode is None:
            _signal_group(state.pgid, signal.SIGKILL)
            proc.wait()
        state.close()

    duration = time.monotonic() - started
    if timed_out:
        how = "was killed (SIGKILL) after ignoring SIGTERM for " + _seconds(kill_grace) \
            if killed else "was terminated"
        explanation = f"timed out after {_seconds(timeout)} and {how}"
    elif stopped:
        explanation = "was stopped because the daemon is shutting down"
    else:
        explanation = explain(returncode)
    return ProcessResult(
        argv=args,
        exit_code=returncode,
        stdout=state.stdout.text(),
        stderr=state.stderr.text(),
        duration=duration,
        timed_out=timed_out,
        truncated=bool(state.stdout.discarded or state.stderr.discarded),
        explanation=explanation,
        stopped=stopped,
    )
