"""Fakes of the adapter protocols, for unit tests of pure logic only."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from azlin_lifecycle.config import HookSettings
from azlin_lifecycle.models import (
    PowerInfo,
    SshFault,
    SshProbeResult,
    SshRoute,
    VMMetrics,
    VMState,
    VMTarget,
)
from azlin_lifecycle.ports import (
    AzureOperationError,
    CoordinationError,
    LeasedDocument,
    LeaseHolder,
    LeaseLost,
)
from azlin_lifecycle.signals import Capture, PlatformHealth


@dataclass
class FakeCompute:
    states: dict[str, VMState] = field(default_factory=dict)
    fail_actions: dict[str, str] = field(default_factory=dict)  # vm -> error message
    calls: list[tuple[str, str]] = field(default_factory=list)
    list_calls: int = 0
    action_seconds: float = 0.0
    # vm -> the VM agent's displayStatus in its instance view (none: Azure cannot tell)
    agents: dict[str, str] = field(default_factory=dict)
    forgotten_listings: int = 0
    view_seconds: float = 0.0  # how long an instance view takes (Azure slow, throttling)

    def instance_view(self, target: VMTarget) -> PowerInfo:
        self.calls.append(("instance_view", target.name))
        time.sleep(self.view_seconds)
        state = self.states.get(target.name, VMState.NOT_FOUND)
        return PowerInfo(state, "succeeded", self.agents.get(target.name),
                         message="not found" if state is VMState.NOT_FOUND else None)

    def power_states(self, subscription_id: str, resource_group: str, *,
                     expected: Collection[str] = ()) -> Mapping[str, PowerInfo]:
        self.list_calls += 1
        return {vm.lower(): PowerInfo(s, "succeeded", "Ready") for vm, s in self.states.items()}

    def forget_power_states(self) -> None:
        self.forgotten_listings += 1

    def _act(self, action: str, target: VMTarget,
             on_accepted: Callable[[], None] | None = None) -> None:
        self.calls.append((action, target.name))
        if on_accepted is not None:
            on_accepted()
        time.sleep(self.action_seconds)
        if target.name in self.fail_actions:
            raise AzureOperationError(self.fail_actions[target.name], "InternalError")
        self.states[target.name] = VMState.RUNNING

    def restart(self, target: VMTarget, timeout: float,
                on_accepted: Callable[[], None] | None = None) -> None:
        self._act("restart", target, on_accepted)

    def start(self, target: VMTarget, timeout: float,
              on_accepted: Callable[[], None] | None = None) -> None:
        self._act("start", target, on_accepted)

    def redeploy(self, target: VMTarget, timeout: float,
                 on_accepted: Callable[[], None] | None = None) -> None:
        self._act("redeploy", target, on_accepted)


@dataclass
class FakeSignals:
    """Resource Health per VM (default Available), and captures that write ``serial``."""

    health: dict[str, PlatformHealth] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # vm -> Azure's error
    serial: str = "[  123.456789] INFO: task jbd2/sda1-8:245 blocked for more than 120 seconds.\n"
    capture_note: str | None = None  # set: no capture, for this reason
    calls: list[tuple[str, str]] = field(default_factory=list)

    def platform_health(self, target: VMTarget) -> PlatformHealth:
        self.calls.append(("platform_health", target.name))
        if target.name in self.unreadable:
            raise AzureOperationError(self.unreadable[target.name], "InternalServerError")
        return self.health.get(target.name, PlatformHealth("Available"))

    def capture(self, target: VMTarget, directory: Path, seconds: float) -> Capture:
        self.calls.append(("capture", target.name))
        if self.capture_note is not None:
            return Capture(directory, None, None, self.capture_note)
        log = directory / "serial.log"
        log.write_text(self.serial)
        return Capture(directory, log, None, "serial log 1 KB in 0.0 s", seconds=0.01)


@dataclass
class FakeSsh:
    down: dict[str, str] = field(default_factory=dict)  # vm -> reason
    probes: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult:
        with self.lock:
            self.probes.append(target.name)
        if target.name in self.down:
            reason = self.down[target.name]
            # The fault whose words the reason begins with (the longest: "timed out (hung)").
            faults = sorted((f for f in SshFault if reason.startswith(f.value)),
                            key=lambda f: len(f.value))
            return SshProbeResult(False, reason, fault=faults[-1] if faults else None)
        return SshProbeResult(True, metrics=VMMetrics(cpu_percent=5.0, disk_percent=40.0))

    def forget(self, target: VMTarget) -> None:
        self.forgotten.append(target.name)

    def close(self) -> None:
        pass


@dataclass
class FakeAddresses:
    """Completes a target as a configured one would be: host = the VM's name."""

    forgotten: list[str] = field(default_factory=list)

    def route(self, target: VMTarget) -> SshRoute:
        full = dataclasses.replace(target, ssh_host=target.ssh_host or target.name,
                                   ssh_user=target.ssh_user or "azureuser",
                                   ssh_key=target.ssh_key or "~/.ssh/azlin_key")
        return SshRoute(full, "fake address")

    def forget(self, vm_name: str) -> None:
        self.forgotten.append(vm_name)


