"""The metric families, built at scrape time from the daemon's books (a pull-model
``Collector``): nothing is kept for Prometheus between scrapes but a few counters.

Sources, all read under their own locks: the :class:`~azlin_lifecycle.fleet_book.FleetBook`
(each VM's latest check, breaker, repairs in flight, sweeps; under the daemon's view lock,
copied out at once), the state store (repairs, holds), the ARM pipeline's counters
(:data:`azlin_lifecycle.adapters.azure.limits.AZURE`), the ``[ha]`` role, and
:class:`EventCounts`, which counts holds, hook runs and leader changes from the daemon's
journal events (:func:`azlin_lifecycle.events.tap`). Names follow Prometheus's
conventions: base units, ``_total`` counters, ``_seconds``, timestamps rather than ages,
and labels of low cardinality (``vm``, ``resource_group``, ``action``, ``result``,
``reason``, ``state``, ``hook``, ``method``, ``code``, ``budget``, ``role``), never ids.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ...config import LifecycleConfig, MonitoringConfig
from ...errors import LifecycleConfigError
from ...events import Event
from ...models import HealthStatus, RepairOutcome, VMState
from ...tally import Tally
from ..azure.limits import AZURE
from . import Sources

PREFIX = "azlin_lifecycle_"
VM_LABELS = ["vm", "resource_group"]
HEALTH_STATES = ("healthy", "unhealthy", "needs_you")
# A repair's result class; one still in flight is counted when it ends. NOT_SENT (an
# interrupted repair found never to have reached Azure) stays "interrupted", so that
# settling it never makes a counter go down.
RESULTS: dict[str, str] = {RepairOutcome.SUCCEEDED: "succeeded", RepairOutcome.FAILED: "failed",
           RepairOutcome.INTERRUPTED: "interrupted", RepairOutcome.NOT_SENT: "interrupted",
           RepairOutcome.DRY_RUN: "dry_run"}
LEADER_EVENTS = (Event.LEADER_ELECTED, Event.LEADERSHIP_LOST, Event.STANDBY)
LOCK_TIMEOUT = 10.0


class EventCounts:
    """Counts from the daemon's journal events (an :data:`~azlin_lifecycle.events.tap`):
    holds by VM and reason, hook runs by hook and result, and leader changes (a leader
    other than the last one this monitor knew of: itself or another)."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._lock = threading.Lock()
        self._leader: str | None = None

    def __call__(self, event: Event, fields: Mapping[str, str]) -> None:
        if event is Event.HEALING_HELD:
            self.tally.add("holds", fields.get("VM_NAME", ""), fields.get("HOLD", "unknown"))
        elif event is Event.HOOK_RESULT:
            result = ("succeeded" if fields.get("SUCCESS") == "true" else
                      "timed_out" if fields.get("TIMED_OUT") == "true" else "failed")
            self.tally.add("hook_runs", fields.get("HOOK", ""), result)
        elif event in LEADER_EVENTS and (leader := fields.get("LEADER")):
            with self._lock:
                changed, self._leader = leader != self._leader, leader
            if changed:
                self.tally.add("leader_changes")


def health_state(status: HealthStatus) -> str:
    if status.healthy:
        return "healthy"
    return "needs_you" if status.needs_you else "unhealthy"


def resource_groups(config: LifecycleConfig, vms: Mapping[str, MonitoringConfig]) -> dict[str, str]:
    """Each VM's resource group as its checks resolve it ("" when none can be worked out)."""
    from ...azlin_settings import read_azlin_settings
    from ...targets import choose_resource_group

    try:
        azlin = read_azlin_settings()
    except LifecycleConfigError:
        azlin = None
    out = {}
    for vm, settings in vms.items():
        group = settings.resource_group or config.azure.resource_group
        if group is None and azlin is not None and vm in config.vms:
            chosen = choose_resource_group(config, vm, azlin)
            group = chosen.value if chosen else None
        out[vm] = group or ""
    return out


def build_info() -> GaugeMetricFamily:
    from ... import distribution_version

    info = GaugeMetricFamily(PREFIX + "build_info", "Always 1; the labels say which "
                             "azlin-lifecycle and Python run.",
                             labels=["version", "python_version"])
    info.add_metric([distribution_version(), platform.python_version()], 1)
    return info


