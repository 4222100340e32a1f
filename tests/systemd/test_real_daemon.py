"""The real LifecycleDaemon as the installed, sandboxed user unit, against a simulated fleet.

The simulator (stand-in ARM over HTTPS, one SSH endpoint per VM, a stand-in ``az``)
runs as the test user on 127.0.0.1; the unit is what ``install`` writes, with ExecStart
running this checkout's daemon, plus a drop-in that puts the stand-in ``az`` on PATH.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.support.real_unit import (
    UNIT,
    SimulatorProcess,
    dropin,
    journal,
    show,
    uninstall_unit,
    user_python,
)
from tests.support.user_session import UserSession

SIM_VMS = 2


@pytest.fixture(scope="module")
def fleet_unit(session: UserSession) -> Iterator[UserSession]:
    """The simulator running, its config written, the real unit installed (not started)."""
    fleet = SimulatorProcess(session, vms=SIM_VMS).start()
    try:
        fleet.write_config(session.home / ".azlin" / "lifecycle-config.toml")
        user_python(session, """
            from azlin_lifecycle.install import install
            install()
        """)
        dropin(session, f"[Service]\nEnvironment=PATH={fleet.bin_dir}:/usr/bin:/bin\n")
        yield session
    finally:
        session.systemctl("stop", UNIT, check=False)
        uninstall_unit(session)
        fleet.stop()


def test_installed_unit_verifies_and_scores_at_most_4(fleet_unit: UserSession) -> None:
    session = fleet_unit
    path = session.home / ".config/systemd/user" / UNIT
    text = path.read_text()
    assert re.search(r"^ExecStart=\S+/python -m azlin_lifecycle daemon run$", text, re.M), text
    verify = session.run_as_user(["systemd-analyze", "--user", "verify", str(path)])
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == ""
    security = session.run_as_user(["systemd-analyze", "--user", "security", UNIT])
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert score, security.stdout[-500:]
    assert float(score.group(1)) <= 4.0, security.stdout


def test_real_daemon_ready_status_journal_reload_stop(fleet_unit: UserSession) -> None:
    session = fleet_unit
    _, out, _ = user_python(session, """
        import json, time
        from azlin_lifecycle.controller import DaemonController
        c = DaemonController()
        t = time.monotonic()
        c.start_daemon()
        ready = time.monotonic() - t
        s = c.daemon_status()
        print(json.dumps({"ready": ready, "state": s.active_state, "pid": s.pid,
                          "status": s.status_text, "vms": s.monitored_vms}))
    """)
    got = json.loads(out)
    print(f"real daemon: start-to-READY {got['ready']:.2f}s, STATUS={got['status']!r}")
    assert got["state"] == "active" and got["pid"]
    assert got["status"], "the daemon sent no STATUS= line"
    assert len(got["vms"]) == SIM_VMS

    # Inside the sandbox the daemon reaches ARM (HTTPS, stand-in az) and SSH (key read,
    # known_hosts written): a check_ok entry per VM, with its fields, in the user's journal.
    deadline = time.monotonic() + 30
    checks: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        checks = journal(session, f"_PID={got['pid']}", "EVENT=check_ok")
        if {e["VM_NAME"] for e in checks} >= set(got["vms"]):
            break
        time.sleep(0.5)
    assert {e["VM_NAME"] for e in checks} >= set(got["vms"]), \
        [(e.get("EVENT"), e.get("MESSAGE")) for e in journal(session, f"_PID={got['pid']}")][-8:]
    assert {e["MESSAGE_ID"] for e in checks} == {"b3e376e395774ab89548009cd5429be0"}
    assert all(e["SYSLOG_IDENTIFIER"] == "azlin-lifecycle" for e in checks)

    # SIGHUP with a good config, then with a broken one (the old config stays in force).
    _, out, _ = user_python(session, """
        import pathlib
        from azlin_lifecycle.controller import DaemonController
        from azlin_lifecycle.errors import ControllerError
        c = DaemonController()
        print(c.reload_daemon())
        cfg = pathlib.Path(".azlin/lifecycle-config.toml")
        good = cfg.read_text()
        cfg.write_text(good + "\\n[vms.bad]\\ncheck_interval_seconds = 1\\n")
        try:
            c.reload_daemon()
            print("NOT REJECTED")
        except ControllerError as exc:
            print("REJECTED", exc)
        finally:
            cfg.write_text(good)
        s = c.daemon_status()
        print("STATE", s.active_state, s.pid)
        c.stop_daemon()
        print("AFTER", c.daemon_status().active_state)
    """)
    lines = out.splitlines()
    assert lines[0].startswith("configuration reloaded"), out
    assert lines[1].startswith("REJECTED azlin-lifecycle.service kept its previous configuration")
    assert "check_interval_seconds" in lines[1]
    assert lines[2] == f"STATE active {got['pid']}"
    assert lines[3] == "AFTER inactive"
    events = [e["EVENT"] for e in journal(session, f"_PID={got['pid']}") if e.get("EVENT")]
    assert events[-1] == "daemon_stopping", events[-5:]


def test_watchdog_restarts_a_stalled_real_daemon(fleet_unit: UserSession) -> None:
    session = fleet_unit
    dropin(session, f"[Service]\nEnvironment=PATH={session.home / 'sim/bin'}:/usr/bin:/bin\n"
                    "WatchdogSec=2\nRestartSec=0.2\n")
    session.systemctl("start", UNIT)
    try:
        first = show(session, "MainPID", "NRestarts", "WatchdogUSec")
        assert first["WatchdogUSec"] == "2s"
        time.sleep(2.5)  # it keeps pinging while its loop runs
        assert show(session, "MainPID")["MainPID"] == first["MainPID"]
        session.systemctl("kill", "-s", "SIGSTOP", UNIT)
        deadline = time.monotonic() + 15
        now = first
        while time.monotonic() < deadline:
            now = show(session, "MainPID", "NRestarts", "ActiveState")
            if int(now["NRestarts"]) > int(first["NRestarts"]) and now["ActiveState"] == "active":
                break
            time.sleep(0.2)
        assert int(now["NRestarts"]) == int(first["NRestarts"]) + 1, now
        assert now["MainPID"] != first["MainPID"]
        text = "\n".join(e.get("MESSAGE", "") for e in journal(session, "--since=-60s"))
        assert "Failed with result 'watchdog'" in text, text[-1500:]
    finally:
        session.systemctl("stop", UNIT, check=False)
        dropin(session, f"[Service]\nEnvironment=PATH={session.home / 'sim/bin'}:/usr/bin:/bin\n")
