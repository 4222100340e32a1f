"""Repair decisions, off the loop's thread: they ask Azure, which may be slow or throttling.

A decision reads Azure (Resource Health, the instance view; with ``[ha]`` the shared
ledger), and a read can wait out a 429's Retry-After or a slow answer for many seconds.
Made on the loop, a few of them in one sweep kept it from pinging systemd's watchdog, so
systemd killed the daemon again and again until it gave up on the unit — the chaos soak
found that (issue 21). So the loop only asks: one decider thread makes the decisions in
turn, and the loop acts on each as it comes back. One thread, so that the in-flight cap
sees the repairs decided just before (a VM decided for repair is marked in flight at
once, under the loop's lock); a VM already waiting for its decision is not asked twice.
The ``on_failure`` alerts noted with the decisions are paged once none is pending and no
batch is being checked, so the alerts of one sweep still come as one digest when many.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .announcements import Announcements
from .config import LifecycleConfig
from .fleet_book import FleetBook
from .ha_role import HaRole
from .healing import SelfHealer
from .health import failure_of
from .models import HealthStatus
from .policy import Decision
from .ports import HookRunner
from .rules import FleetView
from .sweeps import CheckRunner

log = logging.getLogger("azlin_lifecycle.daemon")


class Decider:
    def __init__(self, healer: SelfHealer, book: FleetBook, checks: CheckRunner,
                 lock: threading.Lock, config: Callable[[], LifecycleConfig],
                 ha: HaRole | None) -> None:
        self.healer, self.book, self.checks, self.lock = healer, book, checks, lock
        self.config, self.ha = config, ha
        self.pending: set[str] = set()  # VMs waiting for their decision
        self.many: int | None = None  # the last sweep's "many" VMs (a digest's threshold)

    def request(self, status: HealthStatus, fleet: FleetView) -> None:
        """On the loop: have a failed check decided (not for a VM being repaired or
        decided, nor on a standby: the leader decides)."""
        vm = status.vm_name
        if vm in self.book.in_flight or vm in self.pending or (
                self.ha is not None and not self.ha.acting()):
            return
        self.pending.add(vm)
        self.checks.decide("decided", status, lambda: self._decide(status, fleet))

    def _decide(self, status: HealthStatus, fleet: FleetView) -> Decision:
        """On the decider thread: plan (asking Azure), and record a dry run."""
        vm = status.vm_name
        fleet = dataclasses.replace(fleet, in_flight=len(self.book.in_flight))
        decision = self.healer.plan(vm, failure_of(status), fleet,
                                    self.book.last_healthy.get(vm))
        if decision.action is not None and not decision.dry_run:
            with self.lock:  # before the next decision reads the in-flight count
                self.book.repair_started(vm)
        elif decision.action is not None:
            self.healer.act(vm, decision)  # "would repair": recorded, nothing waits
        return decision

    def decided(self, status: HealthStatus, done: Future[Any], told: Announcements,
                hooks: HookRunner) -> None:
        """On the loop: a decision is in. Note its alert, start its repair on a thread of
        its own; page the alerts if nothing more is to come (:meth:`page`)."""
        vm = status.vm_name
        self.pending.discard(vm)
        try:
            decision: Decision = done.result()
        except Exception as exc:  # a healer error: logged, the next check decides again
            log.error("%s: the repair decision failed: %s", vm, exc)
        else:
            failure = failure_of(status)
            self.book.pager.alert(status, decision,
                                  self.healer.alert_context(failure, decision),
                                  self.config().hooks.repeat_seconds)
            if decision.action is not None and not decision.dry_run:
                self.checks.aside("repair", vm, lambda: self.healer.act(vm, decision))
        self.page(told, hooks)

    def page(self, told: Announcements, hooks: HookRunner) -> None:
        """On the loop: page the alerts noted, once no decision is pending and no batch
        is being checked (so that a sweep's alerts go together: a digest when many)."""
        if not self.pending and not self.checks.busy:
            told.fire(hooks, self.book.pager.page(self.many))
