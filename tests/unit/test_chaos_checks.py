"""The chaos soak's invariants (bench/_chaos_checks.py) catch what they are meant to: each
is fed a history that breaks it, and one that keeps it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _chaos_checks as checks
from _chaos_daemon import Sample
from _chaos_faults import Injected, kill_times, schedule


def op(vm: str, started: float, status: str = "Succeeded", code: str | None = None,
       ident: str | None = None) -> dict[str, Any]:
    return {"id": ident or f"{vm}-{started}", "vm": vm, "action": "restart",
            "status": status, "started": started, "ended": started + 6,
            "error_code": code}


def hang(vm: str, at: float) -> Injected:
    return Injected(at, "ssh_hang", vm, "")


def test_one_repair_per_injected_guest_fault_is_kept() -> None:
    double, monitor, _ = checks.incidents([op("a", 130), op("a", 400)],
                                          [hang("a", 100), hang("a", 350)], set(), [])
    assert (double.violations, monitor.violations) == ([], [])
    assert double.checked == monitor.checked == 2


def test_a_second_restart_after_a_success_for_the_same_fault_is_a_double() -> None:
    double, _, after_kill = checks.incidents([op("a", 130), op("a", 200)], [hang("a", 100)],
                                             set(), [(150.0, True)])
    assert len(double.violations) == 1 and "a: restart at 200" in double.violations[0]
    assert after_kill == 1


def test_a_retry_after_a_failed_or_hung_restart_is_no_double() -> None:
    ops = [op("a", 130, "Failed", "InternalExecutionError"), op("a", 200),
           op("b", 130, "Failed", "OperationPreempted", ident="hung"), op("b", 200)]
    double, _, _ = checks.incidents(ops, [hang("a", 100), hang("b", 100)], {"hung"}, [])
    assert double.violations == []


def test_a_restart_that_cut_its_own_predecessor_short_is_a_double() -> None:
    ops = [op("a", 130, "Failed", "OperationPreempted"), op("a", 132)]
    double, _, _ = checks.incidents(ops, [hang("a", 100)], set(), [])
    assert len(double.violations) == 1


def test_a_repair_with_only_monitor_side_faults_is_flagged() -> None:
    faults = [Injected(100, "ssh_auth", "a", ""), Injected(100, "bastion", "", ""),
              hang("b", 500)]
    _, monitor, _ = checks.incidents([op("a", 130), op("b", 130)], faults, set(), [])
    assert len(monitor.violations) == 2  # b's hang came after its restart


def test_budget_counts_repairs_within_the_window() -> None:
    assert checks.budget([op("a", t) for t in (0, 100, 200)], 3, 3600).violations == []
    row = checks.budget([op("a", t) for t in (0, 100, 200, 300)], 3, 3600)
    assert len(row.violations) == 1
    assert checks.budget([op("a", t) for t in (0, 100, 200, 3700)], 3, 3600).violations == []


def ledger_row(vm: str, started: float, outcome: str = "succeeded") -> dict[str, Any]:
    return {"vm": vm, "action": "restart", "started": started, "ended": started + 6,
            "outcome": outcome}


def test_every_operation_needs_a_ledger_row_and_a_journal_entry() -> None:
    ops = [op("a", 130), op("a", 400)]
    ok = checks.recorded(ops, [ledger_row("a", 129.5), ledger_row("a", 399)],
                         [("a", "restart_requested")] * 2)
    assert ok.violations == []
    missing = checks.recorded(ops, [ledger_row("a", 129.5)], [("a", "restart_requested")])
    assert len(missing.violations) == 2  # no row for the second, one journal entry short


def test_on_restart_must_match_a_repair_once() -> None:
    rows, ops = [ledger_row("a", 130)], [op("a", 130)]
    fired = [("on_restart", "a", 137.0, "success")]
    assert checks.on_restart(fired, rows, ops).violations == []
    twice = [*fired, ("on_restart", "a", 150.0, "success")]
    assert len(checks.on_restart(twice, rows, ops).violations) == 1
    assert len(checks.on_restart([("on_restart", "b", 137.0, "failure")], rows,
                                 ops).violations) == 1
    assert checks.on_restart([], rows, ops).violations  # hooks never ran at all


def test_config_file_must_parse_and_keep_every_edit(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[vms.a]\nssh_failure_threshold = 3\n')
    assert checks.config_file(path, {("a", "ssh_failure_threshold"): 3}, 1, []).violations == []
    lost = checks.config_file(path, {("a", "ssh_failure_threshold"): 2}, 1, [])
    assert len(lost.violations) == 1
    path.write_text("[vms.a\n")
    assert checks.config_file(path, {}, 1, []).violations


def sample(at: float, rss: float, fds: int = 30, threads: int = 30,
           sockets: int = 10) -> Sample:
    return Sample(at, 45.0, rss, fds, threads, sockets)


def test_rss_is_judged_only_on_runs_of_15_minutes_or_more() -> None:
    steady = [sample(t, 80 + t / 3600 * 20) for t in range(600, 3600, 150)]
    rss, _ = checks.resources(steady, 0.0, 10)
    assert rss.verdict == "not judged (run shorter than 15 min)"
    rss, _ = checks.resources(steady, 0.0, 60)
    assert rss.verdict == "FAIL"  # 20 MB an hour
    flat_rss, _ = checks.resources([sample(t, 80) for t in range(600, 3600, 150)], 0.0, 60)
    assert flat_rss.verdict == "ok"


def test_fds_and_threads_beyond_the_connections_must_stay_flat() -> None:
    more_connections = [sample(t, 80, 30 + t // 100, 30 + t // 100, 10 + t // 100)
                        for t in range(0, 1200, 100)]
    assert checks.resources(more_connections, 0.0, 20)[1].verdict == "ok"
    leaking = [sample(t, 80, 30 + t // 100) for t in range(0, 1200, 100)]
    assert checks.resources(leaking, 0.0, 20)[1].verdict == "FAIL"
    assert checks.resources(leaking[:3], 0.0, 20)[1].verdict.startswith("not judged")


def test_the_schedule_is_the_seed_s_and_kills_come_at_least_every_3_minutes() -> None:
    import random

    vms = [f"vm-{i:03d}" for i in range(1, 13)]
    assert schedule(random.Random(5), vms, 3600, 8) == schedule(random.Random(5), vms, 3600, 8)
    kills = kill_times(random.Random(5), 3600)
    gaps = [b[0] - a[0] for a, b in zip([(0.0, False), *kills], kills, strict=False)]
    assert max(gaps) + 25 <= 180 and min(gaps[1:]) >= 76
    assert sum(1 for _, wait in kills if wait) * 3 >= len(kills)


def test_only_restarts_no_kill_of_ours_explains_count_as_deaths() -> None:
    """The 60-minute run's accounting: two watchdog kills among the soak's own SIGKILLs
    are two deaths, not one more for each later kill of ours (it counted 5)."""
    from _chaos_systemd import SystemdUnit

    unit = SystemdUnit(session=None, workdir=Path("/nonexistent"), env={})  # type: ignore[arg-type]
    counted = []
    for kills, restarts in ((1, 1), (2, 2), (2, 3), (2, 4), (3, 5), (4, 6), (4, 6)):
        unit.kills = [(0.0, False)] * kills
        counted.append(unit.unexplained(restarts))
    assert counted == [0, 0, 1, 1, 0, 0, 0]
