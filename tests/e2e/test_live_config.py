"""Configuration changes reaching a running daemon: reload during checks, CLI edits."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .conftest import UNIT, Stage, at, show, user_python, wait_for

SLOW_SECONDS = 6.0


def _in_flight_at(moment: dict[str, Any], check: dict[str, Any]) -> bool:
    """Was ``check`` running when ``moment`` was logged? (it began CHECK_DURATION before
    it was logged)"""
    began = at(check) - float(check["CHECK_DURATION"]) * 1e6
    return began < at(moment) < at(check)


def test_reload_while_checks_are_in_flight(e2e: Stage) -> None:
    slow = e2e.vms[:3]
    e2e.reset(daemon={"ssh_timeout_seconds": 10.0})
    for vm in slow:
        e2e.sim.set_ssh_mode(vm, "slow", slow_seconds=SLOW_SECONDS)
    pid = e2e.start()  # READY=1: the first sweep is scheduled and starts at once
    restarts = show(e2e.session, "NRestarts")["NRestarts"]

    # Two reloads while the slow checks run: SIGHUP through systemd, then the controller.
    # ExecReload returns once the signal is sent; the daemon's event confirms the reload
    # (a second SIGHUP before the loop has taken the first would be served by one reload).
    e2e.session.systemctl("reload", UNIT)
    e2e.wait_event("config_reloaded", pid=pid, timeout=5)
    _, out, _ = user_python(e2e.session, """
        from azlin_lifecycle.controller import DaemonController
        print(DaemonController().reload_daemon())
    """)
    assert out.startswith("configuration reloaded"), out
    reloads = e2e.wait_events("config_reloaded", pid=pid, count=2, timeout=5)
    assert [r["MONITORED"] for r in reloads] == [str(len(e2e.vms))] * 2

    # Every check of that sweep is reported once, after both reloads, and was running
    # while they happened; the next sweep follows on schedule.
    for vm in e2e.vms:
        e2e.wait_events("check_ok", vm, pid, count=2, timeout=25)
    checks = e2e.events("check_ok", pid=pid)
    assert Counter(e["VM_NAME"] for e in checks) == Counter({vm: 2 for vm in e2e.vms}), \
        e2e.tail()
    for vm in slow:
        sweep0, sweep1 = e2e.events("check_ok", vm, pid)
        assert float(sweep0["CHECK_DURATION"]) >= SLOW_SECONDS - 0.5, sweep0
        for reload in reloads:
            assert _in_flight_at(reload, sweep0), (vm, reload["MESSAGE"], sweep0)
        assert at(sweep1) > at(reloads[-1])
    assert not e2e.events("check_failed"), e2e.tail()
    assert not [e for e in e2e.entries() if int(e.get("PRIORITY", 6)) <= 3], e2e.tail()
    now = show(e2e.session, "MainPID", "NRestarts", "ActiveState", "StatusText")
    assert (int(now["MainPID"]), now["NRestarts"], now["ActiveState"]) == (pid, restarts,
                                                                           "active")
    assert now["StatusText"].startswith(f"{len(e2e.vms)} VMs: {len(e2e.vms)} healthy"), now


def test_cli_edits_reach_the_running_daemon(e2e: Stage) -> None:
    kept, dropped, added = e2e.vms[:3]
    e2e.reset([kept, dropped], hooks=False)
    pid = e2e.start()
    for vm in (kept, dropped):
        e2e.wait_event("check_ok", vm, pid, timeout=15)

    # enable: the daemon notices the file changed (it polls its mtime) and checks the VM.
    port = str(e2e.simproc.info["vms"][added])
    out = e2e.azlin("enable", added, "--interval", "10", "--policy", "on-failure",
                    "--threshold", "1", "--ssh-host", "127.0.0.1", "--ssh-port", port,
                    "--ssh-user", "azureuser", "--ssh-key", e2e.simproc.info["client_key"])
    assert out.stdout.startswith(f"Monitoring {added}: every 10s, restart policy on-failure")
    enabled = e2e.wait_event("config_reloaded", pid=pid, timeout=10)
    assert enabled["MONITORED"] == "3"
    new_check = e2e.wait_event("check_ok", added, pid, timeout=15)
    assert at(new_check) > at(enabled)

    # disable: no check of that VM after the reload, though its next one was due.
    e2e.azlin("disable", dropped)
    disabled = e2e.wait_event("config_reloaded", pid=pid, after=enabled, timeout=10)
    assert disabled["MONITORED"] == "2"

    # hook set: the new on_failure hook runs on the next failure.
    set_out = e2e.azlin("hook", "set", kept, "on_failure", str(e2e.hook))
    assert set_out.stdout.strip() == f"{kept}: on_failure -> {e2e.hook}"
    hooked = e2e.wait_event("config_reloaded", pid=pid, after=disabled, timeout=10)
    e2e.sim.set_ssh_mode(kept, "refused")
    runs = wait_for(lambda: e2e.hook_runs("on_failure", kept), 25,
                    f"the new on_failure hook of {kept}", e2e.tail)
    assert runs[0].failure_count == "1" and runs[0].reason.startswith("SSH "), runs
    failed = e2e.events("check_failed", kept, pid, after=hooked)
    assert failed, e2e.tail()

    # By now the sweep the dropped VM shared with the kept one has run without it.
    later = e2e.events("check_ok", pid=pid, after=disabled) + \
        e2e.events("check_failed", pid=pid, after=disabled)
    assert kept in {e["VM_NAME"] for e in later}
    assert dropped not in {e["VM_NAME"] for e in later}, e2e.tail()
    assert e2e.hook_runs(vm=dropped) == [] and e2e.hook_runs(vm=added) == []
    status = show(e2e.session, "StatusText", "MainPID")
    assert int(status["MainPID"]) == pid
    assert status["StatusText"].startswith("2 VMs: "), status
