"""The Prometheus collector: one test per metric family, read from real books (a FleetBook,
a StateStore on disk, the ARM pipeline's counters, journal events through the tap), and
the whole exposition linted by promtool."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from azlin_lifecycle.adapters.azure.limits import RateLimitWatch
from azlin_lifecycle.adapters.prometheus import Sources
from azlin_lifecycle.adapters.prometheus.collector import EventCounts, FleetCollector
from azlin_lifecycle.config import (
    AzureSettings,
    HealingSettings,
    LifecycleConfig,
    MonitoringConfig,
)
from azlin_lifecycle.events import Event, log_event, tap
from azlin_lifecycle.fleet_book import FleetBook
from azlin_lifecycle.leadership import LeadershipView, Role
from azlin_lifecycle.models import (
    HealthStatus,
    HoldKind,
    RepairAction,
    SshFault,
    VMState,
)
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.tally import Tally
from tests.integration.conftest import require

log = logging.getLogger("test.metrics")
NOW = 1_800_000_000.0
CONFIG = LifecycleConfig(
    azure=AzureSettings(resource_group="rg-default"),
    healing=HealingSettings(restart_budget=3, budget_window_seconds=3600),
    vms={"web-1": MonitoringConfig(resource_group="rg-a"), "web-2": MonitoringConfig(),
         "off": MonitoringConfig(enabled=False)})


def status(vm: str, *, healthy: bool = True, failures: int = 0,
           state: VMState = VMState.RUNNING, fault: SshFault | None = None,
           duration: float = 0.25, at: float = NOW - 10) -> HealthStatus:
    return HealthStatus(vm, state, healthy, failures, healthy, None if healthy else "why",
                        check_duration_seconds=duration, fault=fault,
                        timestamp=dt.datetime.fromtimestamp(at, dt.UTC))


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.store = StateStore(tmp / "state.db")
        self.book = FleetBook(self.store)
        self.book.enabled = CONFIG.enabled_vms()
        self.events = EventCounts()
        self.azure = Tally()
        self.ha: Any = None
        self.lock = threading.Lock()

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(Sources(self.book, self.lock, self.store, self.ha),
                                         lambda: CONFIG, self.events, self.azure,
                                         clock=lambda: NOW))
        return registry

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry().get_sample_value(name, labels)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.store.close()


def vm1(**more: str) -> dict[str, str]:
    return {"vm": "web-1", "resource_group": "rg-a", **more}


def vm2(**more: str) -> dict[str, str]:
    return {"vm": "web-2", "resource_group": "rg-default", **more}


def test_check_success_per_vm_with_its_resource_group(rig: Rig) -> None:
    rig.book.latest.update({"web-1": status("web-1"),
                            "web-2": status("web-2", healthy=False, failures=2)})
    assert rig.value("azlin_lifecycle_vm_check_success", **vm1()) == 1.0
    assert rig.value("azlin_lifecycle_vm_check_success", **vm2()) == 0.0
    # A VM disabled since its check is not reported.
    rig.book.latest["off"] = status("off")
    assert rig.value("azlin_lifecycle_vm_check_success", vm="off", resource_group="rg-default") \
        is None


def test_check_duration_in_seconds(rig: Rig) -> None:
    rig.book.latest["web-1"] = status("web-1", duration=1.5)
    assert rig.value("azlin_lifecycle_vm_check_duration_seconds", **vm1()) == 1.5


def test_consecutive_failures(rig: Rig) -> None:
    rig.book.latest["web-2"] = status("web-2", healthy=False, failures=3)
    assert rig.value("azlin_lifecycle_vm_consecutive_failures", **vm2()) == 3.0


def test_power_state_is_one_for_the_current_state_only(rig: Rig) -> None:
    rig.book.latest["web-1"] = status("web-1", healthy=False, state=VMState.DEALLOCATED)
    values = {s.value: rig.value("azlin_lifecycle_vm_power_state", **vm1(state=s.value))
              for s in VMState}
    assert values == {s.value: 1.0 if s is VMState.DEALLOCATED else 0.0 for s in VMState}


def test_health_state_healthy_unhealthy_or_needs_you(rig: Rig) -> None:
    rig.book.latest.update({
        "web-1": status("web-1", healthy=False, failures=1, fault=SshFault.HUNG),
        "web-2": status("web-2", healthy=False, fault=SshFault.AUTH_FAILED)})

    def states(labels: Any) -> dict[str, float | None]:
        return {s: rig.value("azlin_lifecycle_vm_health_state", **labels(state=s))
                for s in ("healthy", "unhealthy", "needs_you")}

    assert states(vm1) == {"healthy": 0.0, "unhealthy": 1.0, "needs_you": 0.0}
    assert states(vm2) == {"healthy": 0.0, "unhealthy": 0.0, "needs_you": 1.0}


def test_last_check_and_last_success_are_timestamps(rig: Rig) -> None:
    rig.book.latest["web-1"] = status("web-1", healthy=False, at=NOW - 5)
    rig.book.last_healthy["web-1"] = NOW - 600
    assert rig.value("azlin_lifecycle_vm_last_check_timestamp_seconds", **vm1()) == NOW - 5
    assert rig.value("azlin_lifecycle_vm_last_success_timestamp_seconds", **vm1()) == NOW - 600
    rig.book.latest["web-2"] = status("web-2", healthy=False)
    assert rig.value("azlin_lifecycle_vm_last_success_timestamp_seconds", **vm2()) is None


def test_repairs_by_action_and_result_from_the_store(rig: Rig) -> None:
    store = rig.store
    ok = store.begin_repair("web-1", RepairAction.RESTART, dry_run=False, grace_until=0)
    store.end_repair(ok, success=True, error=None, grace_until=None)
    bad = store.begin_repair("web-1", RepairAction.RESTART, dry_run=False, grace_until=0)
    store.end_repair(bad, success=False, error="x", grace_until=None)
    store.begin_repair("web-1", RepairAction.REDEPLOY, dry_run=True, grace_until=0)
    store.begin_repair("web-2", RepairAction.START, dry_run=False, grace_until=0)  # in flight
    name = "azlin_lifecycle_vm_repairs_total"
    assert rig.value(name, **vm1(action="restart", result="succeeded")) == 1.0
    assert rig.value(name, **vm1(action="restart", result="failed")) == 1.0
    assert rig.value(name, **vm1(action="redeploy", result="dry_run")) == 1.0
    assert rig.value(name, **vm2(action="start", result="interrupted")) is None
    # Interrupted by a stop, then found never to have reached Azure: still one
    # "interrupted", so the counter never goes down.
    [record] = store.interrupt_unfinished()
    assert rig.value(name, **vm2(action="start", result="interrupted")) == 1.0
    store.settle_interrupted(record.id, sent=False, note="never sent")
    assert rig.value(name, **vm2(action="start", result="interrupted")) == 1.0


def test_holds_by_reason_are_counted_from_the_journal_events(rig: Rig) -> None:
    untap, level = tap(rig.events), logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.ERROR)  # counted whatever the log level
        for kind in (HoldKind.BUDGET, HoldKind.BUDGET, HoldKind.BREAKER):
            log_event(log, Event.HEALING_HELD, "held", vm="web-1", level=logging.WARNING,
                      hold=kind)
    finally:
        untap()
        logging.getLogger().setLevel(level)
    log_event(log, Event.HEALING_HELD, "after the tap is gone", vm="web-1", hold=HoldKind.CAP)
    name = "azlin_lifecycle_vm_holds_total"
    assert rig.value(name, **vm1(reason="budget")) == 2.0
    assert rig.value(name, **vm1(reason="breaker")) == 1.0
    assert rig.value(name, **vm1(reason="cap")) is None


def test_healing_held_now_from_the_store(rig: Rig) -> None:
    rig.store.set_held_reasons({"web-1": "restart budget spent", "web-2": None})
    assert rig.value("azlin_lifecycle_vm_healing_held", **vm1()) == 1.0
    assert rig.value("azlin_lifecycle_vm_healing_held", **vm2()) == 0.0


def test_budget_left_counts_real_repairs_in_the_window(rig: Rig) -> None:
    store = rig.store
    for when in (NOW - 7200, NOW - 100, NOW - 50):  # the first is outside the window
        store.begin_repair("web-1", RepairAction.RESTART, dry_run=False, grace_until=0,
                           now=when)
    store.begin_repair("web-1", RepairAction.RESTART, dry_run=True, grace_until=0, now=NOW - 10)
    assert rig.value("azlin_lifecycle_vm_restart_budget_remaining", **vm1()) == 1.0
    assert rig.value("azlin_lifecycle_vm_restart_budget_remaining", **vm2()) == 3.0


def test_daemon_gauges_breaker_in_flight_and_monitored(rig: Rig) -> None:
    rig.book.breaker_open = True
    rig.book.in_flight.update({"web-1", "web-2"})
    assert rig.value("azlin_lifecycle_breaker_open") == 1.0
    assert rig.value("azlin_lifecycle_repairs_in_flight") == 2.0
    assert rig.value("azlin_lifecycle_vms_monitored") == 2.0  # "off" is not enabled


def test_sweeps_and_their_duration(rig: Rig) -> None:
    assert rig.value("azlin_lifecycle_last_sweep_timestamp_seconds") is None
    rig.book.swept([status("web-1", duration=0.5), status("web-2", duration=2.0)])
    rig.book.swept([status("web-1", duration=1.0)])
    assert rig.value("azlin_lifecycle_sweep_duration_seconds_count") == 2.0
    assert rig.value("azlin_lifecycle_sweep_duration_seconds_sum") == 3.0
    last = rig.value("azlin_lifecycle_last_sweep_timestamp_seconds")
    assert last is not None and abs(last - time.time()) < 5


def test_azure_requests_throttling_retry_after_and_budgets(rig: Rig) -> None:
    watch = RateLimitWatch(tally=rig.azure)

    def answer(method: str, code: int, **headers: str) -> None:
        watch.on_response(SimpleNamespace(http_request=SimpleNamespace(method=method),
                                          http_response=SimpleNamespace(status_code=code,
                                                                        headers=headers)))

    answer("GET", 200, **{"x-ms-ratelimit-remaining-subscription-reads": "249"})
    answer("GET", 429, **{"Retry-After": "7"})
    answer("POST", 503, **{"Retry-After": "3"})
    answer("POST", 202, **{"x-ms-ratelimit-remaining-resource":
                           "Microsoft.Compute/UpdateVM3Min;1499"})
    answer("GET", 200, **{"x-ms-ratelimit-remaining-subscription-reads": "248"})
    assert rig.value("azlin_lifecycle_azure_requests_total", method="GET", code="200") == 2.0
    assert rig.value("azlin_lifecycle_azure_requests_total", method="GET", code="429") == 1.0
    assert rig.value("azlin_lifecycle_azure_throttled_total") == 1.0
    assert rig.value("azlin_lifecycle_azure_retry_after_total") == 2.0
    assert rig.value("azlin_lifecycle_azure_retry_after_seconds_total") == 10.0
    remaining = "azlin_lifecycle_azure_ratelimit_remaining"
    assert rig.value(remaining, budget="x-ms-ratelimit-remaining-subscription-reads") == 248.0
    assert rig.value(remaining, budget="Microsoft.Compute/UpdateVM3Min") == 1499.0


def test_hook_runs_by_hook_and_result(rig: Rig) -> None:
    untap = tap(rig.events)
    try:
        for success, timed_out in ((True, False), (False, False), (False, True)):
            log_event(log, Event.HOOK_RESULT, "hook", vm="web-1", hook="on_failure",
                      success=success, timed_out=timed_out)
    finally:
        untap()
    name = "azlin_lifecycle_hook_runs_total"
    for result in ("succeeded", "failed", "timed_out"):
        assert rig.value(name, hook="on_failure", result=result) == 1.0


def test_ha_role_and_leader_changes_only_with_ha(rig: Rig) -> None:
    assert rig.value("azlin_lifecycle_ha_role", role="leader") is None
    view = [LeadershipView(Role.STANDBY, NOW, "mon-1 leads", leader="mon-1")]
    rig.ha = SimpleNamespace(view=lambda: view[0])
    untap = tap(rig.events)
    try:
        log_event(log, Event.STANDBY, "standby", ha_role=Role.STANDBY, leader="mon-1")
        log_event(log, Event.STANDBY, "standby again", ha_role=Role.STANDBY, leader="mon-1")
        assert rig.value("azlin_lifecycle_ha_role", role="standby") == 1.0
        assert rig.value("azlin_lifecycle_ha_leader_changes_total") == 1.0
        log_event(log, Event.LEADER_ELECTED, "leader", ha_role=Role.LEADER, leader="mon-2")
        view[0] = LeadershipView(Role.LEADER, NOW, "holds the lease", leader="mon-2")
    finally:
        untap()
    assert rig.value("azlin_lifecycle_ha_role", role="leader") == 1.0
    assert rig.value("azlin_lifecycle_ha_role", role="standby") == 0.0
    assert rig.value("azlin_lifecycle_ha_leader_changes_total") == 2.0


def test_build_info(rig: Rig) -> None:
    samples = [s for m in rig.registry().collect() if m.name == "azlin_lifecycle_build_info"
               for s in m.samples]
    assert len(samples) == 1 and samples[0].value == 1.0
    assert set(samples[0].labels) == {"version", "python_version"}


def test_a_scrape_waits_for_the_loop_to_let_go_of_the_books(rig: Rig) -> None:
    rig.book.latest["web-1"] = status("web-1")
    got: list[float | None] = []
    with rig.lock:
        reader = threading.Thread(target=lambda: got.append(
            rig.value("azlin_lifecycle_vm_check_success", **vm1())))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and got == []
        rig.book.latest["web-1"] = status("web-1", healthy=False)
    reader.join(5)
    assert got == [0.0]


def test_the_exposition_passes_promtools_lint(rig: Rig) -> None:
    require(shutil.which("promtool") is not None, "promtool (Debian's prometheus) is missing")
    rig.book.latest.update({"web-1": status("web-1"), "web-2": status("web-2", healthy=False)})
    rig.book.swept(rig.book.latest.values())
    rid = rig.store.begin_repair("web-2", RepairAction.RESTART, dry_run=False, grace_until=0)
    rig.store.end_repair(rid, success=True, error=None, grace_until=None)
    rig.ha = SimpleNamespace(view=lambda: LeadershipView(Role.LEADER, NOW, "x"))
    text = generate_latest(rig.registry())
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          timeout=30)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, b""), text.decode()


def test_a_tap_that_raises_never_stops_an_event(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event, fields: Any) -> None:
        raise RuntimeError("a bug in a counter")

    untap = tap(broken)
    try:
        with caplog.at_level(logging.INFO, logger="test.metrics"):
            log_event(log, Event.BREAKER_OPEN, "still told")
    finally:
        untap()
    assert [r.getMessage() for r in caplog.records] == ["still told"]
