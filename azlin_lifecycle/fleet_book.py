"""The daemon's books on its fleet: what each VM did last, what was told about it, the
circuit breaker, the repairs in flight, the status line and :class:`DaemonStatus`.

No threads and no adapters: the loop (:mod:`azlin_lifecycle.daemon`) hands results in,
under its own lock, and gets back what to tell. Journal events are logged here (they are
``logging`` records); the hooks to fire are returned as :class:`Tell` items, because
firing them is the loop's business (a standby fires none).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import alerts
from .announcements import Announcements, Tell
from .config import HealingSettings, HookType, MonitoringConfig
from .errors import LifecycleError
from .events import Event, log_event
from .leadership import LeadershipView
from .models import Announced, HealthStatus, RepairRecord
from .paging import Pager
from .policy import Settlement
from .rules import FleetView, breaker_threshold, breaker_trips, fleet_view, status_line, transition
from .state import StateStore

log = logging.getLogger("azlin_lifecycle.daemon")  # the daemon's events, as before the split


@dataclass(frozen=True)
class DaemonStatus:
    running: bool
    pid: int | None  # None: this daemon has not started
    uptime: dt.timedelta
    monitored_vms: list[str]
    last_sweep: dt.datetime | None = None
    healthy: int = 0
    failing: list[str] = field(default_factory=list)
    needs_you: dict[str, str] = field(default_factory=dict)  # vm -> what to fix
    held: dict[str, str] = field(default_factory=dict)
    breaker_open: bool = False
    repairs_in_flight: list[str] = field(default_factory=list)
    config_error: str | None = None
    status_text: str = ""
    leadership: LeadershipView | None = None  # None: [ha] is off, this daemon acts alone


@dataclass(frozen=True)
class Reported:
    """What reporting one result asks of the loop."""

    tells: list[Tell]
    power_changed: bool  # forget the VM's address: a dynamic IP changes with power


class FleetBook:
    """Per-VM and fleet bookkeeping for one daemon."""

    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store  # None until the daemon starts (get_status() may come first)
        self.enabled: Mapping[str, MonitoringConfig] = {}
        self.latest: dict[str, HealthStatus] = {}
        self.told: Announcements | None = None  # what the hooks told, kept; from begin()
        self.last_healthy: dict[str, float] = {}
        self.in_flight: set[str] = set()
        self.unannounced: set[str] = set()  # healthy during its repair, not yet announced
        self._pager: Pager | None = None  # the sweep's on_failure alerts; from begin()
        self.breaker_open = False
        self.last_sweep: dt.datetime | None = None
        self.sweeps, self.sweep_seconds, self.last_sweep_seconds = 0, 0.0, 0.0  # for metrics
        self.status_text = ""
        self.dirty = True  # the status line needs recomputing

    @property
    def _told(self) -> Announcements:
        assert self.told is not None, "begin() comes first"
        return self.told

    @property
    def pager(self) -> Pager:
        assert self._pager is not None, "begin() comes first"
        return self._pager

    @property
    def _db(self) -> StateStore:
        assert self.store is not None, "the daemon gives its books a store when it starts"
        return self.store

    # ------------------------------------------------------------------ the fleet
    def begin(self, enabled: Mapping[str, MonitoringConfig], started_at: float,
              pid: int) -> Announcements:
        """A daemon starts: seed with what the last daemon saw (so a restart announces
        changes, not the whole fleet) and record who runs, with the breaker closed."""
        self.enabled = enabled
        latest = self._db.latest(enabled)
        self.latest.update(latest)
        for vm, status in latest.items():
            if status.healthy:
                self.last_healthy[vm] = status.timestamp.timestamp()
        self.told = Announcements(self._db, latest)
        self._pager = Pager(self.told, lambda: self.enabled)
        for fact, value in (("started_at", started_at), ("pid", pid), ("breaker_open", False)):
            self._db.set_daemon_fact(fact, value)
        return self.told

    def set_enabled(self, enabled: Mapping[str, MonitoringConfig]) -> None:
        self.enabled = enabled
        for vm in [vm for vm in self.latest if vm not in enabled]:
            del self.latest[vm]
        self.dirty = True

    def swept(self, results: Iterable[HealthStatus]) -> list[HealthStatus]:
        """A batch is complete: its results of VMs still enabled. Its duration is its
        slowest check's (each check's duration runs from the batch's start)."""
        self.last_sweep = dt.datetime.now(dt.UTC)
        self.dirty = True
        done = list(results)
        self.last_sweep_seconds = max((r.check_duration_seconds for r in done), default=0.0)
        self.sweeps += 1
        self.sweep_seconds += self.last_sweep_seconds
        return [r for r in done if r.vm_name in self.enabled]

    def fleet(self) -> FleetView:
        return fleet_view(len(self.enabled),
                          (s for vm, s in self.latest.items() if vm in self.enabled),
                          len(self.in_flight), self.breaker_open)

    def for_decision(self, fleet: FleetView) -> FleetView:
        """``fleet`` with the repairs in flight as they are now."""
        return dataclasses.replace(fleet, in_flight=len(self.in_flight))

    def update_breaker(self, healing: HealingSettings) -> FleetView:
        """Open or close the circuit breaker on the fleet's latest results; the fleet view."""
        fleet = self.fleet()
        trips = breaker_trips(healing, fleet.running, fleet.failing)
        if trips != self.breaker_open:
            self.dirty = True
            self._db.set_daemon_fact("breaker_open", trips)
        if trips and not self.breaker_open:
            self.breaker_open = True
            log_event(log, Event.BREAKER_OPEN,
                      f"circuit breaker open: {fleet.failing} of {fleet.running} running VMs "
                      "fail at once; the monitor's own network is the likelier culprit, so no "
                      "VM is restarted until the fleet looks healthy again",
                      level=logging.ERROR, failing=fleet.failing, running=fleet.running)
        elif not trips and self.breaker_open:
            self.breaker_open = False
            log_event(log, Event.BREAKER_CLOSED,
                      f"circuit breaker closed: {fleet.failing} of {fleet.running} running VMs "
                      "failing; healing resumes", failing=fleet.failing, running=fleet.running)
        return dataclasses.replace(fleet, breaker_open=self.breaker_open,
                                   many=breaker_threshold(healing, fleet.running))

    # ------------------------------------------------------------------ one VM
    def arrived(self, status: HealthStatus) -> Reported | None:
        """One VM's check is in (None: the VM was disabled meanwhile): journal it, note
        what changed since what was told, and record the hooks it owes (with what is now
        told) before the loop fires them."""
        vm = status.vm_name
        if vm not in self.enabled:
            return None
        self.latest[vm] = status
        self.dirty = True
        return self.report(status, self._told.told.get(vm))

    def report(self, status: HealthStatus, prev: Announced | None) -> Reported:
        """Journal the check, note what changed, and say which hooks it fires."""
        vm = status.vm_name
        fields: dict[str, Any] = {
            "health_state": "healthy" if status.healthy else "unhealthy",
            "power_state": status.state,
            "failure_count": status.ssh_failures,
            "reason": status.reason,
            "check_duration": round(status.check_duration_seconds, 3),
            "ssh_via": status.ssh_via,  # how SSH reached it: "Bastion azlin-bastion-westus2"
        }
        if status.metrics is not None:
            fields.update(cpu_percent=status.metrics.cpu_percent,
                          memory_percent=status.metrics.memory_percent,
                          disk_percent=status.metrics.disk_percent)
        if status.healthy:
            log_event(log, Event.CHECK_OK, f"{vm}: healthy", vm=vm, **fields)
        else:
            log_event(log, Event.CHECK_FAILED, f"{vm}: unhealthy: {status.reason}", vm=vm,
                      level=logging.WARNING, **fields)
        change = transition(prev, status, repairing=vm in self.in_flight,
                            unannounced=vm in self.unannounced)
        power_changed = prev is not None and change.power_changed
        if power_changed:
            assert prev is not None
            log_event(log, Event.POWER_CHANGED,
                      f"{vm}: power state {prev.state.value} -> {status.state.value}", vm=vm,
                      previous_state=prev.state, power_state=status.state)
        if status.healthy:
            self.last_healthy[vm] = status.timestamp.timestamp()
        if change.defer_healthy:
            self.unannounced.add(vm)  # healthy before Azure said its repair ended
        elif change.announce_healthy or not status.healthy:
            self.unannounced.discard(vm)
        if change.announce_healthy:
            log_event(log, Event.VM_HEALTHY, f"{vm}: healthy again" if prev else
                      f"{vm}: healthy", vm=vm, power_state=status.state)
            self._db.set_held_reasons({vm: None})
        told = dataclasses.replace(prev or Announced(status.state, False), state=status.state,
                                   healthy=status.healthy and vm not in self.unannounced)
        hooks = list(change.hooks)
        if change.announce_healthy:  # on_healthy closes the incident, and tells of it
            told, incident = alerts.closed(told, status.timestamp.timestamp())
            hooks = [(h, {**c, **incident} if h is HookType.ON_HEALTHY else c) for h, c in hooks]
        elif not status.healthy:
            told = alerts.failed(told)
        return Reported(self._told.record(vm, told, hooks), power_changed)

    def repair_started(self, vm: str) -> None:
        self.in_flight.add(vm)
        self.dirty = True

    def repair_ended(self, vm: str, outcome: object) -> None:
        self.in_flight.discard(vm)
        self.dirty = True
        if isinstance(outcome, LifecycleError):  # e.g. no longer leading: not started
            log.warning("%s", outcome)
        elif isinstance(outcome, BaseException):
            log.error("%s: repair crashed: %s", vm, outcome)

    def leadership_changed(self, view: LeadershipView) -> None:
        self._db.set_daemon_fact("ha", view.to_fact())
        self.dirty = True

    def settled(self, outcome: list[tuple[RepairRecord, Settlement]], by: str,
                since: float) -> tuple[list[Tell], list[HealthStatus]]:
        """Interrupted repairs, settled from Azure: the announcements of those that
        reached it, and the VMs to decide again at once — those whose repair never did,
        when this daemon's own latest check (since ``since``) says they still fail."""
        tells = self.interrupted([r for r, s in outcome if s.sent is not False], by)
        again = [status for r, s in outcome if s.sent is False
                 and (status := self.latest.get(r.vm)) is not None
                 and not status.healthy and status.timestamp.timestamp() >= since]
        return tells, again

    @staticmethod
    def interrupted(records: Iterable[RepairRecord], by: str) -> list[Tell]:
        """Journal repairs a daemon stop or a failover cut short; their on_restart hooks."""
        tells = []
        for rec in records:
            log_event(log, Event.RESTART_FAILED,
                      f"{rec.vm}: {rec.action.value} started at {rec.started_at:%H:%M:%S} was "
                      f"interrupted by {by}; it counts against the budget and its "
                      "grace period stands", vm=rec.vm, level=logging.WARNING,
                      action=rec.action, error=rec.error)
            tells.append(Tell(HookType.ON_RESTART, rec.vm, {
                "restart_result": "failure", "action": rec.action.value,
                "error": f"interrupted: {rec.error}"}))
        return tells

    # ------------------------------------------------------------------ what it says
    def new_status_text(self, *, dry_run: bool, config_error: str | None,
                        leadership: LeadershipView | None, force: bool = False) -> str | None:
        """The status line if it changed (or ``force``), else None; stored as a fact."""
        if not (self.dirty or force):
            return None
        self.dirty = False
        text = status_line(sorted(self.enabled), self.latest, breaker_open=self.breaker_open,
                           dry_run=dry_run, in_flight=self.in_flight, config_error=config_error,
                           role=None if leadership is None else leadership.role.value,
                           standby_reason=None if leadership is None else leadership.reason)
        if text == self.status_text and not force:
            return None
        self.status_text = text
        self._db.set_daemon_fact("status_text", text)
        if self.last_sweep:
            self._db.set_daemon_fact("last_sweep", self.last_sweep.isoformat())
        return text

    def snapshot(self, *, running: bool, pid: int | None, uptime: dt.timedelta,
                 config_error: str | None, leadership: LeadershipView | None) -> DaemonStatus:
        enabled = sorted(self.enabled)
        latest = [self.latest[v] for v in enabled if v in self.latest]
        states = self.store.all_healing_states() if self.store is not None else {}
        held = {vm: s.held_reason for vm, s in states.items() if s.held_reason and vm in enabled}
        return DaemonStatus(
            running=running,
            pid=pid,
            uptime=uptime,
            monitored_vms=enabled,
            last_sweep=self.last_sweep,
            healthy=sum(1 for s in latest if s.healthy),
            failing=sorted(s.vm_name for s in latest if s.failing),
            needs_you={s.vm_name: s.reason or "" for s in latest if s.needs_you},
            held=held,
            breaker_open=self.breaker_open,
            repairs_in_flight=sorted(self.in_flight),
            config_error=config_error,
            status_text=self.status_text,
            leadership=leadership,
        )
