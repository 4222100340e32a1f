"""HealthMonitor: is a VM alive? Azure's power state first, then SSH.

A check asks Azure for the power state and, only when the VM is running (or Azure
cannot tell), connects over SSH and reads the metrics with one remote command. A VM
that Azure reports stopped is not an SSH failure. Consecutive SSH failures are counted
per VM (thread-safe), reset when the VM is healthy, not counted during the grace
period after a repair, and seeded from the persisted history when a new monitor starts.

Only guest-side faults count (refused, timed out, hung, connection lost, command timed
out: see :class:`~azlin_lifecycle.models.SshFault`). A fault a restart cannot fix —
authentication, a changed host key, a name that does not resolve, a missing key, the
monitor's own network — "needs you": the reason says what to fix, and the count is reset.

The monitor takes its collaborators (``compute``, ``ssh``, ``addresses``, ``store``) as
arguments; :func:`azlin_lifecycle.wiring.HealthMonitor` builds the real ones from the
configuration file (that is the spec's argument-less ``HealthMonitor()``). The rules —
what counts, what a reason says — are :mod:`azlin_lifecycle.rules`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from . import models
from .component import ConfiguredComponent
from .config import LifecycleConfig
from .errors import HealthCheckError
from .models import (
    HealthFailure,
    HealthStatus,
    PowerInfo,
    SshFault,
    SshProbeResult,
    VMMetrics,
    VMState,
    VMTarget,
)
from .policy import guest_evidence
from .ports import AddressBook, AzureOperationError, ComputeApi, RepairLedger, SshProber
from .rules import (
    SSH_STATES,
    azure_words,
    check_reason,
    counts_toward_restart,
    is_scope_code,
    next_failure_count,
    scope_reason,
)
from .state import StateStore
from .targets import resolve_target

__all__ = [
    "HealthCheckError",
    "HealthFailure",
    "HealthMonitor",
    "HealthStatus",
    "VMMetrics",
    "VMState",
]


class HealthMonitor(ConfiguredComponent):
    def __init__(
        self,
        config: LifecycleConfig,
        *,
        compute: ComputeApi,
        ssh: SshProber,
        addresses: AddressBook,
        store: StateStore,
        ledger: RepairLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, compute=compute, store=store, ledger=ledger)
        self.ssh = ssh
        self.addresses = addresses
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._routed: dict[str, VMTarget] = {}  # the target each VM was last probed as
        self._vm_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def target(self, vm_name: str) -> VMTarget:
        return resolve_target(self.config, vm_name)

    def close(self) -> None:
        self.ssh.close()

    def forget_vm(self, vm_name: str) -> None:
        """Drop what may have changed with the VM's power state: its address (a dynamic
        IP changes on start, redeploy, deallocate) and its cached SSH connection."""
        with self._lock:
            routed = self._routed.pop(vm_name, None)
        self.addresses.forget(vm_name)
        if routed is not None:
            self.ssh.forget(routed)

    def forget_power_states(self) -> None:
        """Drop the shared listings (e.g. after a repair changed a VM's state)."""
        self.compute.forget_power_states()

    # ------------------------------------------------------------------ checks
    # Every check is the same two steps, as the daemon runs them: the power states of the
    # VMs due (fetch_power_states: one shared listing), then each VM's probe.
    def check_vm_health(self, vm_name: str) -> HealthStatus:
        """Check one VM now and record the result."""
        return self.check_many([vm_name])[vm_name]

    def check_many(
        self, vm_names: Iterable[str], max_workers: int | None = None
    ) -> dict[str, HealthStatus]:
        """Check many VMs at once: their power states from one fresh listing (an explicit
        check reads Azure now; only the daemon's sweeps share listings), SSH in parallel."""
        started = time.monotonic()
        targets = [self.target(name) for name in vm_names]
        self.forget_power_states()
        powers = self.fetch_power_states(targets)
        workers = min(max_workers or self.config.daemon.max_workers, max(len(targets), 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
            futures = {
                t.name: pool.submit(self.probe, t, *powers[t.name], started) for t in targets
            }
            return {name: future.result() for name, future in futures.items()}

    def fetch_power_states(
        self, targets: Iterable[VMTarget]
    ) -> dict[str, tuple[PowerInfo | None, str | None]]:
        """Power state (or the Azure error text) of each target, one call per group of the
        adapter's shared listing.

        A VM missing from its group's listing is NOT_FOUND. A missing login raises
        HealthCheckError: every check would fail the same way. When Azure says the
        subscription or resource group does not exist, or that this login cannot read it,
        each member's power is Azure's answer (``code``, and the reason in ``message``).
        """
        groups: dict[tuple[str, str], list[VMTarget]] = defaultdict(list)
        for t in targets:
            groups[(t.subscription_id, t.resource_group)].append(t)
        result: dict[str, tuple[PowerInfo | None, str | None]] = {}
        for (subscription, group), members in groups.items():
            try:
                listing = self.compute.power_states(subscription, group,
                                                    expected=[t.name for t in members])
            except AzureOperationError as exc:
                for t in members:
                    result[t.name] = (
                        (_wrong_place(t, exc.code, azure_words(str(exc)), "subscription"), None)
                        if is_scope_code(exc.code) else (None, str(exc)))
                continue
            if not listing:  # none of the group's VMs listed: is the group there, readable?
                code, words, found = self._ask_group(members[0])
                if is_scope_code(code):
                    for t in members:
                        result[t.name] = (_wrong_place(t, code, words, "resource group"), None)
                    continue
                if found is not None:  # it is there after all (a VM new since the listing)
                    listing = {members[0].name.lower(): found}
            for t in members:
                info = listing.get(t.name.lower()) or PowerInfo(
                    VMState.NOT_FOUND,
                    message=f"VM {t.name!r} is not in resource group {group!r}",
                )
                result[t.name] = (info, None)
        return result

    def _ask_group(self, target: VMTarget) -> tuple[str | None, str, PowerInfo | None]:
        """The subscription's listing has none of this group's VMs: the group may not
        exist, or this login may not read it. One VM's instance view tells (Azure checks
        the group first): Azure's error code and words, or the VM's power if it is there."""
        try:
            info = self.compute.instance_view(target)
        except AzureOperationError as exc:
            return exc.code, azure_words(str(exc)), None
        if info.state is VMState.NOT_FOUND:
            return info.code, info.message or "", None
        return None, "", info

    def probe(
        self,
        target: VMTarget,
        power: PowerInfo | None,
        azure_error: str | None,
        started: float | None = None,
    ) -> HealthStatus:
        """Finish a check whose power state is known: SSH if it may be up, then record."""
        started = time.monotonic() if started is None else started
        if power is not None and is_scope_code(power.code):  # the config is wrong: no SSH
            status = HealthStatus(
                vm_name=target.name, state=power.state, ssh_reachable=False,
                ssh_failures=self._count(target.name, False), healthy=False,
                reason=power.message, ssh_checked=False, fault=SshFault.AZURE_SCOPE,
                check_duration_seconds=time.monotonic() - started, timestamp=models.utcnow())
            self.store.add_checks([status])
            return status
        state = power.state if power else VMState.UNKNOWN
        probe: SshProbeResult | None = None
        via: str | None = None
        if state in SSH_STATES:
            try:
                route = self.addresses.route(target)
            except AzureOperationError as exc:
                probe = SshProbeResult(False, "address unknown: Azure could not say where the "
                                       f"VM is ({exc})", fault=SshFault.OTHER)
            else:
                if route.target is None:
                    status = self._judge_by_azure(target, route.via, time.monotonic() - started)
                    self.store.add_checks([status])
                    return status
                target, via = route.target, route.via
                with self._lock:
                    self._routed[target.name] = target
                probe = self.ssh.probe(target, self.config.daemon.ssh_timeout_seconds)
        in_grace = self._in_grace(target.name)
        healthy = probe is not None and probe.reachable
        status = HealthStatus(
            vm_name=target.name,
            state=state,
            ssh_reachable=healthy,
            ssh_failures=self._count(target.name, counts_toward_restart(probe, in_grace)),
            healthy=healthy,
            reason=None if healthy else check_reason(target, state, power, azure_error, probe,
                                                     in_grace),
            provisioning_state=power.provisioning_state if power else None,
            agent_status=power.agent_status if power else None,
            metrics=probe.metrics if probe else None,
            ssh_checked=probe is not None,
            check_duration_seconds=time.monotonic() - started,
            timestamp=models.utcnow(),
            fault=None if probe is None or probe.reachable else probe.fault,
            ssh_via=via,
        )
        self.store.add_checks([status])
        return status

    def _judge_by_azure(self, target: VMTarget, why: str, duration: float) -> HealthStatus:
        """A VM that SSH cannot reach from here (only a private address, no tunnel): its
        health from its instance view alone. Agent Not Ready or vmHealth unhealthy count
        as a failure; Ready (or healthy) is healthy; no word from the guest counts nothing."""
        power: PowerInfo | None
        alive: bool | None
        try:
            power = self.compute.instance_view(target)
        except AzureOperationError as exc:
            power, words, alive = None, f"Azure's view unavailable ({exc})", None
        else:
            alive, words = guest_evidence(power, self._clock(),
                                          self.config.healing.agent_status_max_age_seconds)
        count = self._count(target.name, alive is False and not self._in_grace(target.name))
        return HealthStatus(
            vm_name=target.name, state=power.state if power else VMState.UNKNOWN,
            ssh_reachable=False, ssh_failures=count, healthy=alive is True,
            reason=f"{why}; judged by Azure's view: {words}",
            provisioning_state=power.provisioning_state if power else None,
            agent_status=power.agent_status if power else None, ssh_checked=False,
            check_duration_seconds=duration, timestamp=models.utcnow(),
            fault=SshFault.NOT_APPLICABLE, ssh_via=why)

    # ------------------------------------------------------------------ counting
    def _in_grace(self, vm: str) -> bool:
        return self.ledger.grace_until(vm) > self._clock()

    def _count(self, vm: str, counts: bool) -> int:
        """The VM's consecutive failures after this check (thread-safe per VM)."""
        with self._vm_locks[vm]:
            count = next_failure_count(self._current_failures(vm), counts)
            with self._lock:
                self._failures[vm] = count
        return count

    def _current_failures(self, vm: str) -> int:
        with self._lock:
            if vm in self._failures:
                return self._failures[vm]
        # The newest record of this VM only (an index lookup): latest() would read
        # the newest record of every VM, for each VM of a fresh monitor's first sweep.
        last = self.store.history(vm, 1)
        return last[-1].ssh_failures if last else 0

    def failure_count(self, vm_name: str) -> int:
        with self._vm_locks[vm_name]:
            return self._current_failures(vm_name)

    def reset_failures(self, vm_name: str) -> None:
        with self._vm_locks[vm_name], self._lock:
            self._failures[vm_name] = 0

    def repaired(self, vm_name: str) -> None:
        """Azure says a repair of the VM ended: count failures from 0, and read its power
        state and address afresh (both may have changed)."""
        self.reset_failures(vm_name)
        self.forget_power_states()
        self.forget_vm(vm_name)

    # ------------------------------------------------------------------ history
    def get_health_history(self, vm_name: str, limit: int | None = None) -> list[HealthStatus]:
        """Recorded checks of ``vm_name``, oldest first (persisted across restarts)."""
        return self.store.history(vm_name, limit)

    def clear_health_history(self, vm_name: str) -> None:
        self.store.clear_history(vm_name)
        self.reset_failures(vm_name)

    def latest(self, vm_names: Iterable[str] | None = None) -> Mapping[str, HealthStatus]:
        return self.store.latest(vm_names)


def _wrong_place(target: VMTarget, code: str, words: str, asked: str) -> PowerInfo:
    """Azure's answer that ``target``'s subscription or group is wrong, as its power."""
    state = VMState.UNKNOWN if code == "AuthorizationFailed" else VMState.NOT_FOUND
    return PowerInfo(state, code=code, message=scope_reason(target, code, words, asked))


def failure_of(status: HealthStatus) -> HealthFailure:
    return HealthFailure(
        vm_name=status.vm_name,
        failure_count=status.ssh_failures,
        reason=status.reason or "unhealthy",
        state=status.state,
        timestamp=status.timestamp,
    )
