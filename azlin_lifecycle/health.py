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

The monitor takes its adapters (``compute``, ``ssh``) as arguments; by default it
builds the real Azure SDK and fabric ones from the configuration.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
from .paths import host_key_name, known_hosts_path
from .policy import guest_evidence
from .ports import AddressBook, AzureOperationError, ComputeApi, SshProber
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

SSH_STATES = (VMState.RUNNING, VMState.UNKNOWN)


class HealthMonitor(ConfiguredComponent):
    def __init__(
        self,
        config_path: Path | None = None,
        *,
        config: LifecycleConfig | None = None,
        compute: ComputeApi | None = None,
        ssh: SshProber | None = None,
        addresses: AddressBook | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config_path, config=config, compute=compute, store=store)
        self._ssh = ssh
        self._addresses = addresses
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._routed: dict[str, VMTarget] = {}  # the target each VM was last probed as
        self._vm_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    @property
    def addresses(self) -> AddressBook:
        if self._addresses is None:
            from .wiring import build_address_book

            self._addresses = build_address_book(self.config, self.compute)
        return self._addresses

    def forget_vm(self, vm_name: str) -> None:
        """Drop what may have changed with the VM's power state: its address (a dynamic
        IP changes on start, redeploy, deallocate) and its cached SSH connection."""
        with self._lock:
            routed = self._routed.pop(vm_name, None)
        self.addresses.forget(vm_name)
        if routed is not None:
            self.ssh.forget(routed)

    @property
    def ssh(self) -> SshProber:
        if self._ssh is None:
            from .wiring import build_ssh

            self._ssh = build_ssh(self.config)
        return self._ssh

    def target(self, vm_name: str) -> VMTarget:
        return resolve_target(self.config, vm_name)

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()

    # ------------------------------------------------------------------ checks
    def check_vm_health(self, vm_name: str) -> HealthStatus:
        """Check one VM now (its own instance view, then SSH) and record the result."""
        started = time.monotonic()
        target = self.target(vm_name)
        power, azure_error = self._instance_view(target)
        return self.probe(target, power, azure_error, started)

    def check_many(
        self, vm_names: Iterable[str], max_workers: int | None = None
    ) -> dict[str, HealthStatus]:
        """Check many VMs at once: one Azure list call per resource group, SSH in parallel."""
        started = time.monotonic()
        targets = [self.target(name) for name in vm_names]
        workers = max_workers or self.config.daemon.max_workers
        powers = self.fetch_power_states(targets)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
            futures = {
                t.name: pool.submit(self.probe, t, *powers[t.name], started) for t in targets
            }
            return {name: future.result() for name, future in futures.items()}

    def fetch_power_states(
        self, targets: Iterable[VMTarget]
    ) -> dict[str, tuple[PowerInfo | None, str | None]]:
        """Power state (or the Azure error text) of each target, one call per group.

        A VM missing from its group's listing is NOT_FOUND. A missing login raises
        HealthCheckError: every check would fail the same way.
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
                    result[t.name] = (None, str(exc))
                continue
            for t in members:
                info = listing.get(t.name.lower()) or PowerInfo(
                    VMState.NOT_FOUND,
                    message=f"VM {t.name!r} is not in resource group {group!r}",
                )
                result[t.name] = (info, None)
        return result

    def forget_power_states(self) -> None:
        """Drop the shared listings (e.g. after a repair changed a VM's state)."""
        self.compute.forget_power_states()

    def _instance_view(self, target: VMTarget) -> tuple[PowerInfo | None, str | None]:
        try:
            return self.compute.instance_view(target), None
        except AzureOperationError as exc:
            return None, str(exc)

    def probe(
        self,
        target: VMTarget,
        power: PowerInfo | None,
        azure_error: str | None,
        started: float | None = None,
    ) -> HealthStatus:
        """Finish a check whose power state is known: SSH if it may be up, then record."""
        started = time.monotonic() if started is None else started
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
        status = self._evaluate(target, power, azure_error, probe, time.monotonic() - started,
                                via)
        self.store.add_checks([status])
        return status

    def _judge_by_azure(self, target: VMTarget, why: str, duration: float) -> HealthStatus:
        """A VM that SSH cannot reach from here (only a private address, no tunnel): its
        health from its instance view alone. Agent Not Ready or vmHealth unhealthy count
        as a failure; Ready (or healthy) is healthy; no word from the guest counts nothing."""
        try:
            power: PowerInfo | None = self.compute.instance_view(target)
        except AzureOperationError as exc:
            power, words, alive = None, f"Azure's view unavailable ({exc})", None
        else:
            assert power is not None
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
    def _evaluate(
        self,
        vm: VMTarget,
        power: PowerInfo | None,
        azure_error: str | None,
        probe: SshProbeResult | None,
        duration: float,
        via: str | None = None,
    ) -> HealthStatus:
        state = power.state if power else VMState.UNKNOWN
        in_grace = self._in_grace(vm.name)
        fault = None if probe is None or probe.reachable else probe.fault
        # Not running (or unknown to Azure), or healthy: nothing to count. A fault a restart
        # cannot fix never counts; a prober that does not classify is taken as guest-side.
        count = self._count(vm.name, probe is not None and not probe.reachable and not in_grace
                            and (fault is None or fault.guest_side))
        healthy = probe is not None and probe.reachable
        return HealthStatus(
            vm_name=vm.name,
            state=state,
            ssh_reachable=healthy,
            ssh_failures=count,
            healthy=healthy,
            reason=None if healthy else _reason(vm, state, power, azure_error, probe, in_grace),
            provisioning_state=power.provisioning_state if power else None,
            agent_status=power.agent_status if power else None,
            metrics=probe.metrics if probe else None,
            ssh_checked=probe is not None,
            check_duration_seconds=duration,
            timestamp=models.utcnow(),
            fault=fault,
            ssh_via=via,
        )

    def _in_grace(self, vm: str) -> bool:
        return self.store.healing_state(vm).grace_until > self._clock()

    def _count(self, vm: str, counts: bool) -> int:
        """The VM's consecutive failures after this check: one more if it ``counts``, else
        back to 0 (callers do not count a VM booting in its grace period after a repair)."""
        with self._vm_locks[vm]:
            count = self._current_failures(vm) + 1 if counts else 0
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

    # ------------------------------------------------------------------ history
    def get_health_history(self, vm_name: str, limit: int | None = None) -> list[HealthStatus]:
        """Recorded checks of ``vm_name``, oldest first (persisted across restarts)."""
        return self.store.history(vm_name, limit)

    def clear_health_history(self, vm_name: str) -> None:
        self.store.clear_history(vm_name)
        self.reset_failures(vm_name)

    def latest(self, vm_names: Iterable[str] | None = None) -> Mapping[str, HealthStatus]:
        return self.store.latest(vm_names)


def _reason(
    target: VMTarget,
    state: VMState,
    power: PowerInfo | None,
    azure_error: str | None,
    probe: SshProbeResult | None,
    in_grace: bool,
) -> str:
    if state is VMState.NOT_FOUND:
        return f"not found in Azure: {power.message if power else ''}".rstrip(": ")
    if probe is None:
        return f"VM is {state.value} in Azure"
    text = f"SSH {probe.reason or 'failed'}"
    if probe.fault is not None and probe.fault.needs_you:
        text += f": {fault_hint(probe.fault, target)}; a restart cannot fix this (not counted)"
    if azure_error:
        text += f"; Azure: {azure_error}"
    if in_grace:
        text += " (grace period after a repair: not counted)"
    return text


def fault_hint(fault: SshFault, target: VMTarget) -> str:
    """What a person should fix for a fault on the monitor's side or in the config."""
    vm, host, port = target.name, target.ssh_host, target.ssh_port
    hints = {
        SshFault.AUTH_FAILED:
            f"the VM refused key {target.ssh_key} for user {target.ssh_user}; check ssh_user "
            f"and ssh_key (azlin lifecycle show {vm})",
        SshFault.HOST_KEY_CHANGED:
            f"{host}:{port} presents a host key other than the one recorded in "
            f"{known_hosts_path()}; if the VM was rebuilt, remove the old entry "
            f"(ssh-keygen -R '{host_key_name(host or '', port)}' -f {known_hosts_path()})",
        SshFault.NAME_RESOLUTION:
            f"{host!r} does not resolve; fix ssh_host, or unset it to use the address Azure "
            "reports",
        SshFault.KEY_UNREADABLE:
            "set ssh_key to a readable private key without a passphrase",
        SshFault.NETWORK_DOWN:
            f"this machine has no route to {host}; check the monitor's own network",
    }
    return hints.get(fault, f"check the VM's SSH settings (azlin lifecycle show {vm})")


def failure_of(status: HealthStatus) -> HealthFailure:
    return HealthFailure(
        vm_name=status.vm_name,
        failure_count=status.ssh_failures,
        reason=status.reason or "unhealthy",
        state=status.state,
        timestamp=status.timestamp,
    )
