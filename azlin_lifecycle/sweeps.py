"""Work off the loop's thread. Checks: the VMs due together form a batch, whose power
states come from one Azure listing per subscription (a small Azure pool), then each VM's
probe runs on the bounded check pool. Repairs: each on a thread of its own, since one
waits minutes on Azure.

Everything that completes — a listing, a probe, a repair, and what other threads post (a
change of leadership) — lands in one queue, so the loop does O(1) work per completion
however large the fleet, and never blocks on the network. :class:`CheckRunner` keeps the
batches; the loop asks it what completed (:meth:`wait`) and hands each completion back
(:meth:`on_power`, :meth:`on_check`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .adapters.libc import release_free_memory
from .config import LifecycleConfig
from .errors import HealthCheckError, LifecycleConfigError
from .events import Event, log_event
from .health import HealthMonitor
from .models import HealthStatus, PowerInfo, VMTarget
from .targets import resolve_target

log = logging.getLogger("azlin_lifecycle.daemon")

AZURE_WORKERS = 4
TRIM_EVERY = 10.0  # seconds between returns of freed heap memory to the system
# What the queue carries: (kind, payload, outcome). Kinds of this module: "power", "check".
Completion = tuple[str, Any, Any]


@dataclass
class Batch:
    started: float  # monotonic: when the batch was dispatched
    waiting: set[str]
    results: list[HealthStatus] = field(default_factory=list)


@dataclass(frozen=True)
class Checked:
    """One probe is in: the VM, when its batch started, its result (None: the check
    crashed, and said so), and the batch's results once the last VM is in (else None)."""

    vm: str
    started: float
    status: HealthStatus | None
    finished: list[HealthStatus] | None


class CheckRunner:
    def __init__(self, monitor: HealthMonitor, max_workers: int) -> None:
        self.monitor = monitor
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="check")
        self._azure_pool = ThreadPoolExecutor(max_workers=AZURE_WORKERS,
                                              thread_name_prefix="azure")
        # Repair decisions, one at a time (they ask Azure; see deciding.py).
        self._decider = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decide")
        self._batches: dict[int, Batch] = {}
        self._batch_ids = 0
        self._pending: set[Future[Any]] = set()
        self._done: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._last_trim = 0.0

    @property
    def busy(self) -> bool:
        """A batch is still being checked."""
        return bool(self._batches)

    def post(self, kind: str, payload: Any, outcome: Any = None) -> None:
        """Hand the loop something that completed elsewhere (any thread)."""
        self._done.put((kind, payload, outcome))

    def wait(self, timeout: float) -> list[Completion]:
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

    # ------------------------------------------------------------------ a batch
    def dispatch(self, vms: list[str], config: LifecycleConfig, now: float) -> list[str]:
        """Check ``vms`` as one batch: the same two steps as HealthMonitor.check_many,
        power states first, then each probe. Returns the VMs that cannot be checked (their
        place in Azure cannot be worked out), which it logged."""
        targets: list[VMTarget] = []
        unresolved = []
        for vm in vms:
            try:
                targets.append(resolve_target(config, vm))
            except LifecycleConfigError as exc:
                unresolved.append(vm)
                log_event(log, Event.CHECK_FAILED, f"{vm}: cannot check: {exc}", vm=vm,
                          level=logging.ERROR, reason=str(exc))
        if targets:
            self._dispatch(targets, now)
        return unresolved

    def _dispatch(self, targets: list[VMTarget], now: float) -> None:
        self._batch_ids += 1
        batch_id = self._batch_ids
        self._batches[batch_id] = Batch(started=now, waiting={t.name for t in targets})
        self._submit(self._azure_pool, "power", (batch_id, targets),
                     self.monitor.fetch_power_states, targets)

    def on_power(self, future: Future[Any], batch_id: int, members: list[VMTarget]) -> None:
        """The batch's power states are in: probe each VM."""
        self._pending.discard(future)
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

    def on_check(self, future: Future[Any], batch_id: int, vm: str) -> Checked:
        """One VM's probe is in."""
        self._pending.discard(future)
        batch = self._batches[batch_id]
        batch.waiting.discard(vm)
        status = None
        try:
            status = future.result()
            batch.results.append(status)
        except Exception:
            log.exception("%s: health check crashed", vm)
        if batch.waiting:
            return Checked(vm, batch.started, status, None)
        del self._batches[batch_id]
        return Checked(vm, batch.started, status, batch.results)

    def trim_memory(self) -> None:
        """Once no batch is in flight, give a sweep's freed memory back (at most every
        ``TRIM_EVERY`` seconds: trimming walks the heap)."""
        now = time.monotonic()
        if not self._batches and now - self._last_trim >= TRIM_EVERY:
            self._last_trim = now
            release_free_memory()

    # ------------------------------------------------------------------ aside
    def aside(self, kind: str, payload: Any, work: Callable[[], Any]) -> None:
        """Run ``work()`` on a thread of its own (a repair, a question to Azure); its
        result, or the exception it raised, comes back as a (kind, payload, outcome)
        completion."""
        def run() -> None:
            try:
                outcome = work()
            except BaseException as exc:  # recorded and logged by the loop
                outcome = exc
            self.post(kind, payload, outcome)

        # A plain daemon thread: a repair waits minutes on Azure and must not keep a
        # stopping daemon alive (its intent is already committed to the state store).
        threading.Thread(target=run, name=f"{kind}-{payload}"[:40], daemon=True).start()

    def decide(self, kind: str, payload: Any, work: Callable[[], Any]) -> None:
        """Run ``work()`` on the decider thread, after the decisions asked before; its
        future comes back as a (kind, payload, future) completion."""
        self._submit(self._decider, kind, payload, work)

    def _submit(self, pool: ThreadPoolExecutor, kind: str, payload: Any,
                fn: Callable[..., Any], *args: Any) -> None:
        future = pool.submit(fn, *args)
        self._pending.add(future)
        future.add_done_callback(lambda f: self._done.put((kind, payload, f)))

    def shutdown(self) -> None:
        """Abandon what has not started; what runs is left to finish on its own."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._azure_pool.shutdown(wait=False, cancel_futures=True)
        self._decider.shutdown(wait=False, cancel_futures=True)
