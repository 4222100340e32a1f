"""Self-healing end to end: the sandboxed daemon unit, the stand-in Azure, hooks, journal.

Each test starts the daemon with ``systemctl --user start`` (READY=1), breaks VMs in
the simulator, and reads what happened from ``journalctl --user -u azlin-lifecycle``,
from the recording hook, and from the Azure operations the simulator received.
"""

from __future__ import annotations

import json

from .conftest import UNIT, Stage, at, show, wait_for


def test_hung_vm_detected_hooked_restarted_and_healthy_after_grace(e2e: Stage) -> None:
    fleet, hung = e2e.vms[:3], e2e.vms[1]
    e2e.reset(fleet, healing={"grace_period_seconds": 15})
    pid = e2e.start()
    # First sweep: every VM healthy, on_healthy once each (the first healthy result).
    wait_for(lambda: {r.vm for r in e2e.hook_runs("on_healthy")} == set(fleet), 20,
             "on_healthy of every VM", e2e.tail)

    e2e.sim.set_ssh_mode(hung, "hung")
    failed = e2e.wait_event("check_failed", hung, pid, timeout=20)
    assert failed["MESSAGE"] == f"{hung}: unhealthy: SSH timed out (hung)", failed["MESSAGE"]
    assert failed["FAILURE_COUNT"] == "1" and failed["HEALTH_STATE"] == "unhealthy"
    assert failed["SYSLOG_IDENTIFIER"] == "azlin-lifecycle" and failed["_SYSTEMD_USER_UNIT"] == UNIT

    runs = wait_for(lambda: e2e.hook_runs("on_failure", hung), 10, "the on_failure hook")
    assert runs[0].failure_count == "1" and runs[0].reason == "SSH timed out (hung)", runs
    requested = e2e.wait_event("restart_requested", hung, pid)
    assert at(requested) > at(failed)
    done = e2e.wait_event("restart_succeeded", hung, pid, timeout=30)
    assert done["MESSAGE"].endswith("grace period 15s"), done["MESSAGE"]
    assert [(op["action"], op["status"]) for op in e2e.operations()] == [("restart", "Succeeded")]
    assert e2e.operations()[0]["vm"] == hung
    restarted = wait_for(lambda: e2e.hook_runs("on_restart", hung), 10, "the on_restart hook")
    assert restarted[0].restart_result == "success"

    # The VM is slow to come back: a failure within the grace period is not counted
    # and restarts nothing.
    e2e.sim.set_ssh_mode(hung, "refused")
    booting = e2e.wait_event("check_failed", hung, pid, after=done, timeout=20)
    assert booting["FAILURE_COUNT"] == "0", booting
    assert "grace period after a repair: not counted" in booting["MESSAGE"], booting["MESSAGE"]
    e2e.sim.set_ssh_mode(hung, "up")
    healthy = e2e.wait_event("vm_healthy", hung, pid, after=done, timeout=20)
    assert healthy["MESSAGE"] == f"{hung}: healthy again"
    wait_for(lambda: len(e2e.hook_runs("on_healthy", hung)) == 2, 10, "on_healthy again")

    assert len(e2e.operations()) == 1, e2e.operations()
    assert not e2e.events("healing_held", pid=pid), e2e.tail()
    # Only the hung VM had anything to report.
    assert {e["VM_NAME"] for e in e2e.events("check_failed")} == {hung}
    # on_failure fires on every failed check, the one during the grace period too.
    runs = e2e.hook_runs(vm=hung)
    assert [r.event for r in runs] == ["on_healthy", "on_failure", "on_restart", "on_failure",
                                       "on_healthy"], runs
    assert runs[3].failure_count == "0" and "grace period" in runs[3].reason, runs[3]


def test_whole_fleet_failing_opens_breaker_once_and_recovers(e2e: Stage) -> None:
    fleet = e2e.vms[:3]
    e2e.reset(fleet)
    for vm in fleet:
        e2e.sim.set_ssh_mode(vm, "refused")
    pid = e2e.start()
    opened = e2e.wait_event("breaker_open", pid=pid, timeout=20)
    assert opened["FAILING"] == "3" and opened["RUNNING"] == "3", opened
    held = [e2e.wait_event("healing_held", vm, pid, timeout=10) for vm in fleet]
    assert {e["HOLD"] for e in held} == {"breaker"}
    assert all("circuit breaker open" in e["MESSAGE"] for e in held)
    # One digest for the three (they share the hook; 3 of 3 is the breaker's "many").
    [digest] = wait_for(lambda: e2e.hook_runs("on_failure"), 10, "the on_failure digest")
    assert digest.vm == sorted(fleet)[0], digest
    assert digest.reason.startswith("3 VMs failed in one sweep: ") and all(
        f"{vm}: " in digest.reason for vm in fleet) and "circuit breaker open" in digest.reason
    assert "healing held: circuit breaker open" in show(e2e.session, "StatusText")["StatusText"]

    # A second failing sweep: still open, no second alert.
    for vm in fleet:
        e2e.wait_events("check_failed", vm, pid, count=2, timeout=25)
    for vm in fleet:
        e2e.sim.set_ssh_mode(vm, "up")
    closed = e2e.wait_event("breaker_closed", pid=pid, timeout=25)
    assert closed["FAILING"] == "0"
    wait_for(lambda: {e["VM_NAME"] for e in e2e.events("vm_healthy", pid=pid)} == set(fleet),
             10, "every VM healthy again")
    assert len(e2e.events("breaker_open")) == 1, e2e.tail()
    assert len(e2e.hook_runs("on_failure")) == 1  # the second sweep paged nobody
    assert e2e.operations() == []
    assert not e2e.events("restart_requested")
    assert "healing active" in show(e2e.session, "StatusText")["StatusText"]


