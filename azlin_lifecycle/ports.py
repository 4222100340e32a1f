"""The shapes of the outside world, as the domain logic sees it.

Domain modules (health, healing, daemon) take objects of these shapes as constructor
arguments. The real ones live in :mod:`azlin_lifecycle.adapters`; unit tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .config import HookSettings
from .models import (
    AzureMark,
    BastionEndpoint,
    PowerInfo,
    RepairAction,
    RepairRecord,
    SshFault,
    SshProbeResult,
    SshRoute,
    VMTarget,
)
from .signals import Capture, PlatformHealth

Accepted = Callable[[], None] | None  # called once Azure has accepted a repair's request


class AzureOperationError(Exception):
    """An Azure call failed (after the adapter's own bounded retries).

    Not a :class:`~azlin_lifecycle.errors.LifecycleError`: it is an outcome the domain
    logic handles (a failed restart lands in a RestartResult), not a user error.
    ``code`` is Azure's error code when there is one (``ResourceNotFound``, ...);
    ``detail`` Azure's whole text when it says more than the one-line message (the
    further lines of a failed operation's message, an error's ``details``).
    """

    def __init__(self, message: str, code: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class ComputeApi(Protocol):
    """Azure Compute, as far as health checks and healing need it."""

    def instance_view(self, target: VMTarget) -> PowerInfo:
        """The power state of one VM; NOT_FOUND (with Azure's message) if unknown.

        Raises HealthCheckError when the login is missing or expired, and
        AzureOperationError for other failures, never blocking past the timeout.
        """
        ...

    def power_states(self, subscription_id: str, resource_group: str, *,
                     expected: Collection[str] = ()) -> Mapping[str, PowerInfo]:
        """Power states of every VM in a resource group, keyed by lowercased VM name,
        from a listing shared for a few seconds by the subscription's resource groups
        (listed again when a VM in ``expected`` is missing from it)."""
        ...

    def forget_power_states(self) -> None:
        """Drop shared listings (e.g. after a repair changed a VM's state)."""
        ...

    def restart(self, target: VMTarget, timeout: float, on_accepted: Accepted = None) -> None:
        """Restart and wait for the long-running operation; AzureOperationError on failure.
        ``on_accepted`` is called once Azure has accepted the request (its 202)."""
        ...

    def start(self, target: VMTarget, timeout: float, on_accepted: Accepted = None) -> None: ...

    def redeploy(self, target: VMTarget, timeout: float,
                 on_accepted: Accepted = None) -> None: ...


class AzureSignals(Protocol):
    """What Azure knows of a VM beyond its power state, asked around a repair."""

    def platform_health(self, target: VMTarget) -> PlatformHealth:
        """Resource Health's ``availabilityStatuses/current`` of the VM (one ARM read, with
        ARM's throttling rules); AzureOperationError or HealthCheckError when unreadable."""
        ...

    def capture(self, target: VMTarget, directory: Path, seconds: float) -> Capture:
        """A post-mortem: the serial log's last 1 MB and the screenshot from boot
        diagnostics, into ``directory``, within ``seconds`` whatever Azure or the storage
        does. Never raises: a Capture without files says why (``note``)."""
        ...


class SshProber(Protocol):
    """Reach a VM over SSH and read its metrics with one remote command."""

    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult: ...

    def forget(self, target: VMTarget) -> None:
        """Drop any cached connection (e.g. after a restart)."""
        ...

    def close(self) -> None: ...


class TunnelFailure(Exception):
    """Opening or using a tunnel to a VM failed, and whose side it is on (``fault``).

    The message is one line in words; it never holds a token or a tunnel's URL.
    """

    def __init__(self, fault: SshFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


class TunnelSocket(Protocol):
    """A tunnel to a VM's SSH port, as paramiko's ``Transport`` uses a socket."""

    def send(self, data: bytes) -> int: ...

    def recv(self, size: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def shutdown(self, how: int) -> None: ...

    def close(self) -> None: ...

    @property
    def failure(self) -> TunnelFailure | None:
        """Why the tunnel ended, when the tunnel itself was at fault (not the VM's end
        closing it, not a close of ours); None while it is open."""
        ...


class TunnelOpener(Protocol):
    """Opens tunnels through an Azure Bastion (the real one: adapters.bastion)."""

    def open(self, endpoint: BastionEndpoint, port: int, deadline: float) -> TunnelSocket:
        """A tunnel to ``port`` of the endpoint's VM, open before ``deadline``
        (``time.monotonic``), else TunnelFailure saying whose side failed."""
        ...

    def close(self) -> None:
        """Finish what closed tunnels left to do (their clean-up), briefly."""
        ...


class HookRunner(Protocol):
    """Fire lifecycle hooks without waiting for them (HookExecutor is the real one)."""

    def execute_hook_async(
        self, hook_type: str, vm_name: str, context: Mapping[str, object]
    ) -> object: ...

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel queued hooks and stop running ones (SIGTERM); True if all ended in time."""
        ...

    def apply_settings(self, settings: HookSettings) -> None:
        """New ``[hooks]`` settings, from a reload."""
        ...


class AddressBook(Protocol):
    """Where to reach a VM over SSH when its config leaves host, user or key unset."""

    def route(self, target: VMTarget) -> SshRoute:
        """``target`` with every SSH field filled in, or SshRoute(None, why) when SSH
        does not apply (only a private address, unreachable, and no tunnel).

        Configured fields are kept. Raises AzureOperationError when Azure cannot say.
        """
        ...

    def forget(self, vm_name: str) -> None:
        """Drop the cached address (after start, redeploy, deallocate: it may change)."""
        ...


# --------------------------------------------------------------------------- coordination
class CoordinationError(Exception):
    """The storage account that coordinates monitors did not answer as needed
    (unreachable, timed out, refused the credential). The message is one line."""


class LeaseLost(CoordinationError):
    """The lease is no longer this monitor's: it expired and another monitor took it, or a
    write's ETag condition failed (someone else wrote since this monitor last read)."""


class NotLeader(Exception):
    """This monitor does not hold the lease, so it must not repair or fire repair hooks."""


@dataclass(frozen=True)
class LeaseHolder:
    """The lease blob as a standby sees it: is a lease active, and the holder's metadata
    (``holder``: who, ``since``: when it took the lease, epoch seconds)."""

    leased: bool
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class LeasedDocument:
    """The lease blob's content and the ETag to make the next write conditional on."""

    content: bytes
    etag: str


class LeaseStore(Protocol):
    """One blob in a storage account: its lease elects the leader, its content is the
    shared repair ledger. Every call answers or raises CoordinationError within its
    timeout (a partitioned monitor must learn it before its lease can expire)."""

    def acquire(self, lease_id: str, seconds: int) -> bool:
        """Take the lease (True), or False while another monitor's lease is active.
        Acquiring the lease this monitor already holds renews it."""
        ...

    def renew(self, lease_id: str) -> None:
        """Renew this monitor's lease; LeaseLost if another monitor holds it now."""
        ...

    def release(self, lease_id: str) -> None: ...

    def holder(self) -> LeaseHolder: ...

    def read(self) -> LeasedDocument: ...

    def write(self, content: bytes, *, lease_id: str, etag: str,
              metadata: Mapping[str, str]) -> str:
        """Replace the content, only under this lease and only if the blob's ETag is still
        ``etag`` (LeaseLost otherwise); returns the new ETag."""
        ...

    def close(self) -> None: ...


class RepairLedger(Protocol):
    """The repair records the budget, backoff, grace and in-flight rules read.

    The state store is the ledger of a monitor alone; with ``[ha]`` it is the shared one
    (:class:`azlin_lifecycle.ledger.SharedLedger`), whose writes raise NotLeader when this
    monitor no longer holds the lease.
    """

    def repairs(self, vm: str | None = None, since: float = 0.0) -> list[RepairRecord]: ...

    def grace_until(self, vm: str) -> float: ...

    def begin_repair(self, vm: str, action: RepairAction, *, dry_run: bool, grace_until: float,
                     now: float | None = None, before: AzureMark | None = None) -> int: ...

    def end_repair(self, repair_id: int, *, success: bool, error: str | None,
                   grace_until: float | None, now: float | None = None) -> None: ...

    def settle_interrupted(self, repair_id: int, *, sent: bool, note: str,
                           now: float | None = None) -> None:
        """Record what Azure shows of an interrupted repair; not ``sent``: NOT_SENT, no
        budget spent, the VM's grace period lifted."""
        ...
