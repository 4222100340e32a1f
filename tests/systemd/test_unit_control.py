"""The unit, the controller, the journal and install/uninstall with a real user manager.

ExecStart is the tiny Type=notify test service (notify_service.py), which uses the
project's own sd_notify adapter and event logging.
"""

from __future__ import annotations

import json
import re
import time

from tests.support.user_session import UserSession

from .conftest import PYTHON, TEST_SERVICE, install_unit, uninstall_unit, user_python

UNIT = "azlin-lifecycle.service"


def show(session: UserSession, *props: str) -> dict[str, str]:
    out = session.systemctl("show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_start_returns_only_after_ready_and_status_reads_systemd(session: UserSession) -> None:
    install_unit(session, f"{TEST_SERVICE} slow=1.0")
    try:
        _, out, _ = user_python(session, """
            import json, time
            from azlin_lifecycle.controller import DaemonController
            c = DaemonController()
            t = time.monotonic()
            c.start_daemon()
            took = time.monotonic() - t
            s = c.daemon_status()
            print(json.dumps({"took": took, "state": s.active_state, "running": s.running,
                              "pid": s.pid, "status": s.status_text,
                              "uptime": s.uptime.total_seconds(),
                              "whole_seconds": s.uptime.microseconds == 0,
                              "restarts": s.n_restarts}))
        """)
        got = json.loads(out)
        assert got["took"] >= 1.0, got  # the service sleeps 1 s before READY=1
        assert got["state"] == "active" and got["running"] is True
        assert got["status"] == "test service: watchdog every 15.0s"  # WatchdogSec=30 / 2
        assert got["restarts"] == 0
        assert 0 <= got["uptime"] < 30 and got["whole_seconds"]  # a timedelta, as DaemonStatus
        assert str(got["pid"]) == show(session, "MainPID")["MainPID"]
    finally:
        uninstall_unit(session)


def test_reload_stop_and_logs_through_the_controller(test_unit: UserSession) -> None:
    session = test_unit
    _, out, _ = user_python(session, """
        import json, os
        from azlin_lifecycle.controller import DaemonController
        from azlin_lifecycle.errors import ControllerError
        c = DaemonController()
        c.start_daemon()
        confirmed = c.reload_daemon()
        reloaded = c.daemon_status().status_text
        open(".azlin/reject-reload", "w").close()
        try:
            c.reload_daemon()
            rejected = None
        except ControllerError as exc:
            rejected = str(exc)
        finally:
            os.remove(".azlin/reject-reload")
        c.stop_daemon()
        after = c.daemon_status()
        print(json.dumps({"confirmed": confirmed, "rejected": rejected,
                          "reloaded": reloaded, "state": after.active_state,
                          "running": after.running, "pid": after.pid,
                          "logs": c.log_lines(20), "vm": c.log_lines(20, vm="vm-a"),
                          "other_vm": c.log_lines(20, vm="vm-zzz")}))
    """)
    got = json.loads(out)
    assert got["confirmed"] == "test service reloaded"
    assert got["reloaded"] == "test service: reloaded"
    assert got["rejected"] == ("azlin-lifecycle.service kept its previous configuration: "
                               "test service: bad config")
    assert (got["state"], got["running"], got["pid"]) == ("inactive", False, None)
    ours = [line for line in got["logs"] if " azlin-lifecycle[" in line]
    assert [line.split(": ", 1)[1] for line in ours[-4:]] == [
        "test service started", "test service reloaded", "test service: bad config",
        "test service stopping"]
    assert re.match(r"^\w{3} \d\d \d\d:\d\d:\d\d \S+ azlin-lifecycle\[\d+\]: ", ours[0])
    # The user manager's own lines about the unit are part of `journalctl --user -u`.
    assert any(re.search(r" systemd\[\d+\]: Started azlin-lifecycle\.service", line)
               for line in got["logs"])
    # Only the daemon_started event carries VM_NAME=vm-a (the journal keeps earlier runs).
    assert got["vm"] and {line.split(": ", 1)[1] for line in got["vm"]} == {
        "test service started"}
    assert got["other_vm"] == []


def test_journalctl_user_shows_structured_fields(test_unit: UserSession) -> None:
    session = test_unit
    session.systemctl("start", UNIT)
    session.systemctl("stop", UNIT)
    out = session.run_as_user(["journalctl", "--user", "-u", "azlin-lifecycle", "-o", "json",
                               "--no-pager", "EVENT=daemon_started"], check=True).stdout
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries, "journalctl --user -u azlin-lifecycle found no daemon_started entry"
    last = entries[-1]
    assert last["VM_NAME"] == "vm-a"
    assert last["HEALTH_STATE"] == "healthy"
    assert last["FAILURE_COUNT"] == "0"
    assert last["MESSAGE_ID"] == "4ca4b1f6e34b483389358c4cd4b48cee"
    assert last["SYSLOG_IDENTIFIER"] == "azlin-lifecycle"
    assert last["_UID"] == str(session.uid)


def test_follow_prints_new_entries(test_unit: UserSession) -> None:
    session = test_unit
    _, out, _ = user_python(session, """
        import threading, time
        from azlin_lifecycle.controller import DaemonController
        c = DaemonController()
        seen, done = [], threading.Event()
        def write(line):
            seen.append(line)
            if line.endswith("test service reloaded"):
                done.set()
        t = threading.Thread(target=c.show_logs,
                             kwargs=dict(lines=0, follow=True, write=write, stop=done.is_set),
                             daemon=True)
        t.start()
        time.sleep(0.3)
        c.start_daemon()
        c.reload_daemon()
        assert done.wait(10), seen
        t.join(5)
        c.stop_daemon()
        print("\\n".join(seen))
    """)
    assert "test service started" in out
    assert "test service reloaded" in out


def test_failed_start_quotes_the_journal(session: UserSession) -> None:
    install_unit(session, f"{TEST_SERVICE} fail", dropin="[Service]\nRestart=no\n")
    try:
        code, _, err = user_python(session, """
            from azlin_lifecycle.controller import DaemonController
            from azlin_lifecycle.errors import ControllerError
            try:
                DaemonController().start_daemon()
            except ControllerError as exc:
                raise SystemExit(f"ControllerError: {exc}")
        """, check=False)
        assert code == 1
        assert "ControllerError: azlin-lifecycle.service failed to start" in err
        assert "test service refuses to start" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        uninstall_unit(session)


def test_watchdog_kills_a_stalled_service_and_systemd_restarts_it(session: UserSession) -> None:
    install_unit(session, TEST_SERVICE,
                 dropin="[Service]\nWatchdogSec=2\nRestartSec=0.2\n")
    try:
        session.systemctl("start", UNIT)
        first = show(session, "MainPID", "NRestarts")
        assert first["NRestarts"] == "0"
        session.systemctl("kill", "-s", "SIGSTOP", UNIT)
        deadline = time.monotonic() + 15
        now = first
        while time.monotonic() < deadline:
            now = show(session, "MainPID", "NRestarts", "ActiveState")
            if now["NRestarts"] == "1" and now["ActiveState"] == "active":
                break
            time.sleep(0.2)
        assert now["NRestarts"] == "1", now
        assert now["MainPID"] not in ("0", first["MainPID"])
        log = session.run_as_user(["journalctl", "--user", "-u", "azlin-lifecycle",
                                   "--no-pager"], check=True).stdout
        assert "watchdog" in log.lower(), log[-2000:]
    finally:
        uninstall_unit(session)


def test_without_a_user_bus_the_error_says_what_to_do(session: UserSession) -> None:
    code, _, err = session_python_without_bus(session)
    assert code == 1
    assert "loginctl enable-linger" in err
    assert "Troubleshooting" in err


def session_python_without_bus(session: UserSession) -> tuple[int, str, str]:
    argv = ["env", "-u", "DBUS_SESSION_BUS_ADDRESS", "-u", "XDG_RUNTIME_DIR", PYTHON, "-c",
            "from azlin_lifecycle.controller import DaemonController\n"
            "from azlin_lifecycle.errors import ControllerError\n"
            "try:\n    DaemonController().daemon_status()\n"
            "except ControllerError as exc:\n    raise SystemExit(str(exc))\n"]
    result = session.run_as_user(argv)
    return result.returncode, result.stdout, result.stderr


def test_install_uninstall_round_trip(session: UserSession) -> None:
    unit_file = session.home / ".config/systemd/user" / UNIT
    wants = session.home / ".config/systemd/user/default.target.wants" / UNIT
    install_unit(session, TEST_SERVICE)
    try:
        assert unit_file.is_file() and wants.is_symlink()
        assert session.systemctl("is-enabled", UNIT, check=False).stdout.strip() == "enabled"
        text = unit_file.read_text()
        assert f"ExecStart={TEST_SERVICE}\n" in text
        assert f"ReadWritePaths=-{session.home}/.azlin -{session.home}/.local/state/" \
               f"azlin-lifecycle -{session.home}/.azure\n" in text
        assert (session.home / ".azure").is_dir()
        assert "@" not in text.replace("@system-service", "").replace("@privileged", "") \
            .replace("@resources", "")
    finally:
        uninstall_unit(session)
    assert not unit_file.exists() and not wants.exists()
    assert show(session, "LoadState")["LoadState"] == "not-found"


def test_cli_status_logs_and_errors(test_unit: UserSession) -> None:
    session = test_unit
    start = session.run_as_user(["azlin-lifecycle", "daemon", "start"])
    assert (start.returncode, start.stdout) == (0, "azlin-lifecycle started\n"), start.stderr
    status = session.run_as_user(["azlin-lifecycle", "daemon", "status", "--json"])
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["active_state"] == "active" and data["running"] is True
    assert data["status_text"] == "test service: watchdog every 15.0s"
    assert data["pid"] == int(show(session, "MainPID")["MainPID"])
    assert isinstance(data["uptime"], float) and 0 <= data["uptime"] < 60, data
    human = session.run_as_user(["azlin", "lifecycle", "daemon", "status"], check=True).stdout
    assert re.search(r"^service +active \(running\)$", human, re.M), human
    assert re.search(r"^since +.*\(up \d+s\)$", human, re.M), human
    logs = session.run_as_user(["azlin-lifecycle", "daemon", "logs", "-n", "3", "--vm", "vm-a"],
                               check=True).stdout
    assert logs.strip().endswith("test service started")
    assert len(logs.splitlines()) <= 3
    stopped = session.run_as_user(["azlin-lifecycle", "daemon", "stop"], check=True)
    assert stopped.stdout == "azlin-lifecycle stopped\n"
    # Reloading a stopped service is an error with a way out, on one line, exit status 1.
    reload = session.run_as_user(["azlin-lifecycle", "daemon", "reload"])
    assert reload.returncode == 1
    assert reload.stderr.strip() == (
        "azlin-lifecycle: error: azlin-lifecycle.service is not running (inactive); start it "
        "with `azlin lifecycle daemon start`")


def test_cli_install_and_uninstall(session: UserSession) -> None:
    out = session.run_as_user(["azlin-lifecycle", "install"], check=True).stdout
    unit_file = session.home / ".config/systemd/user" / UNIT
    assert f"Installed {unit_file}" in out
    assert session.systemctl("is-enabled", UNIT, check=False).stdout.strip() == "enabled"
    out = session.run_as_user(["azlin-lifecycle", "uninstall"], check=True).stdout
    assert out == f"Removed {unit_file}\n"
    assert not unit_file.exists()
    out = session.run_as_user(["azlin-lifecycle", "uninstall"], check=True).stdout
    assert out == "The service was not installed\n"
    start = session.run_as_user(["azlin-lifecycle", "daemon", "start"])
    assert start.returncode == 1
    assert "not installed for this user; run `azlin lifecycle install`" in start.stderr
