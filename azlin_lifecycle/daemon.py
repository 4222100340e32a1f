"""LifecycleDaemon: the monitoring loop, run by systemd as a Type=notify user service.

One thread runs the loop and never blocks on the network. In the order of this file, a
VM's data goes: **config** (the file, reloaded on SIGHUP or when it changes, a file that
does not validate is reported and the old one stays; plus the VMs :mod:`~.discovery`
finds) → **schedule** (each VM on its own interval) → **check** (the VMs due together are
one batch, checked off the loop's thread by :class:`~.sweeps.CheckRunner`) → **decide**
(:class:`~.fleet_book.FleetBook` keeps the fleet view and each VM's transitions; the
healer plans) → **act** (a repair runs on a thread of its own) → **tell** (hooks, the
journal, systemd: READY=1, STATUS=, WATCHDOG=1 from the loop itself, RELOADING=1,
STOPPING=1). With ``[ha]`` only the lease holder decides, repairs and fires hooks.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

from .adapters import systemd as sd
from .config import LifecycleConfig
from .deciding import Decider
from .discovery import Discovery, merged
from .errors import DaemonError, LifecycleConfigError
from .events import Event, log_event, quiet_libraries
from .fleet_book import DaemonStatus, FleetBook
from .ha_role import HaRole
from .health import failure_of
from .manager import LifecycleManager
from .models import HealthStatus, RepairRecord
from .ports import AddressBook, ComputeApi, HookRunner, SshProber
from .rules import FleetView
from .scheduler import Scheduler
from .state import StateStore
from .sweeps import CheckRunner
from .wiring import build_daemon_parts, reconfigure

__all__ = ["DaemonError", "DaemonStatus", "LifecycleDaemon"]

log = logging.getLogger(__name__)

CONFIG_POLL_SECONDS = 2.0


class LifecycleDaemon:
    def __init__(self, config_path: Path | None = None, *, compute: ComputeApi | None = None,
                 ssh: SshProber | None = None, hooks: HookRunner | None = None,
                 store: StateStore | None = None, foreground: bool | None = None,
                 addresses: AddressBook | None = None) -> None:
        self.manager = LifecycleManager(config_path)
        self._compute, self._ssh, self._addresses, self._hooks = compute, ssh, addresses, hooks
        self._store, self._foreground = store, foreground
        self._stop, self._reload = threading.Event(), threading.Event()
        self._running, self._started, self._started_at = False, False, time.time()
        self._config = self._file = LifecycleConfig()  # in force (with discovered VMs); file's
        self._config_mtime: int | None = None  # ns; reload events carry it
        self._config_error: str | None = None  # the reload that failed, if the last did
        self._scheduler = Scheduler()
        self.book = FleetBook(store)
        self._view_lock = threading.Lock()  # the loop's, while it changes what get_status() says
        self.ha: HaRole | None = None  # with [ha]: who acts, built on start

    # ================================================================== public API
    def start(self) -> None:
        """Run until stop() or SIGTERM/SIGINT. Raises DaemonError if it cannot start."""
        try:
            self._config = self._file = self.manager.load()
        except LifecycleConfigError as exc:
            raise DaemonError(f"cannot start: {exc}") from None
        self._config_mtime = self.manager.config_mtime_ns()
        sd.setup_logging(self._config.daemon.log_level.value, self._foreground)
        quiet_libraries()
        self._build()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, self._on_signal)
        self._running, self._started, self._started_at = True, True, time.time()
        try:
            self._run()
        finally:
            self._running = False
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def reload_config(self) -> None:
        """Ask the loop to reread the configuration (what SIGHUP does)."""
        self._reload.set()

    def get_status(self) -> DaemonStatus:
        with self._view_lock:
            return self.book.snapshot(
                running=self._running, pid=os.getpid() if self._started else None,
                uptime=dt.timedelta(seconds=int(time.time() - self._started_at)),
                config_error=self._config_error, leadership=self.ha.view() if self.ha else None)

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(history_size=self._config.daemon.history_size)
        return self._store

    def _build(self) -> None:
        self.book.store = self.store
        self.discovery = Discovery.resumed(self._file, self.store.daemon_facts())  # [discovery]
        self._config = merged(self._file, self.discovery.found)
        parts = self.parts = build_daemon_parts(
            self._config, self.store, compute=self._compute, ssh=self._ssh,
            addresses=self._addresses, hooks=self._hooks, books=(self.book, self._view_lock),
            hooks_of=lambda vm: self._config.hooks_of(vm),  # the config in force then
            on_leadership=lambda view: self.checks.post("leadership", view),
            on_interrupted=lambda records: self.checks.post("interrupted", records))
        self.monitor, self.healer, self.hooks, self.ha = (parts.monitor, parts.healer,
                                                          parts.hooks, parts.ha)
        self.checks = CheckRunner(self.monitor, self._config.daemon.max_workers)
        self.decider = Decider(self.healer, self.book, self.checks, self._view_lock,
                               lambda: self._config, self.ha)

    # ================================================================== the loop
    def _run(self) -> None:
        interrupted = self.store.interrupt_unfinished()
        if self.ha is None:  # with [ha] the shared ledger's leader settles them
            self._settle(interrupted, "a daemon stop")
        with self._view_lock:
            self.told = self.book.begin(self._config.enabled_vms(), self._started_at, os.getpid())
            self.told.fire(self.hooks, self.told.owed())  # the last daemon's, not run
            self._sync_schedule()
            vms = len(self._config.enabled_vms())
            log_event(log, Event.DAEMON_STARTED,
                      f"azlin-lifecycle started: monitoring {vms} VMs", monitored=vms)
            self._publish_status(force=True, ready=True)
        if self.ha is not None:
            self.ha.start()
        self.parts.metrics.start()  # [metrics]: Prometheus reads the books at each scrape
        ping_every, last_ping, last_config_poll = sd.watchdog_interval(), 0.0, time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if ping_every is not None and now - last_ping >= ping_every:
                sd.watchdog()
                last_ping = now
            if poll_due := now - last_config_poll >= CONFIG_POLL_SECONDS:
                last_config_poll = now
            with self._view_lock:
                if self._reload.is_set() or (
                        poll_due and self.manager.config_mtime_ns() != self._config_mtime):
                    self._reload.clear()
                    self._apply_reload()
                self._dispatch(now)
            completed = self.checks.wait(self._scheduler.wait_budget(now, ping_every))
            with self._view_lock:  # get_status() sees a batch and its status line together
                self._handle(completed)
                self._publish_status()

    def _handle(self, items: list[tuple[str, Any, Any]]) -> None:
        for kind, payload, outcome in items:
            if kind == "power":
                self.checks.on_power(outcome, *payload)
            elif kind == "check":
                self._on_check(outcome, *payload)
            elif kind == "repair":
                self.book.repair_ended(payload, outcome)
            elif kind == "leadership":
                self.book.leadership_changed(payload)
            elif kind == "interrupted":
                self._settle(payload, "a failover (the previous leader stopped leading "
                                      "before it finished)")
            elif kind == "settled":
                self._settled(payload, outcome)
            elif kind == "decided":
                self.decider.decided(payload, outcome, self.told, self.hooks)
            elif kind == "discovery":  # [discovery]'s listing is in: found VMs apply at once
                self._apply(self._file, self.discovery.listed(self._file, outcome, payload))

    # ------------------------------------------------------------------ config
    def _apply_reload(self) -> None:
        sd.reloading()
        self._config_mtime = self.manager.config_mtime_ns()
        try:
            new = self.manager.load()
        except LifecycleConfigError as exc:
            self._config_error = str(exc)
            log_event(log, Event.CONFIG_RELOAD_FAILED, "configuration not reloaded, the "
                      f"previous one stays in force: {exc}", level=logging.ERROR,
                      reason=str(exc), config_mtime_ns=self._config_mtime)
        else:
            self.discovery.retune(self._file, new)
            self._apply(new)
            self._config_error = None
            vms = len(self._config.enabled_vms())
            log_event(log, Event.CONFIG_RELOADED, f"configuration reloaded: monitoring {vms} "
                      "VMs", monitored=vms, config_mtime_ns=self._config_mtime)
        self._publish_status(force=True, ready=True)

    def _apply(self, file: LifecycleConfig, changed: bool = True) -> None:
        """Put ``file``'s configuration in force, with the VMs [discovery] found."""
        if changed:
            new = merged(file, self.discovery.found)
            reconfigure(self.parts, self._config, new, own_compute=self._compute is None,
                        own_addresses=self._addresses is None, own_ssh=self._ssh is None)
            self._config, self._file = new, file
            self._sync_schedule()
        self.store.set_daemon_fact("discovery", self.discovery.fact(file))

    # ------------------------------------------------------------------ schedule
    def _sync_schedule(self) -> None:
        enabled = self._config.enabled_vms()
        self._scheduler.sync({vm: float(c.check_interval_seconds) for vm, c in enabled.items()},
                             time.monotonic())
        self.book.set_enabled(enabled)

    def _dispatch(self, now: float) -> None:
        if self.discovery.poll(self._file, now, self.monitor.compute, self.checks.aside):
            for vm in self.checks.dispatch(self._scheduler.due(now), self._config, now):
                self._scheduler.finished(vm, now)  # cannot be checked (logged): next interval

    # ------------------------------------------------------------------ check
    def _on_check(self, future: Future[Any], batch_id: int, vm: str) -> None:
        """One VM's check is in: tell at once what needs no fleet view (its events and hooks,
        the decision of a failure that cannot lead to a repair); the rest with its batch."""
        checked = self.checks.on_check(future, batch_id, vm)
        self._scheduler.finished(vm, checked.started)
        status = checked.status
        if status is not None and self.discovery.vanished(self._file, status):
            self._apply(self._file)  # one VM_GONE, not a failed check: no longer enabled
        reported = None if status is None else self.book.arrived(status)
        if status is not None and reported is not None:
            if reported.power_changed:  # a dynamic public IP changes with the power state
                self.monitor.forget_vm(vm)
            self.told.fire(self.hooks, reported.tells)
            if not status.healthy and not self.healer.needs_fleet(failure_of(status)):
                self._heal(status, self.book.for_decision(self.book.fleet()))
        if checked.finished is not None:
            self._decide(checked.finished)
            self.checks.trim_memory()

    # ------------------------------------------------------------------ decide
    def _decide(self, results: list[HealthStatus]) -> None:
        """A batch is in: the breaker, then the decisions needing it (off the loop)."""
        fleet = self.book.update_breaker(self._config.healing)
        self.decider.many = fleet.many  # the sweep's alerts: a digest if this many
        for status in self.book.swept(results):
            if not status.healthy and self.healer.needs_fleet(failure_of(status)):
                self._heal(status, self.book.for_decision(fleet))
        self.decider.page(self.told, self.hooks)  # alerts decided while it was checked

    def _heal(self, status: HealthStatus, fleet: FleetView) -> None:
        """Have it decided off the loop (:mod:`~.deciding`): a decision asks Azure."""
        self.decider.request(status, fleet)

    # ------------------------------------------------------------------ after a kill
    def _settle(self, records: list[RepairRecord], by: str) -> None:
        """Ask Azure, off the loop, whether interrupted repairs ever reached it."""
        if records:
            self.checks.aside("settled", by, lambda: self.healer.settle_all(records))

    def _settled(self, by: str, outcome: object) -> None:
        """Announce interrupted repairs Azure received; decide again for one it never got."""
        if not isinstance(outcome, list):
            log.error("settling interrupted repairs failed: %s", outcome)
            return
        tells, again = self.book.settled(outcome, by, since=self._started_at)
        self.told.fire(self.hooks, tells)
        for status in again:
            self._heal(status, self.book.for_decision(self.book.fleet()))

    # ------------------------------------------------------------------ tell
    def _publish_status(self, force: bool = False, ready: bool = False) -> None:
        text = self.book.new_status_text(
            dry_run=self._config.healing.dry_run, config_error=self._config_error,
            leadership=self.ha.view() if self.ha else None, force=force)
        if text is not None:
            (sd.ready if ready else sd.status)(text)

    # ------------------------------------------------------------------ stop
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        (self._reload if signum == signal.SIGHUP else self._stop).set()

    def _shutdown(self) -> None:
        sd.stopping()
        self.parts.metrics.stop()
        if self.ha is not None:
            self.ha.stop()
        log_event(log, Event.DAEMON_STOPPING, "azlin-lifecycle stopping" + (
            f"; repairs left to Azure: {', '.join(sorted(self.book.in_flight))}"
            if self.book.in_flight else ""))
        self.checks.shutdown()
        self.hooks.shutdown(timeout=self._config.hooks.kill_grace_seconds + 1.0)
        self.monitor.close()
