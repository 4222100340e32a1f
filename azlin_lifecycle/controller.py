"""DaemonController: the daemon's systemd user unit, driven over D-Bus. No PID files.

systemd knows whether the daemon runs, its PID, since when, and its STATUS= line;
the controller asks it, and reads the unit's journal for logs and for failures.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ControllerError, LifecycleConfigError
from .paths import UNIT_NAME

if TYPE_CHECKING:
    from .adapters.dbus import SystemdUserManager, UnitProperties

FAILURE_LINES = 8
RELOAD_CONFIRM_SECONDS = 10.0


@dataclass(frozen=True)
class ServiceStatus:
    """The daemon as systemd sees it, plus the VMs the config asks it to monitor."""

    active_state: str
    sub_state: str
    running: bool
    pid: int | None
    since: dt.datetime | None
    uptime: dt.timedelta | None  # whole seconds, as DaemonStatus.uptime
    status_text: str
    n_restarts: int
    result: str
    installed: bool
    monitored_vms: list[str] = field(default_factory=list)
    config_error: str | None = None


class DaemonController:
    """Start, stop, reload and inspect ``azlin-lifecycle.service`` in the user manager."""

    def __init__(self, config_path: Path | None = None, *, unit: str = UNIT_NAME,
                 manager: SystemdUserManager | None = None) -> None:
        self.config_path = config_path
        self.unit = unit
        self._manager = manager

    @property
    def systemd(self) -> SystemdUserManager:
        """Connected on first use: reading logs needs only the journal, not the user bus."""
        if self._manager is None:
            from .adapters.dbus import SystemdUserManager

            self._manager = SystemdUserManager()
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    # ------------------------------------------------------------------ control
    def start_daemon(self) -> None:
        """Start the unit and wait until it is ready (READY=1).

        ``azlin lifecycle daemon run`` runs the daemon in the foreground instead.
        """
        self._require_installed()
        result = self.systemd.start_unit(self.unit)
        self._check_job("start", result)

    def stop_daemon(self, timeout: float = 10) -> None:
        """Stop the unit; ControllerError if it is still running after ``timeout`` s."""
        result = self.systemd.stop_unit(self.unit, timeout=timeout)
        props = self.systemd.properties(self.unit)
        if result not in ("done", "skipped") or props.active_state not in ("inactive", "failed"):
            raise ControllerError(
                f"{self.unit} did not stop (job {result}, state {props.active_state}/"
                f"{props.sub_state}); see `systemctl --user status {self.unit}`"
            )

    def restart_daemon(self) -> None:
        self._require_installed()
        result = self.systemd.restart_unit(self.unit)
        self._check_job("restart", result)

    def reload_daemon(self, timeout: float = RELOAD_CONFIRM_SECONDS) -> str:
        """SIGHUP through ExecReload, then wait for the daemon's verdict in the journal.

        ExecReload returns as soon as the signal is sent (systemd 252 has no
        Type=notify-reload), so the daemon's ``config_reloaded`` event is the
        confirmation; ``config_reload_failed`` raises ControllerError with its reason.
        Returns the daemon's message.
        """
        props = self.systemd.properties(self.unit)
        if props.active_state != "active":
            raise ControllerError(
                f"{self.unit} is not running ({props.active_state}); start it with "
                "`azlin lifecycle daemon start`"
            )
        since = time.time()
        # The daemon's reload events carry the mtime of the file they read: a verdict on
        # an older file belongs to an earlier reload, not to this one.
        from .manager import LifecycleManager

        try:
            wanted = LifecycleManager(self.config_path).config_path.stat().st_mtime_ns
        except OSError:
            wanted = 0
        result = self.systemd.reload_unit(self.unit)
        if result != "done":
            raise ControllerError(f"reloading {self.unit} failed (job {result}); "
                                  f"{self._journal_excerpt()}")
        from .adapters.journal import UnitJournal
        from .events import Event

        verdicts = {Event.CONFIG_RELOADED.event_name, Event.CONFIG_RELOAD_FAILED.event_name}
        entry = UnitJournal(self.unit).wait_for_event(
            verdicts, since, props.main_pid, timeout,
            accept=lambda e: wanted == 0 or _int_field(e, "CONFIG_MTIME_NS") >= wanted)
        if entry is None:
            raise ControllerError(
                f"{self.unit} got SIGHUP but did not confirm a reload within {timeout:g}s; "
                "see `azlin lifecycle daemon logs`"
            )
        message = str(entry.get("MESSAGE", ""))
        if entry.get("EVENT") == Event.CONFIG_RELOAD_FAILED.event_name:
            raise ControllerError(f"{self.unit} kept its previous configuration: {message}")
        return message

    # ------------------------------------------------------------------ inspect
    def daemon_status(self) -> ServiceStatus:
        props = self.systemd.properties(self.unit)
        since, uptime = _since(props)
        vms: list[str] = []
        config_error = None
        try:
            from .manager import LifecycleManager

            vms = LifecycleManager(self.config_path).list_monitored_vms()
        except LifecycleConfigError as exc:
            config_error = str(exc)
        running = props.active_state in ("active", "reloading")
        return ServiceStatus(
            active_state=props.active_state,
            sub_state=props.sub_state,
            running=running,
            pid=props.main_pid or None,
            since=since,
            uptime=uptime,
            status_text=props.status_text,
            n_restarts=props.n_restarts,
            result=props.result,
            installed=props.load_state == "loaded",
            monitored_vms=vms,
            config_error=config_error,
        )

    def log_lines(self, lines: int = 50, vm: str | None = None) -> list[str]:
        from .adapters.journal import UnitJournal

        return UnitJournal(self.unit, vm=vm).tail(lines)

    def show_logs(
        self, lines: int = 50, follow: bool = False, vm: str | None = None, *,
        write: Callable[[str], None] = print, stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Print the unit's journal (``journalctl --user -u``); ``follow`` is ``tail -f``."""
        from .adapters.journal import UnitJournal

        journal = UnitJournal(self.unit, vm=vm)
        if not follow:
            found = journal.tail(lines)
            for line in found:
                write(line)
            if not found:
                write("-- No entries --")
            return
        for line in journal.follow(lines, stop=stop):
            write(line)

    # ------------------------------------------------------------------ helpers
    def _require_installed(self) -> None:
        if self.systemd.properties(self.unit).load_state != "loaded":
            raise ControllerError(
                f"{self.unit} is not installed for this user; run `azlin lifecycle install`"
            )

    def _check_job(self, verb: str, result: str) -> None:
        if result == "done":
            return
        props = self.systemd.properties(self.unit)
        raise ControllerError(
            f"{self.unit} failed to {verb} (job {result}, result {props.result}); "
            f"{self._journal_excerpt()}"
        )

    def _journal_excerpt(self) -> str:
        try:
            lines = self.log_lines(FAILURE_LINES)
        except ControllerError as exc:
            return f"its journal cannot be read: {exc}"
        messages = [line.split(": ", 1)[-1] for line in lines]
        if not messages:
            return f"no journal entries; see `systemctl --user status {self.unit}`"
        return "last journal lines: " + " | ".join(messages)


def _since(props: UnitProperties) -> tuple[dt.datetime | None, dt.timedelta | None]:
    if props.active_state not in ("active", "reloading") or not props.active_enter_usec:
        return None, None
    started = props.active_enter_usec / 1_000_000
    since = dt.datetime.fromtimestamp(started, dt.UTC)
    return since, dt.timedelta(seconds=max(0, int(time.time() - started)))


def _int_field(entry: Mapping[str, Any], name: str) -> int:
    value = entry.get(name)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return int(str(value))
    except ValueError:
        return -1
