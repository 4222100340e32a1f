"""The simulated VMs: power and provisioning states, long-running actions, faults.

Pure logic driven by a :class:`~.scheduler.Scheduler`; no sockets here. Whenever a
VM's SSH behaviour may have changed, ``on_ssh_change(vm)`` is called (with the lock
held) so the SSH side can follow.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ..models import VMMetrics

POWER_STATES = ("starting", "running", "stopping", "stopped", "deallocating", "deallocated")
ACTIONS = ("restart", "start", "powerOff", "deallocate", "redeploy")
BOOTING_ACTIONS = ("restart", "start", "redeploy")
DEFAULT_METRICS = VMMetrics(cpu_percent=12.5, memory_percent=41.0, disk_percent=37.0,
                            load_1m=0.21, load_5m=0.18, load_15m=0.12)
PREEMPTED = ("OperationPreempted",
             "Operation execution has been preempted by a more recent operation.")


class SshMode(StrEnum):
    """How a VM's SSH endpoint behaves while the VM is running and booted."""

    UP = "up"
    REFUSED = "refused"
    HUNG = "hung"
    AUTH_FAIL = "auth_fail"
    HOST_KEY_CHANGED = "host_key_changed"
    SLOW = "slow"


class GuestAgent(StrEnum):
    """What a VM's agent reports to Azure. AUTO: Ready while the VM runs, has booted and
    its guest is not hung (a hung OS runs no agent); the others force it."""

    AUTO = "auto"
    READY = "ready"
    NOT_READY = "not_ready"


APP_HEALTH_STATES = ("healthy", "unhealthy", "unknown")


