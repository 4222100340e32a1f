"""LifecycleDaemon: the monitoring loop, run by systemd as a Type=notify user service.

One decision thread runs the loop; it never blocks on the network. Checks run on a
bounded worker pool: VMs that are due together form a batch, their power states come
from one Azure list call per resource group, then each running VM gets its SSH check.
When a whole batch is in, the loop updates the fleet view (circuit breaker), decides
per VM (policy), fires hooks and starts repairs on their own threads. Each VM is
checked on its own interval.

systemd integration: READY=1 once the config is loaded and the first sweep is
scheduled; STATUS= a one-line summary; WATCHDOG=1 at half the watchdog interval,
sent from the loop itself (a stuck loop stops the pings and systemd restarts it);
RELOADING=1 / READY=1 around a reload (SIGHUP, or the config file changing);
STOPPING=1 on SIGTERM/SIGINT.

With ``[ha]`` several daemons watch one fleet and one acts: the one holding the lease
(:mod:`azlin_lifecycle.leadership`). Every daemon checks; only the leader decides,
repairs and fires hooks, with the repair records of the shared ledger
(:mod:`azlin_lifecycle.ledger`). STATUS= starts with "leader" or "standby".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .adapters import systemd as sd
from .adapters.libc import release_free_memory
from .config import HookType, LifecycleConfig
from .errors import DaemonError, HealthCheckError, LifecycleConfigError, LifecycleError
from .events import Event, log_event
from .healing import SelfHealer
from .health import HealthMonitor, failure_of
from .leadership import LeaderOnlyHooks, Leadership, LeadershipView
from .ledger import SharedLedger
from .manager import LifecycleManager
from .models import HealthStatus, PowerInfo, RepairRecord, RestartResult, VMTarget
from .policy import Decision
from .ports import AddressBook, ComputeApi, HookRunner, LeaseStore, SshProber
from .rules import FleetView, breaker_trips, fleet_view, status_line, transition
from .scheduler import Scheduler
from .state import StateStore
from .targets import resolve_target
from .wiring import (
    build_address_book,
    build_compute,
    build_hooks,
    build_lease_store,
    build_ssh,
    load_adapter_libraries,
)

__all__ = ["DaemonError", "DaemonStatus", "LifecycleDaemon"]

log = logging.getLogger(__name__)

CONFIG_POLL_SECONDS = 2.0
TRIM_EVERY = 10.0  # seconds between returns of freed heap memory to the system


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


@dataclass
class _Batch:
    started: float
    waiting: set[str]
    results: list[HealthStatus] = field(default_factory=list)


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
        self._compute = compute
        self._ssh = ssh
        self._addresses = addresses
        self._hooks = hooks
        self._store = store
        self._foreground = foreground
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._running = False
        self._started = False
        self._started_at = time.time()
        self._config = LifecycleConfig()
        self._config_mtime: int | None = None  # ns; reload events carry it
        self._config_error: str | None = None
        self._scheduler = Scheduler()
        self._latest: dict[str, HealthStatus] = {}
        self._last_healthy: dict[str, float] = {}
        self._batches: dict[int, _Batch] = {}
        # Work in progress completes into one queue (done-callbacks), so the loop does
        # O(1) per completion however large the fleet.
        self._pending: set[Future[Any]] = set()
        self._done: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self._dirty = True  # the status line needs recomputing
        self._in_flight: set[str] = set()
        self._unannounced: set[str] = set()  # healthy during its repair, not yet announced
        self._breaker_open = False
        self._last_sweep: dt.datetime | None = None
        self._status_text = ""
        self._batch_ids = 0
        self._last_trim = 0.0
        # Held by the loop while it changes what get_status() reports (other threads read it).
        self._view_lock = threading.Lock()
        self.leadership: Leadership | None = None  # with [ha]: who acts
        self._ledger: SharedLedger | None = None

    # ================================================================== public API
    def start(self) -> None:
        """Run until stop() or SIGTERM/SIGINT. Raises DaemonError if it cannot start."""
        try:
            self._config = self.manager.load()
        except LifecycleConfigError as exc:
            raise DaemonError(f"cannot start: {exc}") from None
        self._config_mtime = _mtime(self.manager.config_path)
        sd.setup_logging(self._config.daemon.log_level.value, self._foreground)
        quiet_libraries()
        self._build()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_stop_signal)
            signal.signal(signal.SIGINT, self._on_stop_signal)
            signal.signal(signal.SIGHUP, self._on_hup)
        self._running = self._started = True
        self._started_at = time.time()
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
            return self._status_snapshot()

    def _status_snapshot(self) -> DaemonStatus:
        enabled = sorted(self._config.enabled_vms())
        latest = [self._latest[v] for v in enabled if v in self._latest]
        states = self._store.all_healing_states() if self._store is not None else {}
        held = {vm: s.held_reason for vm, s in states.items() if s.held_reason and vm in enabled}
        return DaemonStatus(
            running=self._running,
            pid=os.getpid() if self._started else None,
            uptime=dt.timedelta(seconds=int(time.time() - self._started_at)),
            monitored_vms=enabled,
            last_sweep=self._last_sweep,
            healthy=sum(1 for s in latest if s.healthy),
            failing=sorted(s.vm_name for s in latest if s.failing),
            needs_you={s.vm_name: s.reason or "" for s in latest if s.needs_you},
            held=held,
            breaker_open=self._breaker_open,
            repairs_in_flight=sorted(self._in_flight),
            config_error=self._config_error,
            status_text=self._status_text,
            leadership=self.leadership.view() if self.leadership is not None else None,
        )

    # ================================================================== wiring
    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(history_size=self._config.daemon.history_size)
        return self._store

    def _build(self) -> None:
        """The components, with the adapters given to the daemon or else the real ones."""
        store, config = self.store, self._config
        if self._hooks is None:
            self._hooks = build_hooks(config, self._hooks_of)
        if self._compute is None or self._ssh is None or config.ha.enabled:
            load_adapter_libraries(ha=config.ha.enabled)
        if config.ha.enabled:
            self._build_leadership(build_lease_store(config))
        compute = self._compute or build_compute(config)
        self.monitor = HealthMonitor(
            config, compute=compute, ssh=self._ssh or build_ssh(config),
            addresses=self._addresses or build_address_book(config, compute), store=store,
            ledger=self._ledger)
        self.healer = SelfHealer(config, compute=compute, store=store, hooks=self._hooks,
                                 ledger=self._ledger, on_repaired=self._after_repair)
        workers = self._config.daemon.max_workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
        self._azure_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="azure")

    def _build_leadership(self, lease: LeaseStore) -> None:
        """Election and shared ledger on ``lease``; hooks run only while leading."""
        identity = f"{socket.gethostname()} pid {os.getpid()}"
        healing = self._config.healing
        self.leadership = Leadership(
            lease, seconds=self._config.ha.lease_seconds, identity=identity,
            on_elected=self._take_over,
            on_change=lambda view: self._done.put(("leadership", view, None)))
        self._ledger = SharedLedger(
            lease, mirror=self.store, identity=identity, is_leader=self.leadership.is_leader,
            keep_seconds=max(healing.budget_window_seconds, 7 * 86400) + 86400)
        assert self._hooks is not None
        self._hooks = LeaderOnlyHooks(self._hooks, self.leadership.is_leader)

    def _take_over(self, lease_id: str) -> None:
        """Elected: read the shared ledger before any decision (the election thread)."""
        assert self._ledger is not None
        interrupted = self._ledger.take_over(lease_id)
        self._done.put(("interrupted", interrupted, None))

    def _acting(self) -> bool:
        """Does this daemon repair and fire hooks now? (Always, without [ha].)"""
        return self.leadership is None or self.leadership.is_leader()

    def _hooks_of(self, vm: str) -> Mapping[str, str]:
        return self._config.hooks_of(vm)  # the config in force now, reloads included

    def _after_repair(self, vm: str) -> None:
        self.monitor.reset_failures(vm)
        self.monitor.forget_power_states()
        self.monitor.forget_vm(vm)

    # ================================================================== loop
    def _announce_interrupted(self, records: list[RepairRecord], by: str) -> None:
        for rec in records:
            log_event(log, Event.RESTART_FAILED,
                      f"{rec.vm}: {rec.action.value} started at {rec.started_at:%H:%M:%S} was "
                      f"interrupted by {by}; it counts against the budget and its "
                      "grace period stands", vm=rec.vm, level=logging.WARNING,
                      action=rec.action, error=rec.error)
            self._fire(HookType.ON_RESTART, rec.vm, {
                "restart_result": "failure", "action": rec.action.value,
                "error": f"interrupted: {rec.error}"})

    def _run(self) -> None:
        interrupted = self.store.interrupt_unfinished()
        if self.leadership is None:  # with [ha] the shared ledger's leader tells
            self._announce_interrupted(interrupted, "a daemon stop")
        with self._view_lock:
            self._seed_from_history()
            self._sync_schedule()
            self.store.set_daemon_fact("started_at", self._started_at)
            self.store.set_daemon_fact("pid", os.getpid())
            self.store.set_daemon_fact("breaker_open", False)  # a new daemon starts closed
            vms = len(self._config.enabled_vms())
            log_event(log, Event.DAEMON_STARTED,
                      f"azlin-lifecycle started: monitoring {vms} VMs", monitored=vms)
            self._publish_status(force=True, ready=True)
        if self.leadership is not None:
            self.leadership.start()
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
                if self._reload.is_set() or (poll_due and self._config_changed()):
                    self._reload.clear()
                    self._apply_reload()
                self._dispatch(now)
            completed = self._wait_for_completions(self._wait_budget(now, ping_every))
            with self._view_lock:  # get_status() sees a batch and its status line together
                self._handle(completed)
                self._publish_status()

    def _wait_budget(self, now: float, ping_every: float | None) -> float:
        until_next = self._scheduler.seconds_until_next(now)
        budget = 0.5 if until_next is None else min(0.5, until_next)
        if ping_every is not None:
            budget = min(budget, ping_every / 2)
        return max(0.01, budget)

    def _seed_from_history(self) -> None:
        latest = self.store.latest(self._config.enabled_vms())
        self._latest.update(latest)
        for vm, status in latest.items():
            if status.healthy:
                self._last_healthy[vm] = status.timestamp.timestamp()

    def _sync_schedule(self) -> None:
        enabled = self._config.enabled_vms()
        self._scheduler.sync({vm: float(c.check_interval_seconds) for vm, c in enabled.items()},
                             time.monotonic())
        for vm in list(self._latest):
            if vm not in enabled:
                del self._latest[vm]

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, now: float) -> None:
        due = self._scheduler.due(now)
        if not due:
            return
        targets: list[VMTarget] = []
        for vm in due:
            try:
                targets.append(resolve_target(self._config, vm))
            except LifecycleConfigError as exc:
                self._scheduler.finished(vm, now)
                log_event(log, Event.CHECK_FAILED, f"{vm}: cannot check: {exc}", vm=vm,
                          level=logging.ERROR, reason=str(exc))
        if not targets:
            return
        self._batch_ids += 1
        batch_id = self._batch_ids
        self._batches[batch_id] = _Batch(started=now, waiting={t.name for t in targets})
        # The same two steps as HealthMonitor.check_many: power states, then each probe.
        self._submit(self._azure_pool, "power", (batch_id, targets),
                     self.monitor.fetch_power_states, targets)

    def _submit(self, pool: ThreadPoolExecutor, kind: str, payload: Any,
                fn: Callable[..., Any], *args: Any) -> None:
        future = pool.submit(fn, *args)
        self._pending.add(future)
        future.add_done_callback(lambda f: self._done.put((kind, payload, f)))

    def _wait_for_completions(self, timeout: float) -> list[tuple[str, Any, Any]]:
        """Everything that completed; waits up to ``timeout`` if nothing has."""
        try:
            items = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._done.get_nowait())
            except queue.Empty:
                return items

    def _handle(self, items: list[tuple[str, Any, Any]]) -> None:
        for kind, payload, outcome in items:
            if kind == "repair":
                self._on_repair(payload, outcome)
                continue
            if kind == "leadership":
                self.store.set_daemon_fact("ha", payload.to_fact())
                self._dirty = True
                continue
            if kind == "interrupted":
                self._announce_interrupted(payload, "a failover (the previous leader stopped "
                                                    "leading before it finished)")
                continue
            self._pending.discard(outcome)
            if kind == "power":
                self._on_power(outcome, *payload)
            else:
                self._on_check(outcome, *payload)

    def _on_power(self, future: Future[Any], batch_id: int, members: list[VMTarget]) -> None:
        started = self._batches[batch_id].started
        try:
            powers: dict[str, tuple[PowerInfo | None, str | None]] = future.result()
        except HealthCheckError as exc:
            log_event(log, Event.CHECK_FAILED, f"Azure login problem: {exc}",
                      level=logging.ERROR, reason=str(exc))
            powers = {t.name: (None, str(exc)) for t in members}
        except Exception as exc:  # an adapter bug must not stop monitoring
            log.exception("fetching power states failed")
            powers = {t.name: (None, f"{type(exc).__name__}: {exc}") for t in members}
        for t in members:
            power, error = powers[t.name]
            self._submit(self._pool, "check", (batch_id, t.name), self.monitor.probe,
                         t, power, error, started)

    def _on_check(self, future: Future[Any], batch_id: int, vm: str) -> None:
        batch = self._batches[batch_id]
        batch.waiting.discard(vm)
        self._scheduler.finished(vm, batch.started)
        try:
            batch.results.append(future.result())
        except Exception:
            log.exception("%s: health check crashed", vm)
        if not batch.waiting:
            del self._batches[batch_id]
            self._process_batch(batch.results)
            self._trim_memory()

    def _trim_memory(self) -> None:
        """Once nothing is in flight, give a sweep's freed memory back (at most every
        ``TRIM_EVERY`` seconds: trimming walks the heap)."""
        now = time.monotonic()
        if not self._batches and now - self._last_trim >= TRIM_EVERY:
            self._last_trim = now
            release_free_memory()

    # ------------------------------------------------------------------ decisions
    def _process_batch(self, results: list[HealthStatus]) -> None:
        enabled = self._config.enabled_vms()
        results = [r for r in results if r.vm_name in enabled]  # disabled meanwhile
        previous = {r.vm_name: self._latest.get(r.vm_name) for r in results}
        for status in results:
            self._latest[status.vm_name] = status
        self._last_sweep = dt.datetime.now(dt.UTC)
        self._dirty = True
        fleet = self._update_breaker()
        for status in results:
            self._report(status, previous[status.vm_name])
        for status in results:
            if not status.healthy and status.vm_name not in self._in_flight:
                self._heal(status, dataclasses.replace(fleet, in_flight=len(self._in_flight)))

    def _fleet(self) -> FleetView:
        enabled = self._config.enabled_vms()
        return fleet_view(len(enabled), (s for vm, s in self._latest.items() if vm in enabled),
                          len(self._in_flight), self._breaker_open)

    def _update_breaker(self) -> FleetView:
        """Open or close the circuit breaker on the fleet's latest results; the fleet view."""
        fleet = self._fleet()
        trips = breaker_trips(self._config.healing, fleet.running, fleet.failing)
        if trips != self._breaker_open:
            self._dirty = True
            self.store.set_daemon_fact("breaker_open", trips)
        if trips and not self._breaker_open:
            self._breaker_open = True
            log_event(log, Event.BREAKER_OPEN,
                      f"circuit breaker open: {fleet.failing} of {fleet.running} running VMs "
                      "fail at once; the monitor's own network is the likelier culprit, so no "
                      "VM is restarted until the fleet looks healthy again",
                      level=logging.ERROR, failing=fleet.failing, running=fleet.running)
        elif not trips and self._breaker_open:
            self._breaker_open = False
            log_event(log, Event.BREAKER_CLOSED,
                      f"circuit breaker closed: {fleet.failing} of {fleet.running} running VMs "
                      "failing; healing resumes", failing=fleet.failing, running=fleet.running)
        return dataclasses.replace(fleet, breaker_open=self._breaker_open)

    def _report(self, status: HealthStatus, prev: HealthStatus | None) -> None:
        vm = status.vm_name
        fields: dict[str, Any] = {
            "health_state": "healthy" if status.healthy else "unhealthy",
            "power_state": status.state,
            "failure_count": status.ssh_failures,
            "reason": status.reason,
            "check_duration": round(status.check_duration_seconds, 3),
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
        change = transition(prev, status, repairing=vm in self._in_flight,
                            unannounced=vm in self._unannounced)
        if prev is not None and change.power_changed:
            log_event(log, Event.POWER_CHANGED,
                      f"{vm}: power state {prev.state.value} -> {status.state.value}", vm=vm,
                      previous_state=prev.state, power_state=status.state)
            self.monitor.forget_vm(vm)  # a dynamic public IP changes with the power state
        if status.healthy:
            self._last_healthy[vm] = status.timestamp.timestamp()
        if change.defer_healthy:
            self._unannounced.add(vm)  # healthy before Azure said its repair ended
        elif change.announce_healthy or not status.healthy:
            self._unannounced.discard(vm)
        if change.announce_healthy:
            log_event(log, Event.VM_HEALTHY, f"{vm}: healthy again" if prev else
                      f"{vm}: healthy", vm=vm, power_state=status.state)
            self.store.set_held_reasons({vm: None})
        for hook, context in change.hooks:
            self._fire(hook, vm, dict(context))

    def _heal(self, status: HealthStatus, fleet: FleetView) -> None:
        """SelfHealer.handle_failure's two steps: plan now, act on a thread of its own."""
        vm = status.vm_name
        if not self._acting():
            return  # a standby: the leader decides, with the shared ledger
        decision = self.healer.plan(vm, failure_of(status), fleet, self._last_healthy.get(vm))
        if decision.action is None:
            return
        if decision.dry_run:
            self.healer.act(vm, decision)  # records "would repair"; nothing waits on Azure
            return
        self._start_repair(vm, decision)

    def _start_repair(self, vm: str, decision: Decision) -> None:
        self._in_flight.add(vm)
        self._dirty = True

        def run() -> None:
            outcome: RestartResult | BaseException | None
            try:
                outcome = self.healer.act(vm, decision)
            except BaseException as exc:  # recorded and logged by the loop
                outcome = exc
            self._done.put(("repair", vm, outcome))

        # A plain daemon thread: a repair waits minutes on Azure and must not keep a
        # stopping daemon alive (its intent is already committed to the state store).
        threading.Thread(target=run, name=f"repair-{vm}", daemon=True).start()

    def _on_repair(self, vm: str, outcome: RestartResult | BaseException | None) -> None:
        self._in_flight.discard(vm)
        self._dirty = True
        if isinstance(outcome, LifecycleError):  # e.g. no longer leading: not started
            log.warning("%s", outcome)
        elif isinstance(outcome, BaseException):
            log.error("%s: repair crashed: %s", vm, outcome)

    def _fire(self, hook: HookType, vm: str, context: dict[str, object]) -> None:
        assert self._hooks is not None
        self._hooks.execute_hook_async(hook, vm, context)

    # ------------------------------------------------------------------ status
    def _publish_status(self, force: bool = False, ready: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        text = self._summary()
        if text == self._status_text and not force:
            return
        self._status_text = text
        self.store.set_daemon_fact("status_text", text)
        if self._last_sweep:
            self.store.set_daemon_fact("last_sweep", self._last_sweep.isoformat())
        if ready:
            sd.ready(text)
        else:
            sd.status(text)

    def _summary(self) -> str:
        view = self.leadership.view() if self.leadership is not None else None
        return status_line(sorted(self._config.enabled_vms()), self._latest,
                           breaker_open=self._breaker_open,
                           dry_run=self._config.healing.dry_run, in_flight=self._in_flight,
                           config_error=self._config_error,
                           role=None if view is None else view.role.value,
                           standby_reason=None if view is None else view.reason)

    # ------------------------------------------------------------------ reload & stop
    def _config_changed(self) -> bool:
        return _mtime(self.manager.config_path) != self._config_mtime

    def _apply_reload(self) -> None:
        sd.reloading()
        self._config_mtime = _mtime(self.manager.config_path)
        try:
            new = self.manager.load()
        except LifecycleConfigError as exc:
            self._config_error = str(exc)
            log_event(log, Event.CONFIG_RELOAD_FAILED,
                      f"configuration not reloaded, the previous one stays in force: {exc}",
                      level=logging.ERROR, reason=str(exc),
                      config_mtime_ns=self._config_mtime)
        else:
            compute = None
            if new.ha != self._config.ha:
                log.warning("[ha] changed; the change takes effect when the daemon restarts "
                            "(systemctl --user restart azlin-lifecycle)")
            if new.azure != self._config.azure and self._compute is None:
                compute = build_compute(new)  # new endpoint or credential
                if self._addresses is None:
                    self.monitor.addresses = build_address_book(new, compute)
            self._config = new
            self._config_error = None
            self.monitor.set_config(new, compute)
            self.healer.set_config(new, compute)
            assert self._hooks is not None
            self._hooks.apply_settings(new.hooks)  # timeouts and retries apply at once
            self._sync_schedule()
            logging.getLogger().setLevel(new.daemon.log_level.value)
            vms = len(new.enabled_vms())
            log_event(log, Event.CONFIG_RELOADED,
                      f"configuration reloaded: monitoring {vms} VMs", monitored=vms,
                      config_mtime_ns=self._config_mtime)
        self._publish_status(force=True, ready=True)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload.set()

    def _shutdown(self) -> None:
        sd.stopping()
        if self.leadership is not None:  # a standby takes over at once, not at expiry
            self.leadership.stop(release=True)
        log_event(log, Event.DAEMON_STOPPING,
                  "azlin-lifecycle stopping" + (
                      f"; repairs left to Azure: {', '.join(sorted(self._in_flight))}"
                      if self._in_flight else ""))
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._azure_pool.shutdown(wait=False, cancel_futures=True)
        if self._hooks is not None:
            self._hooks.shutdown(timeout=self._config.hooks.kill_grace_seconds + 1.0)
        self.monitor.close()


NOISY_LIBRARIES = ("azure", "urllib3", "msal")


def quiet_libraries() -> None:
    """Keep the SDKs' per-request and per-connection chatter out of the journal.

    At INFO the Azure SDK logs every HTTP request with its headers and paramiko every
    connection; the daemon's own events already say what matters.
    """
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    # paramiko logs every connection reset (a VM rebooting) at ERROR from its own thread;
    # the SSH adapter turns every failure into a check's reason, so its logs add nothing.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def exit_abandoning_workers(code: int = 0) -> None:
    """End the process now, after the daemon stopped, without joining worker threads.

    A check blocked on the network would otherwise hold the interpreter's exit for its
    full timeout, past the unit's stop timeout. Nothing is lost: every state change is
    a committed SQLite transaction, and a repair's intent was recorded before it began.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
