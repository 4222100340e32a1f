"""The chaos soak's daemon: ``python -m azlin_lifecycle daemon run`` in the foreground
under a small supervisor that does what the unit's systemd does (Restart=on-failure,
RestartSec=5, the whole control group killed when the main process dies), SIGKILLed at
the harness's moments; its RSS, open fds and threads sampled from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RESTART_SEC = 5.0  # units/azlin-lifecycle.service
STEADY_AGE = 45.0  # an incarnation's resources are compared at this age


def descendants(root: int) -> list[int]:
    """The processes under ``root`` (its children, theirs, ...), from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        found += kids
        todo += kids
    return found


def repair_in_flight(db: Path) -> bool:
    """A repair recorded as in flight in the state store (read-only)."""
    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM repairs WHERE outcome = "
                               "'in_flight'").fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def sample_of(pid: int, started: float) -> Sample | None:
    """RSS, open fds and threads of ``pid`` now, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie: killed, not yet reaped
        return None
    sockets = sum(1 for link in links if link.startswith("socket:"))
    return Sample(time.time(), time.time() - started,
                  int(fields["VmRSS"].split()[0]) / 1024, len(links), int(fields["Threads"]),
                  sockets)


@dataclass
class Sample:
    at: float  # epoch
    age: float  # seconds since this incarnation started
    rss_mb: float
    fds: int
    threads: int
    sockets: int  # of the fds: kept SSH connections and tunnels, the database's none

    @property
    def other_fds(self) -> int:
        """Fds that are not sockets: files, pipes (flat, whatever the fleet does)."""
        return self.fds - self.sockets

    @property
    def spare_threads(self) -> int:
        """Threads beyond one per socket (paramiko's per kept connection)."""
        return self.threads - self.sockets


@dataclass
class Supervisor:
    workdir: Path
    env: dict[str, str]
    repo: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    down_since: float | None = None
    kills: list[tuple[float, bool]] = field(default_factory=list)  # (epoch, repair in flight)
    own_exits: list[tuple[float, int]] = field(default_factory=list)
    starts: int = 0
    samples: list[Sample] = field(default_factory=list)
    steady: list[Sample] = field(default_factory=list)  # one per incarnation, at STEADY_AGE

    @property
    def db(self) -> Path:
        return self.workdir / "state" / "azlin-lifecycle" / "state.db"

    def start(self) -> None:
        log = (self.workdir / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "azlin_lifecycle", "daemon", "run"], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=self.repo, start_new_session=True)
        log.close()
        self.started, self.down_since = time.time(), None
        self.starts += 1

    def _reap_group(self, tree: list[int] | None = None) -> None:
        """What systemd does when the main process is gone: the rest of the unit's control
        group (hooks still running, in their own sessions too) is killed."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in tree or []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def kill(self, during_repair: bool) -> None:
        assert self.proc is not None and self.proc.poll() is None
        tree = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reap_group(tree)
        self.kills.append((time.time(), during_repair))
        self.down_since = time.time()

    def tick(self) -> None:
        """Restart a daemon that is gone (after RestartSec), sample a running one."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            if self.down_since is None:  # it exited by itself: a finding
                self.own_exits.append((time.time(), self.proc.returncode))
                self._reap_group()
                self.down_since = time.time()
            if time.time() - self.down_since >= RESTART_SEC:
                self.start()
            return
        sample = self._sample()
        if sample is not None:
            self.samples.append(sample)
            if sample.age >= STEADY_AGE and (not self.steady or self.steady[-1].at
                                             < self.started):
                self.steady.append(sample)

    def _sample(self) -> Sample | None:
        assert self.proc is not None
        return sample_of(self.proc.pid, self.started)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def repair_in_flight(self) -> bool:
        return repair_in_flight(self.db)

    def stop(self) -> None:
        """SIGTERM, as ``systemctl --user stop`` does."""
        if self.proc is None:
            return
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reap_group(tree)