class ArmError(Exception):
    """An ARM error answer: HTTP status, Azure's error code and message."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details  # ARM's error.details[]: {code, message, target}


class Clock(Protocol):
    def call_later(self, delay: float, func: Callable[[], None]) -> None: ...


def not_found(name: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource "
                    f"group '{resource_group}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix")


@dataclass
class Operation:
    """One requested action and its long-running operation."""

    id: str
    vm: str
    action: str
    started: float
    status: str = "InProgress"
    ended: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    polls: list[float] = field(default_factory=list)  # when its status was asked (epoch)

    def finish(self, status: str, code: str | None = None, message: str | None = None) -> None:
        if self.status != "InProgress":
            return
        self.status, self.ended = status, time.time()
        self.error_code, self.error_message = code, message

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "vm": self.vm, "action": self.action, "status": self.status,
                "started": self.started, "ended": self.ended,
                "error_code": self.error_code, "error_message": self.error_message,
                "polls": list(self.polls)}


@dataclass
class SimVM:
    name: str
    index: int
    ssh_port: int
    vm_id: str
    created: float = field(default_factory=time.time)
    provisioned: float = field(default_factory=time.time)  # when the last operation ended
    power: str = "running"
    provisioning: str = "succeeded"  # succeeded | updating | failed/<Code>
    provisioning_message: str | None = None
    booted: bool = True
    ssh_mode: SshMode = SshMode.UP
    slow_seconds: float = 5.0
    metrics: VMMetrics = DEFAULT_METRICS
    epoch: int = 0
    current: Operation | None = None
    fail_next: dict[str, tuple[str, str]] = field(default_factory=dict)
    refuse_next: dict[str, ArmError] = field(default_factory=dict)  # the POST answers it
    hang: set[str] = field(default_factory=set)
    agent: GuestAgent = GuestAgent.AUTO
    app_health: str | None = None  # the Application Health extension's verdict, if installed
    # What Azure itself knows of it (see .signals_api): a Resource Health answer set by
    # hand (None: it follows the power state), who stopped it through ARM and when, when
    # a platform outage set by hand ended; boot diagnostics (on, off, or hang: its blobs
    # never answer); a planned-maintenance window; how long a restart or redeploy waits
    # for the guest's approval of its Scheduled Event; when it booted.
    health: dict[str, Any] | None = None
    stopped_by: str | None = None  # the ARM action (powerOff, deallocate), None: not known
    changed: float = field(default_factory=time.time)  # when the power state last changed
    resolved: tuple[float, float, str] | None = None  # (unavailable since, resolved, summary)
    boot_diagnostics: str = "on"
    tags: dict[str, str] = field(default_factory=lambda: {"azlin-simulator": "true"})
    maintenance: tuple[float, float] | None = None
    approval_seconds: float = 0.0
    boots: list[float] = field(default_factory=lambda: [time.time()])

    @property
    def agent_ready(self) -> bool:
        if self.power != "running" or self.agent is GuestAgent.NOT_READY:
            return False
        return self.agent is GuestAgent.READY or (self.booted and self.ssh_mode is not SshMode.HUNG)

    @property
    def ssh_effective(self) -> SshMode:
        """REFUSED unless the VM is running and booted; else its configured mode."""
        if self.power != "running" or not self.booted:
            return SshMode.REFUSED
        return self.ssh_mode


class FleetState:
    def __init__(self, clock: Clock, *, resource_group: str, boot_seconds: float,
                 operation_seconds: float,
                 on_ssh_change: Callable[[SimVM], None] = lambda vm: None) -> None:
        self.clock = clock
        self.resource_group = resource_group
        self.boot_seconds = boot_seconds
        self.operation_seconds = operation_seconds
        self.on_ssh_change = on_ssh_change
        self.lock = threading.RLock()
        self._vms: dict[str, SimVM] = {}
        self._ops: dict[str, Operation] = {}
        self.added = 0  # VMs ever added: a new one's index (its addresses), after deletions too
        self._log: list[Operation] = []

    # ------------------------------------------------------------------ VMs
    def add_vm(self, name: str, ssh_port: int) -> SimVM:
        with self.lock:
            if name.lower() in self._vms:
                raise ValueError(f"VM {name!r} already exists")
            vm_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"azlin-sim/{self.resource_group}/{name}"))
            vm = SimVM(name=name, index=self.added, ssh_port=ssh_port, vm_id=vm_id)
            self._vms[name.lower()] = vm
            self.added += 1
            return vm

    def remove_vm(self, name: str) -> SimVM:
        """Delete a VM: ARM no longer knows it (404 ResourceNotFound, absent from lists)."""
        with self.lock:
            vm = self.require(name)
            del self._vms[name.lower()]
            return vm

    def find(self, name: str) -> SimVM | None:
        return self._vms.get(name.lower())

    def require(self, name: str) -> SimVM:
        vm = self.find(name)
        if vm is None:
            raise not_found(name, self.resource_group)
        return vm

    def all(self) -> list[SimVM]:
        with self.lock:
            return list(self._vms.values())

    # ------------------------------------------------------------------ direct control
    def set_power_state(self, name: str, state: str) -> None:
        if state not in POWER_STATES:
            raise ValueError(f"unknown power state {state!r}; use one of {', '.join(POWER_STATES)}")
        with self.lock:
            vm = self.require(name)
            vm.epoch += 1
            if vm.current is not None:
                vm.current.finish("Canceled")
                vm.current = None
            vm.power, vm.provisioning, vm.provisioning_message = state, "succeeded", None
            vm.booted = state == "running"
            vm.changed, vm.stopped_by = time.time(), None  # set from outside: not attributed
            self.on_ssh_change(vm)

    def set_ssh_mode(self, name: str, mode: SshMode, slow_seconds: float = 5.0) -> None:
        with self.lock:
            vm = self.require(name)
            vm.ssh_mode, vm.slow_seconds = SshMode(mode), float(slow_seconds)
            self.on_ssh_change(vm)

    def set_metrics(self, name: str, metrics: VMMetrics) -> None:
        with self.lock:
            self.require(name).metrics = metrics

    def set_guest(self, name: str, agent: GuestAgent, app_health: str | None) -> None:
        with self.lock:
            vm = self.require(name)
            vm.agent, vm.app_health = GuestAgent(agent), app_health

    def set_health(self, name: str, properties: dict[str, Any] | None,
                   resolved: bool = True) -> None:
        """Resource Health's answer for VM ``name`` (its ``properties``); None: follow the
        power state again — an outage set before (Unavailable, not by a customer) is then
        ``recentlyResolved``, unless not ``resolved`` (forgotten: a reset)."""
        with self.lock:
            vm = self.require(name)
            old, now = vm.health, time.time()
            if not resolved:
                vm.resolved = None
            elif properties is None and old and old.get("availabilityState") == "Unavailable" \
                    and "customer" not in str(old.get("context", "")).lower():
                vm.resolved = (float(old.get("_since", now)), now, str(old.get("summary", "")))
            vm.health = None if properties is None else {"_since": now, **properties}

    def set_platform(self, name: str, *, boot_diagnostics: str | None = None,
                     maintenance: tuple[float, float] | bool | None = False,
                     approval_seconds: float | None = None) -> None:
        """Boot diagnostics (on/off/hang), a maintenance window (None clears it; False
        leaves it), and the Scheduled Events approval wait of VM ``name``."""
        with self.lock:
            vm = self.require(name)
            if boot_diagnostics is not None:
                vm.boot_diagnostics = boot_diagnostics
            if maintenance is not False:
                vm.maintenance = maintenance if isinstance(maintenance, tuple) else None
            if approval_seconds is not None:
                vm.approval_seconds = max(0.0, approval_seconds)

    def fail_next_operation(self, name: str, action: str, code: str, message: str) -> None:
        _check_action(action)
        with self.lock:
            self.require(name).fail_next[action] = (code, message)

    def refuse_next_request(self, name: str, action: str, error: ArmError) -> None:
        """The next POST of ``action`` on VM ``name`` is refused with ``error`` (e.g. 409
        OperationNotAllowed with details), taking no effect."""
        _check_action(action)
        with self.lock:
            self.require(name).refuse_next[action] = error

    def hang_operations(self, name: str, action: str) -> None:
        _check_action(action)
        with self.lock:
            self.require(name).hang.add(action)

    def clear_operation_faults(self, name: str) -> None:
        with self.lock:
            vm = self.require(name)
            vm.hang.clear()
            vm.fail_next.clear()
            vm.refuse_next.clear()

    # ------------------------------------------------------------------ operations
    def operation(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id)

    def operations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [op.record() for op in self._log]

    def begin(self, name: str, action: str) -> Operation:
        """Start ``action`` on VM ``name``; raises ArmError when Azure would refuse it."""
        _check_action(action)
        with self.lock:
            vm = self.require(name)
            refused = vm.refuse_next.pop(action, None)
            if refused is not None:
                raise refused
            if action in ("restart", "redeploy") and vm.power in ("deallocated", "deallocating"):
                raise ArmError(409, "OperationNotAllowed",
                               f"Operation '{action}' is not allowed on VM '{vm.name}' since the "
                               "VM is deallocated or marked to be deallocated.")
            if vm.current is not None:
                vm.current.finish("Failed", *PREEMPTED)
            vm.epoch += 1
            epoch = vm.epoch
            op = Operation(id=str(uuid.uuid4()), vm=vm.name, action=action, started=time.time())
            self._ops[op.id] = op
            self._log.append(op)
            vm.current = op
            noop = action == "start" and vm.power == "running" and vm.booted
            fail = vm.fail_next.pop(action, None)
            if action in ("restart", "redeploy") and vm.approval_seconds > 0:
                # Accepted, then held for the guest's approval of its Scheduled Event.
                self.clock.call_later(vm.approval_seconds,
                                      lambda: self._run(vm, epoch, op, fail, noop))
                return op
            self._run(vm, epoch, op, fail, noop)
            return op

    def _run(self, vm: SimVM, epoch: int, op: Operation, fail: tuple[str, str] | None,
             noop: bool) -> None:
        """The action takes effect now: the VM goes down, and ends and boots later."""
        with self.lock:
            if vm.epoch != epoch:
                return
            if not noop:
                _apply_start(vm, op.action)
                self.on_ssh_change(vm)
            if op.action in vm.hang:
                return
            self.clock.call_later(self.operation_seconds,
                                  lambda: self._finish(vm, epoch, op, fail, noop))
            if op.action in BOOTING_ACTIONS and not noop:
                self.clock.call_later(self.boot_seconds, lambda: self._boot(vm, epoch))

    def _finish(self, vm: SimVM, epoch: int, op: Operation,
                fail: tuple[str, str] | None, noop: bool) -> None:
        with self.lock:
            if vm.epoch != epoch:
                return
            vm.current = None
            vm.provisioned = time.time()
            if fail is not None:
                vm.epoch += 1  # cancels the pending boot: a failed action leaves SSH down
                vm.provisioning, vm.provisioning_message = f"failed/{fail[0]}", fail[1]
                vm.booted = False
                op.finish("Failed", fail[0], fail[1])
                self.on_ssh_change(vm)
                return
            if not noop:
                vm.power = {"powerOff": "stopped", "deallocate": "deallocated"}.get(
                    op.action, "running")
                vm.provisioning, vm.provisioning_message = "succeeded", None
                vm.changed = time.time()
                vm.stopped_by = op.action if vm.power != "running" else None
            op.finish("Succeeded")
            self.on_ssh_change(vm)

    def _boot(self, vm: SimVM, epoch: int) -> None:
        with self.lock:
            if vm.epoch != epoch or vm.power not in ("running", "starting"):
                return
            vm.booted = True
            vm.boots.append(time.time())
            self.on_ssh_change(vm)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")


def _apply_start(vm: SimVM, action: str) -> None:
    """What the VM looks like the moment ``action`` is accepted.

    A reboot cures what lives in the guest OS (a hang, a slow system), not what lives in
    its configuration (an unauthorised key, a changed host key): those modes stay.
    """
    vm.provisioning, vm.provisioning_message = "updating", None
    vm.booted = False
    if action in BOOTING_ACTIONS:
        if vm.ssh_mode in (SshMode.HUNG, SshMode.SLOW):
            vm.ssh_mode = SshMode.UP
        if vm.power != "running":
            vm.power = "starting"
    elif action == "powerOff":
        vm.power = "stopping"
    else:
        vm.power = "deallocating"
