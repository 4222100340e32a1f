"""systemd's user manager over the D-Bus session bus, and logind on the system bus (pydbus).

Jobs are waited for by their ``JobRemoved`` signal, pumping the GLib main context
until the job's result arrives or the timeout passes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ControllerError

SYSTEMD_BUS_NAME = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
LOGIND_BUS_NAME = "org.freedesktop.login1"
NO_USER_BUS_HINT = (
    "run `loginctl enable-linger $USER` or log in on a session with a user manager; "
    "see README 'Troubleshooting'"
)


@dataclass(frozen=True)
class UnitProperties:
    """What the controller reads of a service unit."""

    name: str
    load_state: str
    active_state: str
    sub_state: str
    result: str
    main_pid: int
    active_enter_usec: int
    status_text: str
    n_restarts: int
    watchdog_usec: int


def session_bus_address() -> str:
    """The user's bus address, or ControllerError saying how to get a user manager."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime, "bus").exists():
        return f"unix:path={runtime}/bus"
    raise ControllerError(
        "no systemd user session bus (DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR/bus "
        f"are missing); {NO_USER_BUS_HINT}"
    )


def _glib_message(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc)
    return text.replace("GDBus.Error:", "").strip()


class SystemdUserManager:
    """The calling user's systemd manager (``systemctl --user``) over D-Bus."""

    def __init__(self, address: str | None = None) -> None:
        from gi.repository import GLib
        from pydbus.bus import connect

        self.address = address or session_bus_address()
        try:
            self._bus = connect(self.address)
            self._manager = self._bus.get(SYSTEMD_BUS_NAME, SYSTEMD_PATH)
        except GLib.Error as exc:
            raise ControllerError(
                f"cannot reach the systemd user manager at {self.address}: "
                f"{_glib_message(exc)}; {NO_USER_BUS_HINT}"
            ) from exc
        self._removed: dict[str, str] = {}
        self._subscription: Any = None

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.disconnect()
            self._subscription = None
        self._bus.con.close_sync(None)

    def __enter__(self) -> SystemdUserManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def _call(self, what: str, method: str, *args: Any) -> Any:
        from gi.repository import GLib

        try:
            return getattr(self._manager, method)(*args)
        except GLib.Error as exc:
            raise ControllerError(f"{what} failed: {_glib_message(exc)}") from exc

    def _watch_jobs(self) -> None:
        if self._subscription is not None:
            return

        def on_removed(job_id: int, job: str, unit: str, result: str) -> None:
            self._removed[job] = result

        self._subscription = self._manager.JobRemoved.connect(on_removed)
        self._call("subscribing to systemd's signals", "Subscribe")

    def _run_job(self, what: str, method: str, unit: str, timeout: float) -> str:
        """Queue a job (mode "replace") and wait for its result: done, failed, timeout, ..."""
        from gi.repository import GLib

        self._watch_jobs()
        job = self._call(what, method, unit, "replace")
        context = GLib.MainContext.default()
        deadline = time.monotonic() + timeout
        while job not in self._removed:
            while context.pending():
                context.iteration(False)
            if job in self._removed:
                break
            if time.monotonic() > deadline:
                raise ControllerError(
                    f"{what}: systemd did not finish the job within {timeout:g}s; check "
                    f"`systemctl --user status {unit}`"
                )
            time.sleep(0.01)
        return self._removed.pop(job)

    def start_unit(self, unit: str, timeout: float = 90) -> str:
        return self._run_job(f"starting {unit}", "StartUnit", unit, timeout)

    def stop_unit(self, unit: str, timeout: float = 30) -> str:
        return self._run_job(f"stopping {unit}", "StopUnit", unit, timeout)

    def restart_unit(self, unit: str, timeout: float = 90) -> str:
        return self._run_job(f"restarting {unit}", "RestartUnit", unit, timeout)

    def reload_unit(self, unit: str, timeout: float = 30) -> str:
        return self._run_job(f"reloading {unit}", "ReloadUnit", unit, timeout)

    def daemon_reload(self) -> None:
        """``systemctl --user daemon-reload``: reread unit files."""
        self._call("reloading systemd's unit files", "Reload")

    def enable_unit_files(self, files: list[str]) -> list[tuple[str, str, str]]:
        _install_info, changes = self._call(
            f"enabling {', '.join(files)}", "EnableUnitFiles", files, False, True)
        return [tuple(c) for c in changes]

    def disable_unit_files(self, files: list[str]) -> list[tuple[str, str, str]]:
        changes = self._call(f"disabling {', '.join(files)}", "DisableUnitFiles", files, False)
        return [tuple(c) for c in changes]

    def unit_file_state(self, unit: str) -> str:
        """enabled, disabled, ... or "" when there is no such unit file."""
        from gi.repository import GLib

        try:
            return str(self._manager.GetUnitFileState(unit))
        except GLib.Error:
            return ""

    def properties(self, unit: str) -> UnitProperties:
        path = self._call(f"loading {unit}", "LoadUnit", unit)
        proxy = self._bus.get(SYSTEMD_BUS_NAME, path)
        service = proxy["org.freedesktop.systemd1.Service"]
        unit_iface = proxy["org.freedesktop.systemd1.Unit"]
        return UnitProperties(
            name=unit,
            load_state=str(unit_iface.LoadState),
            active_state=str(unit_iface.ActiveState),
            sub_state=str(unit_iface.SubState),
            result=str(service.Result),
            main_pid=int(service.MainPID),
            active_enter_usec=int(unit_iface.ActiveEnterTimestamp),
            status_text=str(service.StatusText),
            n_restarts=int(service.NRestarts),
            watchdog_usec=int(service.WatchdogUSec),
        )


def set_user_linger(uid: int, enable: bool) -> None:
    """logind's SetUserLinger(uid, enable, interactive=false) on the system bus."""
    from gi.repository import GLib
    from pydbus import SystemBus

    what = "enabling" if enable else "disabling"
    try:
        logind = SystemBus().get(LOGIND_BUS_NAME, "/org/freedesktop/login1")
        logind.SetUserLinger(uid, enable, False)
    except GLib.Error as exc:
        raise ControllerError(
            f"{what} lingering through systemd-logind failed: {_glib_message(exc)}; run "
            f"`loginctl {'enable' if enable else 'disable'}-linger $USER` yourself"
        ) from exc