class FleetCollector(Collector):
    def __init__(self, sources: Sources, config: Callable[[], LifecycleConfig],
                 events: EventCounts, azure: Tally = AZURE,
                 clock: Callable[[], float] = time.time) -> None:
        self.sources = sources
        self.config = config
        self.events = events
        self.azure = azure
        self.clock = clock
        self._build_info = build_info()

    def describe(self) -> list[Metric]:
        return []  # registering must not collect; the names are known at scrape time

    def collect(self) -> Iterator[Metric]:
        book, lock = self.sources.book, self.sources.lock
        # The loop changes the books under this lock: copy them out. A loop that holds it
        # this long is stuck (systemd's watchdog restarts it): fail this scrape, not hang.
        if not lock.acquire(timeout=LOCK_TIMEOUT):
            raise TimeoutError(f"the daemon's loop has held its books for {LOCK_TIMEOUT:g} s")
        try:
            enabled = dict(book.enabled)
            latest = {vm: s for vm, s in book.latest.items() if vm in enabled}
            last_healthy = {vm: t for vm, t in book.last_healthy.items() if vm in enabled}
            in_flight, breaker = len(book.in_flight), book.breaker_open
            sweeps, sweep_seconds = book.sweeps, book.sweep_seconds
            last_sweep = book.last_sweep
        finally:
            lock.release()
        config = self.config()
        groups = resource_groups(config, enabled)
        yield from self._vm_checks(latest, last_healthy, groups)
        yield from self._vm_healing(config, enabled, groups)
        yield from self._daemon(len(enabled), in_flight, breaker, sweeps, sweep_seconds,
                                None if last_sweep is None else last_sweep.timestamp())
        yield from self._azure()
        yield from self._hooks_and_ha()
        yield self._build_info

    # ------------------------------------------------------------------ per VM
    def _vm_checks(self, latest: Mapping[str, HealthStatus], last_healthy: Mapping[str, float],
                   groups: Mapping[str, str]) -> Iterator[Metric]:
        def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=VM_LABELS + (extra or []))

        success = gauge("vm_check_success", "1 if the VM's latest check found it healthy, "
                        "else 0.")
        duration = gauge("vm_check_duration_seconds", "How long the VM's latest check took "
                         "(from its sweep's start: the power listing, then SSH).")
        failures = gauge("vm_consecutive_failures", "Consecutive failed checks that count "
                         "toward a restart (0: healthy, stopped, in grace, or needs you).")
        power = gauge("vm_power_state", "1 for the power state Azure reported at the VM's "
                      "latest check, 0 for the others.", ["state"])
        health = gauge("vm_health_state", "1 for the VM's health at its latest check "
                       "(healthy, unhealthy, needs_you: a fault only you can fix), 0 for "
                       "the others.", ["state"])
        checked = gauge("vm_last_check_timestamp_seconds", "When the VM's latest check "
                        "ended (Unix time).")
        succeeded = gauge("vm_last_success_timestamp_seconds", "When a check last found "
                          "the VM healthy (Unix time).")
        for vm, status in sorted(latest.items()):
            labels = [vm, groups.get(vm, "")]
            success.add_metric(labels, 1.0 if status.healthy else 0.0)
            duration.add_metric(labels, status.check_duration_seconds)
            failures.add_metric(labels, status.ssh_failures)
            for state in VMState:
                power.add_metric([*labels, state.value], 1.0 if status.state is state else 0.0)
            now = health_state(status)
            for state_name in HEALTH_STATES:
                health.add_metric([*labels, state_name], 1.0 if state_name == now else 0.0)
            checked.add_metric(labels, status.timestamp.timestamp())
            if vm in last_healthy:
                succeeded.add_metric(labels, last_healthy[vm])
        yield from (success, duration, failures, power, health, checked, succeeded)

    def _vm_healing(self, config: LifecycleConfig, enabled: Mapping[str, MonitoringConfig],
                    groups: Mapping[str, str]) -> Iterator[Metric]:
        store = self.sources.store
        repairs = CounterMetricFamily(
            PREFIX + "vm_repairs", "Repairs ended, by action (restart, start, redeploy) and "
            "result (succeeded, failed, interrupted, dry_run); from the state store, so "
            "they survive a daemon restart.", labels=[*VM_LABELS, "action", "result"])
        counts: dict[tuple[str, str, str], int] = {}
        for (vm, action, outcome), n in store.repair_counts().items():
            result = RESULTS.get(outcome)  # None: in flight, or an outcome unknown here
            if vm in enabled and result is not None:
                key = (vm, action, result)
                counts[key] = counts.get(key, 0) + n
        for (vm, action, result), count in sorted(counts.items()):
            repairs.add_metric([vm, groups.get(vm, ""), action, result], count)
        yield repairs

        holds = CounterMetricFamily(
            PREFIX + "vm_holds", "Repairs the safety rules held back since the daemon "
            "started, by reason (grace, in_flight, budget, backoff, breaker, cap, "
            "agent_ready).", labels=[*VM_LABELS, "reason"])
        for (vm, reason), held_back in sorted(self.events.tally.get("holds").items()):
            if vm in enabled:
                holds.add_metric([vm, groups.get(vm, ""), reason], held_back)
        yield holds

        held = GaugeMetricFamily(PREFIX + "vm_healing_held", "1 while a due repair of the "
                                 "VM is held back (azlin lifecycle status says why).",
                                 labels=VM_LABELS)
        states = store.all_healing_states()
        budget = GaugeMetricFamily(
            PREFIX + "vm_restart_budget_remaining", "Repairs the VM may still have in the "
            "budget window ([healing] restart_budget per budget_window_seconds).",
            labels=VM_LABELS)
        healing = config.healing
        since = self.clock() - healing.budget_window_seconds
        spent: dict[str, int] = {}
        for record in store.repairs(None, since):
            if record.counts_against_budget:
                spent[record.vm] = spent.get(record.vm, 0) + 1
        for vm in sorted(enabled):
            labels = [vm, groups.get(vm, "")]
            state = states.get(vm)
            held.add_metric(labels, 1.0 if state is not None and state.held_reason else 0.0)
            budget.add_metric(labels, max(0, healing.restart_budget - spent.get(vm, 0)))
        yield held
        yield budget

    # ------------------------------------------------------------------ the daemon
    def _daemon(self, monitored: int, in_flight: int, breaker: bool, sweeps: int,
                sweep_seconds: float, last_sweep: float | None) -> Iterator[Metric]:
        yield GaugeMetricFamily(PREFIX + "vms_monitored", "VMs enabled in the configuration.",
                                value=monitored)
        yield SummaryMetricFamily(
            PREFIX + "sweep_duration_seconds", "Sweeps (batches of VMs due together) and "
            "their duration, from dispatch to the last check's end.", count_value=sweeps,
            sum_value=sweep_seconds)
        if last_sweep is not None:
            yield GaugeMetricFamily(PREFIX + "last_sweep_timestamp_seconds", "When the last "
                                    "sweep ended (Unix time): alert when it stops moving.",
                                    value=last_sweep)
        yield GaugeMetricFamily(PREFIX + "breaker_open", "1 while the fleet circuit breaker "
                                "is open (no repairs: too much of the fleet fails at once).",
                                value=1.0 if breaker else 0.0)
        yield GaugeMetricFamily(PREFIX + "repairs_in_flight", "Repairs Azure is working on "
                                "now.", value=in_flight)

    def _azure(self) -> Iterator[Metric]:
        azure = self.azure
        requests = CounterMetricFamily(PREFIX + "azure_requests", "Answers from Azure "
                                       "Resource Manager, by HTTP method and status code.",
                                       labels=["method", "code"])
        for (method, code), n in sorted(azure.get("requests").items()):
            requests.add_metric([method, code], n)
        yield requests
        yield CounterMetricFamily(PREFIX + "azure_throttled", "Answers 429 Too Many "
                                  "Requests from Azure.", value=azure.value("throttled"))
        yield CounterMetricFamily(PREFIX + "azure_retry_after", "Answers (429, 503) that "
                                  "asked to wait with Retry-After.",
                                  value=azure.value("retry_after"))
        yield CounterMetricFamily(PREFIX + "azure_retry_after_seconds", "The waits those "
                                  "Retry-After headers asked for, added up.",
                                  value=azure.value("retry_after_seconds"))
        remaining = GaugeMetricFamily(PREFIX + "azure_ratelimit_remaining", "Requests left "
                                      "in each Azure rate-limit budget "
                                      "(x-ms-ratelimit-remaining-*), as last answered.",
                                      labels=["budget"])
        for (budget,), n in sorted(azure.get("remaining").items()):
            remaining.add_metric([budget], n)
        yield remaining

    def _hooks_and_ha(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(PREFIX + "hook_runs", "Hooks run since the daemon "
                                   "started, by hook and result (succeeded, failed, "
                                   "timed_out).", labels=["hook", "result"])
        for (hook, result), n in sorted(self.events.tally.get("hook_runs").items()):
            runs.add_metric([hook, result], n)
        yield runs
        ha = self.sources.ha
        if ha is None:
            return
        role = GaugeMetricFamily(PREFIX + "ha_role", "[ha]: 1 for this monitor's role "
                                 "(leader: it repairs and fires hooks; standby), 0 for the "
                                 "other.", labels=["role"])
        now = ha.view().role.value
        for name in ("leader", "standby"):
            role.add_metric([name], 1.0 if name == now else 0.0)
        yield role
        yield CounterMetricFamily(PREFIX + "ha_leader_changes", "[ha]: times this monitor "
                                  "saw a new leader (itself or another) take the lease.",
                                  value=self.events.tally.value("leader_changes"))
