"""The chaos soak's daemon as the real user unit under a real systemd user manager
(tests/support/user_session.py: needs root and this machine kind's set-up): installed as
``install`` writes it, plus a drop-in for the stand-in's ``az``, its CA and the soak's
directory; SIGKILLed by its MainPID, restarted by systemd itself (Restart=on-failure,
RestartSec=5, StartLimitBurst=5 in 300 s, as shipped); its journal read with
``journalctl --user -u azlin-lifecycle``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from _chaos_daemon import STEADY_AGE, Sample, repair_in_flight, sample_of

from tests.support.real_unit import UNIT, dropin, show, uninstall_unit, user_python
from tests.support.user_session import UserSession


@dataclass
class SystemdUnit:
    session: UserSession
    workdir: Path  # the soak's directory, in the test user's home
    env: dict[str, str]  # the fleet's: PATH with the stand-in az first, its CA ...
    kills: list[tuple[float, bool]] = field(default_factory=list)
    own_exits: list[tuple[float, int]] = field(default_factory=list)
    starts: int = 0
    samples: list[Sample] = field(default_factory=list)
    steady: list[Sample] = field(default_factory=list)
    pid: int = 0
    started: float = 0.0
    restarts_seen: int = 0
    kills_seen: int = 0  # our kills that explained a restart systemd counted
    last_show: float = 0.0
    active: bool = False

    @property
    def db(self) -> Path:
        return self.workdir / "state" / "azlin-lifecycle" / "state.db"

    def start(self) -> None:
        home = {"AZLIN_CONFIG_DIR": str(self.workdir / "config"),
                "XDG_STATE_HOME": str(self.workdir / "state")}
        user_python(self.session, """
            from azlin_lifecycle.install import install
            install()
        """, env=home)
        dropin(self.session, "[Service]\nEnvironment=" + " ".join(
            f"{k}={self.env[k]}" for k in ("PATH", "REQUESTS_CA_BUNDLE", "AZURE_CONFIG_DIR"))
            + "\nEnvironment=PYTHONUNBUFFERED=1\n"
            f"ReadWritePaths={self.workdir}\n")
        self.session.systemctl("start", UNIT)
        self._follow(force=True)

    def _follow(self, force: bool = False) -> None:
        if not force and time.time() - self.last_show < 1.0:
            return
        self.last_show = time.time()
        got = show(self.session, "MainPID", "NRestarts", "ActiveState")
        pid, restarts = int(got.get("MainPID") or 0), int(got.get("NRestarts") or 0)
        self.active = got.get("ActiveState") == "active"
        for _ in range(self.unexplained(restarts)):
            self.own_exits.append((time.time(), -1))
        if got.get("ActiveState") == "failed":  # start limit hit, or a failed start
            self.own_exits.append((time.time(), -2))
            self.session.systemctl("reset-failed", UNIT, check=False)
            self.session.systemctl("start", UNIT, check=False)
            self.restarts_seen, self.kills_seen = 0, len(self.kills)  # counter reset
        if pid and pid != self.pid:
            self.pid, self.started = pid, time.time()
            self.starts += 1

    def unexplained(self, restarts: int) -> int:
        """Of the restarts systemd counted (``NRestarts``) since last asked, those that
        no kill of ours explains: the daemon died on its own."""
        new = restarts - self.restarts_seen
        if new <= 0:
            return 0
        ours = min(new, len(self.kills) - self.kills_seen)
        self.restarts_seen, self.kills_seen = restarts, self.kills_seen + ours
        return new - ours

    def kill(self, during_repair: bool) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.kills.append((time.time(), during_repair))
        self.active = False
        self.last_show = 0.0

    def tick(self) -> None:
        self._follow()
        if not self.pid or not self.active:
            return
        sample = sample_of(self.pid, self.started)
        if sample is not None:
            self.samples.append(sample)
            if sample.age >= STEADY_AGE and (not self.steady or self.steady[-1].at
                                             < self.started):
                self.steady.append(sample)

    def alive(self) -> bool:
        self._follow()
        return self.active and self.pid > 0

    def repair_in_flight(self) -> bool:
        return repair_in_flight(self.db)

    def stop(self) -> None:
        self.session.systemctl("stop", UNIT, check=False)
        with contextlib.suppress(Exception):
            uninstall_unit(self.session)

    def journal_events(self, since: float) -> list[tuple[str, str]]:
        out = self.session.run_as_user(
            ["journalctl", "--user", "-u", "azlin-lifecycle", "-o", "json", "--no-pager",
             f"--since=@{int(since) - 5}",
             "--output-fields=VM_NAME,EVENT"], timeout=120).stdout
        events = []
        for line in out.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if "VM_NAME" in entry and "EVENT" in entry:
                    events.append((str(entry["VM_NAME"]), str(entry["EVENT"])))
        return events