@dataclass
class RecordingHooks:
    fired: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)
    settings: HookSettings | None = None

    def execute_hook_async(self, hook_type: str, vm_name: str,
                           context: Mapping[str, object]) -> None:
        self.fired.append((str(hook_type), vm_name, dict(context)))

    def shutdown(self, timeout: float = 10.0) -> bool:
        return True

    def apply_settings(self, settings: HookSettings) -> None:
        self.settings = settings

    def of(self, hook_type: str) -> list[tuple[str, dict[str, object]]]:
        return [(vm, ctx) for h, vm, ctx in self.fired if h == hook_type]


@dataclass
class FakeLeaseStore:
    """One lease blob as Blob storage keeps it: a lease that expires on ``clock``, content
    with an ETag, metadata; ``fail`` makes every call raise it (storage unreachable)."""

    clock: Callable[[], float] = time.monotonic
    holder_id: str | None = None
    expires: float = 0.0
    content: bytes = b""
    etag_no: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    fail: CoordinationError | None = None
    writes: int = 0

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def _active(self) -> bool:
        return self.holder_id is not None and self.clock() < self.expires

    def acquire(self, lease_id: str, seconds: int) -> bool:
        self._check()
        if self._active() and self.holder_id != lease_id:
            return False
        self.holder_id, self.expires = lease_id, self.clock() + seconds
        self._seconds = seconds
        return True

    def renew(self, lease_id: str) -> None:
        self._check()
        if self.holder_id != lease_id:
            raise LeaseLost("another monitor holds the lease")
        self.expires = self.clock() + self._seconds

    def release(self, lease_id: str) -> None:
        self._check()
        if self.holder_id == lease_id:
            self.holder_id = None

    def holder(self) -> LeaseHolder:
        self._check()
        return LeaseHolder(leased=self._active(), metadata=dict(self.metadata))

    def read(self) -> LeasedDocument:
        self._check()
        return LeasedDocument(self.content, f'"{self.etag_no}"')

    def write(self, content: bytes, *, lease_id: str, etag: str,
              metadata: Mapping[str, str]) -> str:
        self._check()
        if not (self._active() and self.holder_id == lease_id):
            raise LeaseLost("the lease is not this monitor's")
        if etag != f'"{self.etag_no}"':
            raise LeaseLost("ETag condition failed")
        self.content, self.metadata = content, dict(metadata)
        self.etag_no += 1
        self.writes += 1
        return f'"{self.etag_no}"'

    def close(self) -> None:
        pass


class FakeClock:
    """The simulator's clock, driven by hand: ``advance(s)`` runs what came due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, func: Callable[[], None]) -> None:
        self.pending.append((self.now + delay, func))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((p for p in self.pending if p[0] <= self.now), key=lambda p: p[0])
        self.pending = [p for p in self.pending if p[0] > self.now]
        for _, func in due:
            func()
