"""LifecycleDaemon: the monitoring loop, run by systemd as a Type=notify user service.

One thread runs the loop and never blocks on the network. A VM's data takes this path,
in the order of this file: **config** (loaded at start; reloaded on SIGHUP or when the
file changes, polled every 2 s; a file that does not validate is reported and the old
one stays) → **schedule** (each VM on its own interval) → **check** (the VMs due together
are one batch, checked off the loop's thread by :class:`~.sweeps.CheckRunner`) →
**decide** (when a batch is in, :class:`~.fleet_book.FleetBook` updates the fleet view
and each VM's transitions; the healer plans per VM) → **act** (a repair runs on a thread
of its own and reports back through the same queue) → **tell** (hooks; the journal,
through the books; systemd: READY=1, STATUS= a one-line summary, WATCHDOG=1 at half the
watchdog interval from the loop itself so a stuck loop gets restarted, RELOADING=1 /
READY=1 around a reload, STOPPING=1 on SIGTERM/SIGINT).

With ``[ha]`` several daemons watch one fleet and the lease holder acts
(:class:`~.ha_role.HaRole`): every daemon checks; only the leader decides, repairs and
fires hooks. STATUS= then starts with "leader" or "standby".
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

from .adapters import systemd as sd
from .config import LifecycleConfig
from .errors import DaemonError, LifecycleConfigError
from .events import Event, log_event, quiet_libraries
from .fleet_book import DaemonStatus, FleetBook, Tell
from .ha_role import HaRole
from .health import failure_of
from .leadership import LeadershipView
from .manager import LifecycleManager
from .models import HealthStatus, VMTarget
from .ports import AddressBook, ComputeApi, HookRunner, SshProber
from .rules import FleetView
from .scheduler import Scheduler
from .state import StateStore
from .sweeps import CheckRunner
from .targets import resolve_target
from .wiring import build_daemon_parts, reconfigure

__all__ = ["DaemonError", "DaemonStatus", "LifecycleDaemon"]

log = logging.getLogger(__name__)

CONFIG_POLL_SECONDS = 2.0


class LifecycleDaemon:
    def __init__(
        self,
        config_path: Path | None = None,
        *,
        compute: ComputeApi | None = None,
        ssh: SshProber | None = None,
        hooks: HookRunner | None = None,
        store: StateStore | None = None,
        foreground: bool | None = None,
        addresses: AddressBook | None = None,
    ) -> None:
        self.manager = LifecycleManager(config_path)
        self._compute, self._ssh, self._addresses, self._hooks = compute, ssh, addresses, hooks
        self._store, self._foreground = store, foreground
        self._stop, self._reload = threading.Event(), threading.Event()
        self._running = self._started = False
        self._started_at = time.time()
        self._config = LifecycleConfig()
        self._config_mtime: int | None = None  # ns; reload events carry it
        self._config_error: str | None = None
        self._scheduler = Scheduler()
        self.book = FleetBook(store)
        # Held by the loop while it changes what get_status() reports (other threads read it).
        self._view_lock = threading.Lock()
        self.ha: HaRole | None = None  # with [ha]: who acts, built on start

    # ================================================================== public API
    def start(self) -> None:
        """Run until stop() or SIGTERM/SIGINT. Raises DaemonError if it cannot start."""
        try:
            self._config = self.manager.load()
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
                config_error=self._config_error, leadership=self._leadership())

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(history_size=self._config.daemon.history_size)
        return self._store

    def _build(self) -> None:
        self.book.store = self.store
        parts = build_daemon_parts(
            self._config, self.store, compute=self._compute, ssh=self._ssh,
            addresses=self._addresses, hooks=self._hooks,
            hooks_of=lambda vm: self._config.hooks_of(vm),  # the config in force then
            on_leadership=lambda view: self.checks.post("leadership", view),
            on_interrupted=lambda records: self.checks.post("interrupted", records))
        self.parts = parts
        self.monitor, self.healer, self.hooks, self.ha = parts.monitor, parts.healer, \
            parts.hooks, parts.ha
        self.checks = CheckRunner(self.monitor, self._config.daemon.max_workers)

    def _leadership(self) -> LeadershipView | None:
        return self.ha.view() if self.ha is not None else None

    # ================================================================== the loop
    def _run(self) -> None:
        interrupted = self.store.interrupt_unfinished()
        if self.ha is None:  # with [ha] the shared ledger's leader tells
            self._tell(self.book.interrupted(interrupted, "a daemon stop"))
        with self._view_lock:
            self.book.begin(self._config.enabled_vms(), self._started_at, os.getpid())
            self._sync_schedule()
            vms = len(self._config.enabled_vms())
            log_event(log, Event.DAEMON_STARTED,
                      f"azlin-lifecycle started: monitoring {vms} VMs", monitored=vms)
            self._publish_status(force=True, ready=True)
        if self.ha is not None:
            self.ha.start()
        ping_every = sd.watchdog_interval()
        last_ping = 0.0
        last_config_poll = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if ping_every is not None and now - last_ping >= ping_every:
                sd.watchdog()
                last_ping = now
            poll_due = now - last_config_poll >= CONFIG_POLL_SECONDS
            if poll_due:
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
                self._tell(self.book.interrupted(
                    payload, "a failover (the previous leader stopped leading before it "
                    "finished)"))

    # ------------------------------------------------------------------ config
    def _apply_reload(self) -> None:
        sd.reloading()
        self._config_mtime = self.manager.config_mtime_ns()
        try:
            new = self.manager.load()
        except LifecycleConfigError as exc:
            self._config_error = str(exc)
            log_event(log, Event.CONFIG_RELOAD_FAILED,
                      f"configuration not reloaded, the previous one stays in force: {exc}",
                      level=logging.ERROR, reason=str(exc),
                      config_mtime_ns=self._config_mtime)
        else:
            reconfigure(self.parts, self._config, new, own_compute=self._compute is None,
                        own_addresses=self._addresses is None)
            self._config, self._config_error = new, None
            self._sync_schedule()
            vms = len(new.enabled_vms())
            log_event(log, Event.CONFIG_RELOADED,
                      f"configuration reloaded: monitoring {vms} VMs", monitored=vms,
                      config_mtime_ns=self._config_mtime)
        self._publish_status(force=True, ready=True)

    # ------------------------------------------------------------------ schedule
    def _sync_schedule(self) -> None:
        enabled = self._config.enabled_vms()
        self._scheduler.sync({vm: float(c.check_interval_seconds) for vm, c in enabled.items()},
                             time.monotonic())
        self.book.set_enabled(enabled)

    def _dispatch(self, now: float) -> None:
        targets: list[VMTarget] = []
        for vm in self._scheduler.due(now):
            try:
                targets.append(resolve_target(self._config, vm))
            except LifecycleConfigError as exc:
                self._scheduler.finished(vm, now)
                log_event(log, Event.CHECK_FAILED, f"{vm}: cannot check: {exc}", vm=vm,
                          level=logging.ERROR, reason=str(exc))
        if targets:
            self.checks.dispatch(targets, now)

    # ------------------------------------------------------------------ check
    def _on_check(self, future: Future[Any], batch_id: int, vm: str) -> None:
        checked = self.checks.on_check(future, batch_id, vm)
        self._scheduler.finished(vm, checked.started)
        if checked.finished is not None:
            self._decide(checked.finished)
            self.checks.trim_memory()

    # ------------------------------------------------------------------ decide
    def _decide(self, results: list[HealthStatus]) -> None:
        """A batch is in: the fleet view, then each VM's report and repair decision."""
        pairs = self.book.record(results)
        fleet = self.book.update_breaker(self._config.healing)
        for status, prev in pairs:
            reported = self.book.report(status, prev)
            if reported.power_changed:
                self.monitor.forget_vm(status.vm_name)  # a dynamic IP changes with power
            self._tell(reported.tells)
        for status, _ in pairs:
            if not status.healthy and status.vm_name not in self.book.in_flight:
                self._heal(status, self.book.for_decision(fleet))

    def _heal(self, status: HealthStatus, fleet: FleetView) -> None:
        """SelfHealer.handle_failure's two steps: plan now, act on a thread of its own."""
        vm = status.vm_name
        if self.ha is not None and not self.ha.acting():
            return  # a standby: the leader decides, with the shared ledger
        decision = self.healer.plan(vm, failure_of(status), fleet,
                                    self.book.last_healthy.get(vm))
        if decision.action is None:
            return
        if decision.dry_run:
            self.healer.act(vm, decision)  # records "would repair"; nothing waits on Azure
            return
        # act: on a thread of its own; the healer calls monitor.repaired once Azure is done
        self.book.repair_started(vm)
        self.checks.repair(vm, lambda: self.healer.act(vm, decision))

    # ------------------------------------------------------------------ tell
    def _tell(self, tells: Iterable[Tell]) -> None:
        for tell in tells:
            self.hooks.execute_hook_async(tell.hook, tell.vm, dict(tell.context))

    def _publish_status(self, force: bool = False, ready: bool = False) -> None:
        text = self.book.new_status_text(
            dry_run=self._config.healing.dry_run, config_error=self._config_error,
            leadership=self._leadership(), force=force)
        if text is not None:
            (sd.ready if ready else sd.status)(text)

    # ------------------------------------------------------------------ stop
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        (self._reload if signum == signal.SIGHUP else self._stop).set()

    def _shutdown(self) -> None:
        sd.stopping()
        if self.ha is not None:
            self.ha.stop()
        in_flight = sorted(self.book.in_flight)
        log_event(log, Event.DAEMON_STOPPING, "azlin-lifecycle stopping" + (
            f"; repairs left to Azure: {', '.join(in_flight)}" if in_flight else ""))
        self.checks.shutdown()
        self.hooks.shutdown(timeout=self._config.hooks.kill_grace_seconds + 1.0)
        self.monitor.close()
