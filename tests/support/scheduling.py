"""How ``make pytest`` spreads the suite over pytest-xdist workers (``-n 8 --dist loadgroup``).

Nearly all of the suite's time is waiting (simulated boots, check intervals, leases,
demos), not CPU, so it runs on more workers than this machine has cores. Two rules on top
of xdist's ``loadgroup`` (tests/support/xdist_scheduler.py):

- Tests that share one resource run on one worker, one after another (``GROUPS``): all
  of tests/systemd and tests/e2e share the systemd user session (the harness holds a
  machine-wide lock, tests/support/user_session.py), and a module whose module-scoped
  fixture is expensive is one unit, so that fixture runs once. (The groups go by path:
  pytest-xdist 3.8's ``xdist_group`` mark has no effect under pytest 9, which no longer
  keeps a node's id in the ``_nodeid`` that xdist rewrites.)
- Longest first: of the work units not yet started (a test, or a whole group), a worker
  gets the one expected to take longest (``EXPECTED_SECONDS``; any other unit counts as
  short), but a worker busy with a long unit gets a short one queued behind it. (A
  worker holds the test after the one it runs, to know which fixtures to tear down; with
  plain longest-first that next test would be the next-longest, and would wait the
  whole long one out.)

The figures are seconds of a whole unit on a 2-core machine, rounded; they only order
the work (tests/unit/test_suite_schedule.py checks that every name still exists).
"""

from __future__ import annotations

USER_SESSION_GROUP = "user-session"

# Node id prefix -> the group (one xdist worker, in collection order) its tests belong to.
GROUPS: dict[str, str] = {
    "tests/e2e/": USER_SESSION_GROUP,
    "tests/systemd/": USER_SESSION_GROUP,
    # 60 s of watching in one module-scoped fixture.
    "tests/integration/test_fault_taxonomy.py::": "fault-taxonomy",
}

# Units of ~10 s or more: a group, or a test's node id.
EXPECTED_SECONDS: dict[str, float] = {
    "tests/integration/test_bench_smoke.py::test_fleet_benchmark_quick_run_prints_its_table":
        160,
    USER_SESSION_GROUP: 145,
    "tests/integration/test_chaos_soak.py::test_a_two_minute_chaos_soak_keeps_every_invariant":
        160,
    "tests/integration/test_readme.py::test_make_demo_ha_block": 65,
    "fault-taxonomy": 62,
    "tests/integration/test_ha_daemons.py::"
    "test_one_acts_and_a_leader_killed_mid_restart_is_not_restarted_twice": 57,
    "tests/integration/test_bench_smoke.py::test_failover_benchmark_prints_its_table": 42,
    "tests/integration/test_ha_daemons.py::"
    "test_a_leader_cut_off_from_storage_stops_repairing_before_the_other_starts": 37,
    "tests/integration/test_ha_daemons.py::test_storage_gone_nobody_repairs_and_both_say_why":
        35,
    "tests/integration/test_readme.py::test_make_demo_block": 33,
    "tests/integration/test_daemon_simulator.py::"
    "test_hung_vm_is_detected_restarted_and_healthy_again": 20,
    "tests/integration/test_resolved_daemon.py::"
    "test_addresses_from_azure_are_used_and_followed_after_a_new_ip": 20,
    "tests/integration/test_resolved_daemon.py::"
    "test_private_only_vm_is_judged_by_azure_and_restarted_when_its_agent_is_down": 20,
    "tests/integration/test_ha_storage.py::"
    "test_failover_keeps_the_in_flight_repair_and_the_old_leader_cannot_write": 16,
    "tests/integration/test_healer_simulator.py::"
    "test_failed_and_unfinished_restarts_land_in_the_result": 11,
    "tests/integration/test_bench_smoke.py::test_soak_benchmark_prints_a_row_per_sweep": 13,
    "tests/integration/test_readme.py::test_rehearse_block": 12,
    "tests/integration/test_daemon_simulator.py::"
    "test_whole_fleet_failing_opens_the_breaker_and_recovers": 10,
    "tests/integration/test_private_fleet.py::"
    "test_bastion_down_for_every_vm_for_a_minute_restarts_nothing[down]": 75,
    "tests/integration/test_private_fleet.py::"
    "test_bastion_down_for_every_vm_for_a_minute_restarts_nothing[hang]": 75,
    "tests/integration/test_private_fleet.py::"
    "test_a_private_vm_that_hangs_is_seen_through_bastion_restarted_once_and_healthy": 30,
    "tests/integration/test_prometheus_server.py::"
    "test_prometheus_sees_a_hung_vm_fail_get_restarted_once_and_recover": 23,
    "tests/integration/test_after_a_kill.py::"
    "test_a_kill_after_the_post_keeps_the_hold_and_never_posts_twice": 17,
    "tests/integration/test_after_a_kill.py::"
    "test_a_kill_between_the_intent_and_the_post_costs_no_quarter_hour": 12,
}
# A worker busy with a unit this long gets a short unit queued behind it.
LONG_SECONDS = 10.0


def group_of(nodeid: str) -> str | None:
    return next((group for prefix, group in GROUPS.items() if nodeid.startswith(prefix)),
                None)


def expected_seconds(scope: str) -> float:
    return EXPECTED_SECONDS.get(scope, 0.0)
