"""A real systemd user manager, D-Bus session bus and journald for an unprivileged user.

On these machines PID 1 is not systemd; this prepares what PID 1 would have (see
``/work/shared/notes/systemd-user-session.md``) and runs ``systemd --user`` for a test
user. Use it from pytest (``tests/systemd/conftest.py``) or a plain script::

    with UserSession() as session:
        session.run_as_user(["systemctl", "--user", "status"])

Needs root. :class:`HarnessUnavailable` says why it cannot come up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_USER = "azlintest"
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
JOURNALD = Path("/lib/systemd/systemd-journald")
SYSTEMD = Path("/lib/systemd/systemd")
RUN_SYSTEMD = Path("/run/systemd")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
LOCK_PATH = Path("/run/azlin-user-session.lock")
BUS_TIMEOUT = 30.0
LOCK_TIMEOUT = 300.0
_up_in_this_process = False  # a harness of this process holds LOCK_PATH


class HarnessUnavailable(RuntimeError):
    """The user session cannot be brought up here; the message says why."""


def journald_answers() -> bool:
    """True if a journald is listening (a dead one leaves its socket file behind)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(str(JOURNAL_SOCKET))
        except OSError:
            return False
    return True


class UserSession:
    """``systemd --user`` for ``user``, with its bus and journald; stop() undoes it all."""

    def __init__(self, user: str = DEFAULT_USER, reset_home: bool = True) -> None:
        self.user = user
        self.reset_home = reset_home
        self.uid = -1
        self.gid = -1
        self.home = Path("/nonexistent")
        self.runtime_dir = Path("/nonexistent")
        self.manager: subprocess.Popen[bytes] | None = None
        self.journald: subprocess.Popen[bytes] | None = None
        self.bringup_seconds = 0.0
        self._lock: IO[str] | None = None
        self._made_run_system = False
        self._logdir = Path(tempfile.mkdtemp(prefix="azlin-user-session-"))

    # ------------------------------------------------------------------ public
    @property
    def env(self) -> dict[str, str]:
        """The environment of a login of the test user with the project's venv on PATH."""
        return {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime_dir}/bus",
        }

    def user_argv(self, argv: Sequence[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--", *argv]

    def run_as_user(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        check: bool = False, timeout: float = 60, **kw: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the test user in its home, text output captured by default."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", str(self.home))
        result: subprocess.CompletedProcess[str] = subprocess.run(
            self.user_argv(argv), env={**self.env, **(env or {})}, check=check,
            timeout=timeout, **kw,
        )
        return result

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_as_user(["systemctl", "--user", *args], check=check)

    def start(self) -> UserSession:
        started = time.monotonic()
        if os.geteuid() != 0:
            raise HarnessUnavailable("the systemd user-session harness must run as root")
        for tool in (SYSTEMD, JOURNALD, Path("/usr/bin/setpriv")):
            if not tool.exists():
                raise HarnessUnavailable(f"{tool} is missing (apt-get install systemd util-linux)")
        if not all((root / "cgroup.procs").exists() for root in CGROUP_ROOTS):
            raise HarnessUnavailable("needs the hybrid cgroup hierarchies /sys/fs/cgroup/"
                                     "{systemd,unified}")
        self._take_lock()
        try:
            self._ensure_user()
            if self.reset_home:
                self._reset_home()
            self._check_user_can_run_python()
            self._ensure_journald()
            self._prepare_run_systemd()
            self._prepare_runtime_dir()
            self._start_manager()
            self._wait_for_bus()
        except BaseException:
            self.stop()
            raise
        # While it exists, apt maintainer scripts try to start services (see the notes).
        if self._made_run_system:
            shutil.rmtree(RUN_SYSTEMD / "system", ignore_errors=True)
        self.bringup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the manager, the user's leftover processes, and journald if we started it."""
        if self.manager is not None:
            _terminate(self.manager, 10)
            self.manager = None
        if self.uid > 0:
            _kill_uid(self.uid)
            for root in CGROUP_ROOTS:
                _remove_cgroup(root / f"user.slice/user-{self.uid}.slice")
        if self.journald is not None:
            _terminate(self.journald, 5)
            self.journald = None
        if self._made_run_system:
            shutil.rmtree(RUN_SYSTEMD / "system", ignore_errors=True)
            self._made_run_system = False
        if self.runtime_dir.is_dir() and self.uid > 0:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        shutil.rmtree(self._logdir, ignore_errors=True)
        if self._lock is not None:
            global _up_in_this_process
            self._lock.close()
            self._lock = None
            _up_in_this_process = False

    def __enter__(self) -> UserSession:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def manager_log(self) -> str:
        path = self._logdir / "manager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ steps
    def _take_lock(self) -> None:
        """One harness at a time on this machine (they share journald and /run/systemd)."""
        global _up_in_this_process
        if _up_in_this_process:
            # Waiting would wait on ourselves until LOCK_TIMEOUT: fail at once instead.
            raise HarnessUnavailable(
                "another user-session harness is already up in this process; share it "
                "(tests/support/shared_session.py) instead of starting a second one")
        self._lock = LOCK_PATH.open("w")
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _up_in_this_process = True
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessUnavailable(
                        f"another user-session harness held {LOCK_PATH} for "
                        f"{LOCK_TIMEOUT:.0f}s") from None
                time.sleep(0.5)

    def _ensure_user(self) -> None:
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", self.user],
                           check=True, capture_output=True)
            entry = pwd.getpwnam(self.user)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
        if self.uid == 0:
            raise HarnessUnavailable(f"test user {self.user} must not be root")
        if not self.home.is_dir():
            self.home.mkdir(parents=True)
            os.chown(self.home, self.uid, self.gid)
        self.runtime_dir = Path(f"/run/user/{self.uid}")

    def _reset_home(self) -> None:
        """Forget units, config and state of earlier runs (an enabled unit would start)."""
        for rel in (".config/systemd", ".azlin", ".local/state/azlin-lifecycle"):
            shutil.rmtree(self.home / rel, ignore_errors=True)

    def _check_user_can_run_python(self) -> None:
        """The venv's interpreter lives under /root/.pyenv; /root needs o+x."""
        root = Path("/root")
        mode = root.stat().st_mode
        if not mode & stat.S_IXOTH:
            root.chmod(mode | stat.S_IXOTH)
        probe = self.run_as_user(
            [str(VENV_BIN / "python"), "-c",
             "import azlin_lifecycle, systemd.daemon, systemd.journal, pydbus"])
        if probe.returncode != 0:
            raise HarnessUnavailable(
                f"user {self.user} cannot import the project from {REPO} (check that the "
                f"repo and .venv are world-readable): {probe.stderr.strip()[-400:]}")

    def _ensure_journald(self) -> None:
        if journald_answers():
            return
        # Per-user journal files (what `journalctl --user` reads) need persistent storage.
        Path("/var/log/journal").mkdir(parents=True, exist_ok=True)
        # The flag systemd-journal-flush.service leaves: journald then writes to /var
        # from the start (entries still in a /run runtime journal would go there first).
        JOURNAL_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        (JOURNAL_SOCKET.parent / "flushed").touch()
        log = (self._logdir / "journald.log").open("wb")
        self.journald = subprocess.Popen([str(JOURNALD)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while not journald_answers():
            if self.journald.poll() is not None or time.monotonic() > deadline:
                raise HarnessUnavailable(
                    "systemd-journald did not come up: "
                    + (self._logdir / "journald.log").read_text(errors="replace")[-400:])
            time.sleep(0.05)
        # Move anything left in /run/log/journal to /var/log/journal.
        subprocess.run(["journalctl", "--flush"], check=False, capture_output=True, timeout=30)

    def _prepare_run_systemd(self) -> None:
        system = RUN_SYSTEMD / "system"
        if not system.exists():
            system.mkdir(parents=True)
            self._made_run_system = True
        (RUN_SYSTEMD / "unit-root").mkdir(exist_ok=True)
        nodes = RUN_SYSTEMD / "inaccessible"
        nodes.mkdir(exist_ok=True)
        makers = {
            "reg": lambda p: p.touch(),
            "dir": lambda p: p.mkdir(),
            "fifo": lambda p: os.mkfifo(p),
            "chr": lambda p: os.mknod(p, stat.S_IFCHR | 0, os.makedev(0, 0)),
            "blk": lambda p: os.mknod(p, stat.S_IFBLK | 0, os.makedev(0, 0)),
            "sock": _bind_unix,
        }
        for name, make in makers.items():
            path = nodes / name
            if not os.path.lexists(path):
                make(path)
            path.chmod(0)

    def _prepare_runtime_dir(self) -> None:
        # Stale bus/private sockets from an earlier manager give "Connection refused".
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        self.runtime_dir.mkdir(parents=True, mode=0o700)
        os.chown(self.runtime_dir, self.uid, self.gid)
        self.runtime_dir.chmod(0o700)

    def _start_manager(self) -> None:
        """Runs ``systemd --user`` in the user's cgroups; it logs to journald only when told
        (left to itself, with no PID-1 systemd, it tries /dev/console)."""
        procs = []
        for root in CGROUP_ROOTS:
            group = root / f"user.slice/user-{self.uid}.slice/user@{self.uid}.service"
            group.mkdir(parents=True, exist_ok=True)
            for path in (group.parent, group, *group.iterdir()):
                with contextlib.suppress(OSError):
                    os.chown(path, self.uid, self.gid)
            procs.append(group / "cgroup.procs")
        script = (f'echo $$ > "{procs[0]}" && echo $$ > "{procs[1]}" && exec "$@"')
        log = (self._logdir / "manager.log").open("wb")
        self.manager = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", *self.user_argv([str(SYSTEMD), "--user", "--log-target=journal"])],
            env=self.env, cwd=str(self.home), stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, start_new_session=True,
        )
        log.close()

    def _wait_for_bus(self) -> None:
        deadline = time.monotonic() + BUS_TIMEOUT
        argv = ["busctl", "--user", "get-property", "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "Version"]
        last = ""
        while time.monotonic() < deadline:
            assert self.manager is not None
            if self.manager.poll() is not None:
                raise HarnessUnavailable(
                    f"systemd --user exited with status {self.manager.returncode}: "
                    + self.manager_log()[-600:])
            if (self.runtime_dir / "bus").exists():
                result = self.run_as_user(argv, timeout=10)
                if result.returncode == 0:
                    return
                last = result.stderr.strip()
            time.sleep(0.1)
        raise HarnessUnavailable(f"the user's D-Bus session bus did not answer within "
                                 f"{BUS_TIMEOUT:.0f}s: {last} {self.manager_log()[-400:]}")


class LogindBus:
    """A system D-Bus and systemd-logind (for lingering), started only if not running.

    ``with LogindBus(): ...``; stops what it started, by PID, and removes the socket.
    """

    SOCKET = Path("/run/dbus/system_bus_socket")
    PIDFILE = Path("/run/dbus/pid")

    def __init__(self) -> None:
        self.dbus_pid: int | None = None
        self.logind: subprocess.Popen[bytes] | None = None

    def _answers(self, name: str) -> bool:
        result = subprocess.run(["busctl", "--system", "status", name], capture_output=True,
                                timeout=10, check=False)
        return result.returncode == 0

    def start(self) -> LogindBus:
        try:
            if not self._answers("org.freedesktop.DBus"):
                self.SOCKET.unlink(missing_ok=True)
                self.SOCKET.parent.mkdir(parents=True, exist_ok=True)
                stale = self.PIDFILE.read_text().strip() if self.PIDFILE.exists() else ""
                if not stale.isdigit() or not Path(f"/proc/{stale}").exists():
                    self.PIDFILE.unlink(missing_ok=True)  # dbus-daemon leaves it behind
                out = subprocess.run(["dbus-daemon", "--system", "--fork", "--print-pid"],
                                     capture_output=True, text=True, timeout=10, check=False)
                if out.returncode != 0:
                    raise HarnessUnavailable(f"dbus-daemon --system failed: {out.stderr}")
                self.dbus_pid = int(out.stdout.split()[0])
            if not self._answers("org.freedesktop.login1"):
                self.logind = subprocess.Popen(
                    ["/lib/systemd/systemd-logind"], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
                deadline = time.monotonic() + 15
                while not self._answers("org.freedesktop.login1"):
                    if self.logind.poll() is not None or time.monotonic() > deadline:
                        raise HarnessUnavailable("systemd-logind did not come up on the "
                                                 "system bus")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.logind is not None:
            _terminate(self.logind, 5)
            self.logind = None
        if self.dbus_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.dbus_pid, signal.SIGTERM)
            for _ in range(50):
                if not Path(f"/proc/{self.dbus_pid}").exists():
                    break
                time.sleep(0.05)
            self.dbus_pid = None
            self.SOCKET.unlink(missing_ok=True)
            self.PIDFILE.unlink(missing_ok=True)

    def __enter__(self) -> LogindBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- helpers
def _bind_unix(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                pids.append(int(entry.name))
                break
    return pids


def _kill_uid(uid: int) -> None:
    """SIGKILL, by PID, every process left running with the test user's real uid."""
    for _ in range(20):
        pids = [p for p in _pids_of_uid(uid) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def main() -> int:
    """``python tests/support/user_session.py [CMD ...]``: bring up, run CMD as the user."""
    session = UserSession()
    try:
        session.start()
    except HarnessUnavailable as exc:
        print(f"user session unavailable: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"user session for {session.user} (uid {session.uid}) up in "
              f"{session.bringup_seconds:.2f}s", file=sys.stderr)
        argv = sys.argv[1:] or ["systemctl", "--user", "is-system-running"]
        result = session.run_as_user(argv, capture_output=False)
        return result.returncode
    finally:
        session.stop()


if __name__ == "__main__":
    sys.exit(main())