def test_spent_restart_budget_holds_healing_and_says_why(e2e: Stage) -> None:
    fleet, broken = e2e.vms[:3], e2e.vms[0]
    e2e.reset(fleet, healing={"restart_budget": 1, "backoff_initial_seconds": 0,
                              "grace_period_seconds": 2})
    # A guest-side fault that a reboot does not cure (sshd refuses, the agent is down too,
    # so Azure corroborates): an unauthorised key would never restart at all.
    e2e.sim.set_ssh_mode(broken, "refused")
    e2e.sim.set_guest(broken, agent="not_ready")
    pid = e2e.start()
    done = e2e.wait_event("restart_succeeded", broken, pid, timeout=20)
    held = e2e.wait_event("healing_held", broken, pid, after=done, timeout=25)
    assert held["HOLD"] == "budget", held
    assert "restart budget spent (1 repairs in the last 1h)" in held["MESSAGE"], held["MESSAGE"]
    assert "healing of this VM paused until" in held["MESSAGE"]
    failure = wait_for(lambda: [r for r in e2e.hook_runs("on_failure", broken)
                                if "restart budget spent" in r.reason], 10,
                       "on_failure with the budget as REASON")
    assert failure[0].failure_count == "1"
    assert [(op["vm"], op["action"]) for op in e2e.operations()] == [(broken, "restart")]

    status = e2e.azlin("status")
    lines = status.stdout.splitlines()
    hold_line = [line for line in lines if line.startswith(f"{broken}: healing held back: ")]
    assert hold_line and "restart budget spent" in hold_line[0], status.stdout
    assert any(line.startswith("daemon: active (running)") for line in lines), status.stdout
    row = next(line for line in lines if line.startswith(broken + " "))
    assert "UNHEALTHY" in row and "restart succeeded" in row, row


def test_sigkill_during_restart_is_not_restarted_twice(e2e: Stage) -> None:
    fleet, victim = e2e.vms[:3], e2e.vms[2]
    e2e.reset(fleet)
    e2e.sim.hang_operations(victim, "restart")  # Azure never finishes this restart
    e2e.sim.set_ssh_mode(victim, "hung")
    pid = e2e.start()
    before = int(show(e2e.session, "NRestarts")["NRestarts"])
    e2e.wait_event("restart_requested", victim, pid, timeout=20)
    wait_for(lambda: [op for op in e2e.operations(victim) if op["status"] == "InProgress"], 10,
             "the restart in progress at Azure")

    e2e.session.systemctl("kill", "-s", "SIGKILL", UNIT)

    def restarted() -> dict[str, str] | None:
        unit = show(e2e.session, "ActiveState", "NRestarts", "MainPID")
        fresh = int(unit["NRestarts"]) == before + 1 and int(unit["MainPID"]) != pid
        return unit if fresh and unit["ActiveState"] == "active" else None

    now = wait_for(restarted, 20, "systemd to restart the killed daemon", e2e.tail)
    new_pid = int(now["MainPID"])
    manager_says = "\n".join(str(e.get("MESSAGE")) for e in e2e.entries())
    assert "Main process exited, code=killed, status=9/KILL" in manager_says, e2e.tail()

    interrupted = e2e.wait_event("restart_failed", victim, new_pid, timeout=10)
    assert "interrupted by a daemon stop" in interrupted["MESSAGE"], interrupted["MESSAGE"]
    assert "counts against the budget and its grace period stands" in interrupted["MESSAGE"]
    # The new daemon checks the VM (down: its restart never finished) twice and leaves it.
    checks = e2e.wait_events("check_failed", victim, new_pid, count=2, timeout=25)
    for check in checks:
        assert check["FAILURE_COUNT"] == "0", check
        assert "grace period after a repair: not counted" in check["MESSAGE"]
    restarts = [op for op in e2e.operations() if op["action"] == "restart"]
    assert [op["vm"] for op in restarts] == [victim], restarts
    assert not e2e.events("restart_requested", pid=new_pid)

    rows = {row["vm"]: row for row in json.loads(e2e.azlin("status", "--json").stdout)["vms"]}
    assert rows[victim]["last_repair"]["outcome"] == "interrupted", rows[victim]
