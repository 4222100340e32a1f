"""SelfHealer: decide, act, and tell — without ever causing a restart storm.

Decisions come from :mod:`azlin_lifecycle.policy` (pure). Acting means: commit the
repair intent to the state store (so a daemon killed mid-restart cannot restart the
VM again), ask Azure through the compute adapter and wait for the long-running
operation, record the outcome, start the grace period, reset the failure counter,
and fire ``on_restart``. Every decision that holds a repair back is logged with why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from . import postmortem
from .component import ConfiguredComponent
from .config import HookType, LifecycleConfig
from .errors import HealthCheckError, LifecycleConfigError, SelfHealingError
from .events import Event, log_event
from .models import (
    AzureMark,
    HealthFailure,
    PowerInfo,
    RepairAction,
    RepairRecord,
    RestartResult,
    VMState,
    VMTarget,
    clock_utc,
    utcnow,
)
from .policy import (
    GUEST_REPAIRS,
    Decision,
    Settlement,
    corroborate,
    decide,
    settle,
    wanted_action,
)
from .ports import (
    AzureOperationError,
    AzureSignals,
    ComputeApi,
    HookRunner,
    NotLeader,
    RepairLedger,
)
from .rules import FleetView
from .signals import Capture, PlatformHealth, join_evidence, maintenance_gate, platform_gate
from .state import StateStore
from .targets import resolve_target

__all__ = ["RestartResult", "SelfHealer", "SelfHealingError"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class SelfHealer(ConfiguredComponent):
    """Takes its collaborators; :func:`azlin_lifecycle.wiring.SelfHealer` builds the real
    ones from the configuration file (the spec's argument-less ``SelfHealer()``).

    ``signals`` (Resource Health, boot diagnostics) gates a repair that would act and
    catches a post-mortem before a guest repair; None: neither (decided as without them).
    """

    def __init__(
        self,
        config: LifecycleConfig,
        *,
        compute: ComputeApi,
        store: StateStore,
        hooks: HookRunner,
        ledger: RepairLedger | None = None,
        on_repaired: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        signals: AzureSignals | None = None,
    ) -> None:
        super().__init__(config, compute=compute, store=store, ledger=ledger)
        self.hooks = hooks
        self.signals = signals
        self._on_repaired = on_repaired
        self._clock = clock
        self._platform_seen: dict[str, float] = {}  # vm -> when Azure was seen repairing it

    def _vm(self, vm_name: str) -> None:
        if vm_name not in self.config.vms:
            raise SelfHealingError(
                f"VM {vm_name!r} is not configured; add it with: azlin lifecycle enable {vm_name}"
            )

    # ------------------------------------------------------------------ deciding
    def decide(self, vm_name: str, failure: HealthFailure, fleet: FleetView | None = None,
               last_healthy: float | None = None) -> Decision:
        self._vm(vm_name)
        if failure.vm_name != vm_name:
            raise SelfHealingError(
                f"failure is for {failure.vm_name!r}, not {vm_name!r}: pass the VM's own failure"
            )
        now = self._clock()
        window = self.config.healing.budget_window_seconds
        vm, healing = self.config.vms[vm_name], self.config.healing
        decision = decide(
            vm,
            healing,
            failure,
            self.ledger.repairs(vm_name, since=now - max(window, 7 * 86400)),
            grace_until=self.ledger.grace_until(vm_name),
            now=now,
            fleet=fleet or FleetView(monitored=len(self.config.enabled_vms())),
            last_healthy=last_healthy,
        )
        if decision.action is not None and self.signals is not None:  # one read
            health, health_error = self._platform_health(vm_name)
            decision, repairing = platform_gate(vm, healing, failure, decision, health,
                                                health_error, now,
                                                self._platform_seen.get(vm_name))
            if repairing:
                self._platform_seen[vm_name] = now
        platform = decision.evidence
        if decision.action in GUEST_REPAIRS:
            view, error = self._guest_view(vm_name)
            decision = maintenance_gate(vm, failure, decision,
                                        None if view is None else view.maintenance, now)
            decision = corroborate(vm, healing, failure, decision, view, error, now)
            decision = dataclasses.replace(decision,
                                           evidence=join_evidence(platform, decision.evidence))
            if view is not None:
                decision = dataclasses.replace(decision, mark=AzureMark.of(view))
        elif decision.action is RepairAction.START:
            decision = dataclasses.replace(decision, mark=AzureMark(failure.state))
        return decision

    def _ask(self, vm_name: str, read: Callable[[VMTarget], T]) -> tuple[T | None, str | None]:
        """One read of Azure about the VM now (its instance view, its Resource Health), or
        why it could not be read (Azure, the login, or a VM no longer configured)."""
        try:
            return read(resolve_target(self.config, vm_name)), None
        except (AzureOperationError, HealthCheckError, LifecycleConfigError) as exc:
            return None, str(exc)

    def _guest_view(self, vm_name: str) -> tuple[PowerInfo | None, str | None]:
        return self._ask(vm_name, self.compute.instance_view)

    def _platform_health(self, vm_name: str) -> tuple[PlatformHealth | None, str | None]:
        assert self.signals is not None
        return self._ask(vm_name, self.signals.platform_health)

    def needs_fleet(self, failure: HealthFailure) -> bool:
        """Could this failure lead to a repair (so its decision waits for the fleet view:
        the circuit breaker, the cap)? No for reporting-only policies, faults that need
        you, a VM stopped on purpose with its policy, or failures below the threshold."""
        vm = self.config.vms.get(failure.vm_name)
        return vm is not None and wanted_action(vm, failure)[0] is not None

    def settle_all(self, records: list[RepairRecord]) -> list[tuple[RepairRecord, Settlement]]:
        return [(record, self.settle(record)) for record in records]

    def should_restart(self, vm_name: str, failure: HealthFailure) -> bool:
        """Would a repair be started now (restart policy and every safety check)?"""
        return self.decide(vm_name, failure).action is not None

    # ------------------------------------------------------------------ acting
    def handle_failure(self, vm_name: str, failure: HealthFailure,
                       fleet: FleetView | None = None) -> RestartResult | None:
        """Decide, fire ``on_failure`` (on every call: the daemon pages per incident
        instead, see :mod:`~.alerts`), and repair (or say why not). Blocks while
        repairing."""
        decision = self.plan(vm_name, failure, fleet)
        context = self.alert_context(failure, decision)
        if context is not None:
            self.hooks.execute_hook_async(HookType.ON_FAILURE, vm_name, context)
        return self.act(vm_name, decision)

    def act(self, vm_name: str, decision: Decision) -> RestartResult | None:
        """Carry out a decision from :meth:`plan`: nothing, a dry run, or the repair
        (blocking while Azure works; the daemon runs this on a thread of its own)."""
        if decision.action is None:
            return None
        if decision.dry_run:
            return self.record_dry_run(vm_name, decision)
        return self.repair(vm_name, decision.action, reason=decision.reason,
                           evidence=decision.evidence, mark=decision.mark)

    def plan(self, vm_name: str, failure: HealthFailure, fleet: FleetView | None = None,
             last_healthy: float | None = None) -> Decision:
        """Decide, log the decision, and record any hold."""
        decision = self.decide(vm_name, failure, fleet, last_healthy)
        self.store.set_held_reasons({vm_name: decision.reason if decision.held else None})
        if decision.evidence is not None:
            self.store.set_evidence(vm_name, decision.evidence)
        if decision.held:
            log_event(log, Event.HEALING_HELD, f"{vm_name}: {decision.reason}", vm=vm_name,
                      level=logging.WARNING, hold=decision.hold_kind,
                      failure_count=failure.failure_count, reason=decision.reason,
                      evidence=decision.evidence)
        return decision

    @staticmethod
    def alert_context(failure: HealthFailure, decision: Decision) -> dict[str, object] | None:
        """``on_failure``'s context for a failure and its decision; None when it warrants
        no alert (a VM stopped on purpose, or still starting, that nothing holds)."""
        if not decision.held and (failure.state.stopped_on_purpose
                                  or failure.state is VMState.STARTING):
            return None
        return {"failure_count": failure.failure_count,
                "reason": decision.reason if decision.held else failure.reason,
                "state": failure.state.value,
                "healing": decision.hold_kind or ("would_repair" if decision.dry_run else
                                                  "repairing" if decision.action else "none")}

    def record_dry_run(self, vm_name: str, decision: Decision) -> RestartResult:
        assert decision.action is not None
        try:
            self.ledger.begin_repair(vm_name, decision.action, dry_run=True, grace_until=0.0,
                                     now=self._clock())
        except NotLeader as exc:
            raise SelfHealingError(f"{vm_name}: not recorded: {exc}") from None
        log_event(log, Event.RESTART_WOULD, f"{vm_name}: {decision.reason}", vm=vm_name,
                  level=logging.WARNING, action=decision.action, reason=decision.reason,
                  evidence=decision.evidence)
        return RestartResult(vm_name=vm_name, success=True, action=decision.action, dry_run=True)

    def settle(self, record: RepairRecord) -> Settlement:
        """Ask Azure whether an interrupted repair's request ever reached it, and record
        the answer (not sent: no budget spent, grace lifted). One instance view."""
        view, error = self._guest_view(record.vm)
        settlement = settle(record, view, error)
        try:
            self.ledger.settle_interrupted(record.id, sent=settlement.sent is not False,
                                          note=f"interrupted: {settlement.words}",
                                          now=self._clock())
        except NotLeader as exc:  # lost the lease meantime: the next leader settles it
            settlement = Settlement(None, f"not settled: {exc}; the next leader settles it")
        log_event(log, Event.REPAIR_SETTLED, f"{record.vm}: {record.action.value} of "
                  f"{record.started_at:%H:%M:%S} UTC was interrupted; {settlement.words}",
                  vm=record.vm, level=logging.WARNING, action=record.action,
                  sent="unknown" if settlement.sent is None else settlement.sent)
        return settlement

    def restart_vm(self, vm_name: str) -> RestartResult:
        """Restart ``vm_name`` now, regardless of policy (an explicit request)."""
        self._vm(vm_name)
        return self.repair(vm_name, RepairAction.RESTART, reason="requested")

    def repair(self, vm_name: str, action: RepairAction, reason: str,
               evidence: str | None = None, mark: AzureMark | None = None) -> RestartResult:
        """Carry out one repair: intent first, then Azure, then outcome, grace and hooks."""
        healing = self.config.healing
        target = resolve_target(self.config, vm_name)
        capture = self._postmortem(vm_name, target, action, reason) \
            if action in GUEST_REPAIRS else None
        serial_log = None if capture is None else capture.serial_log
        started = self._clock()
        timeout = float(healing.redeploy_timeout_seconds if action is RepairAction.REDEPLOY
                        else healing.restart_timeout_seconds)
        try:
            repair_id = self.ledger.begin_repair(
                vm_name, action, dry_run=False,
                grace_until=started + timeout + healing.grace_period_seconds, now=started,
                before=mark,
            )
        except NotLeader as exc:  # the intent could not be recorded: Azure is not asked
            raise SelfHealingError(f"{vm_name}: not repairing: {exc}") from None
        event = Event.ESCALATION_REDEPLOY if action is RepairAction.REDEPLOY else \
            Event.RESTART_REQUESTED
        log_event(log, event, f"{vm_name}: {action.value} requested: {reason}", vm=vm_name,
                  level=logging.WARNING, action=action, reason=reason, evidence=evidence,
                  serial_log=serial_log)
        error: str | None = None
        detail: str | None = None  # Azure's whole text, when it says more than one line
        try:
            operation = {
                RepairAction.RESTART: self.compute.restart,
                RepairAction.START: self.compute.start,
                RepairAction.REDEPLOY: self.compute.redeploy,
            }[action]
            operation(target, timeout, on_accepted=lambda: self._accepted(vm_name, action))
        except AzureOperationError as exc:
            error = str(exc) if not exc.code or exc.code in str(exc) else f"{exc} [{exc.code}]"
            detail = exc.detail
        ended = self._clock()
        self.store.set_repair_phase(vm_name, None)
        success = error is None
        try:  # the record keeps the one line, then Azure's whole text (status --json)
            self.ledger.end_repair(repair_id, success=success,
                                   error=error if detail is None else f"{error}\n{detail}",
                                   grace_until=ended + healing.grace_period_seconds, now=ended)
            leading = True
        except NotLeader as exc:
            leading = False
            log.warning("%s: %s %s after this monitor stopped leading (%s); the leader keeps "
                        "the attempt as interrupted, its grace period stands", vm_name,
                        action.value, "succeeded" if error is None else "failed", exc)
        if self._on_repaired is not None:
            self._on_repaired(vm_name)
        result = RestartResult(
            vm_name=vm_name, success=success, action=action, timestamp=utcnow(),
            duration_seconds=ended - started, error_message=error,
        )
        log_event(
            log, Event.RESTART_SUCCEEDED if success else Event.RESTART_FAILED,
            f"{vm_name}: {action.value} "
            + ("succeeded" if success else f"failed: {error}")
            + f" after {result.duration_seconds:.1f}s; grace period "
            f"{healing.grace_period_seconds}s",
            vm=vm_name, level=logging.INFO if success else logging.ERROR,
            action=action, duration_seconds=round(result.duration_seconds, 2), error=error,
            error_detail=detail,
        )
        if leading:  # else the leader announces it (interrupted)
            self.hooks.execute_hook_async(
                HookType.ON_RESTART, vm_name,
                {"restart_result": "success" if success else "failure", "action": action.value,
                 "error": error, "error_detail": detail,
                 "duration_seconds": round(result.duration_seconds, 2),
                 "serial_log": None if serial_log is None else str(serial_log),
                 "serial_log_tail": postmortem.tail(serial_log) or None},
            )
        return result

    # ------------------------------------------------------------------ around a repair
    def _postmortem(self, vm_name: str, target: VMTarget, action: RepairAction,
                    reason: str) -> Capture | None:
        """Before a guest repair: the serial log and screenshot into the state directory,
        within ``capture_seconds`` (the repair waits no longer); None when turned off."""
        healing = self.config.healing
        if self.signals is None or not healing.capture_serial_log:
            return None
        now = self._clock()
        base = postmortem.root(self.store.path.parent)
        try:
            directory = postmortem.new_directory(base, vm_name, now)
            capture = self.signals.capture(target, directory, float(healing.capture_seconds))
            postmortem.record(capture, vm=vm_name, action=action.value, reason=reason, now=now)
            postmortem.prune(base, vm_name, healing.postmortems_kept)
        except OSError as exc:
            log.warning("%s: post-mortem not kept: %s", vm_name, exc)
            return None
        where = f"; serial log {capture.serial_log}" if capture.serial_log else ""
        log_event(log, Event.POSTMORTEM, f"{vm_name}: before the {action.value}: "
                  f"{capture.note}{where}", vm=vm_name, action=action, note=capture.note,
                  serial_log=capture.serial_log, screenshot=capture.screenshot,
                  capture_seconds=round(capture.seconds, 2))
        return capture

    def _accepted(self, vm_name: str, action: RepairAction) -> None:
        """Azure took the request (its 202): from now on it may wait for the guest's
        approval of its Scheduled Event before it starts (``status`` says so)."""
        now = self._clock()
        try:
            self.store.set_repair_phase(vm_name, {"action": action.value, "accepted": now})
        except Exception as exc:  # a status detail must never fail the repair
            log.warning("%s: %s accepted, not recorded: %s", vm_name, action.value, exc)
        wait = "" if action is RepairAction.START else (
            " (a restart or redeploy can wait ~15 min for the guest's approval of its "
            "Scheduled Event)")
        log_event(log, Event.REPAIR_ACCEPTED, f"{vm_name}: {action.value} accepted by Azure at "
                  f"{clock_utc(now)}; Azure has not started it yet{wait}", vm=vm_name,
                  action=action)
