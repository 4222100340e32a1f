"""The shapes of the outside world, as the domain logic sees it.

Domain modules (health, healing, daemon) take objects of these shapes as constructor
arguments. The real ones live in :mod:`azlin_lifecycle.adapters`; unit tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from .config import HookSettings
from .models import PowerInfo, SshProbeResult, SshRoute, VMTarget


class AzureOperationError(Exception):
    """An Azure call failed (after the adapter's own bounded retries).

    Not a :class:`~azlin_lifecycle.errors.LifecycleError`: it is an outcome the domain
    logic handles (a failed restart lands in a RestartResult), not a user error.
    ``code`` is Azure's error code when there is one (``ResourceNotFound``, ...).
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


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

    def restart(self, target: VMTarget, timeout: float) -> None:
        """Restart and wait for the long-running operation; AzureOperationError on failure."""
        ...

    def start(self, target: VMTarget, timeout: float) -> None: ...

    def redeploy(self, target: VMTarget, timeout: float) -> None: ...


class SshProber(Protocol):
    """Reach a VM over SSH and read its metrics with one remote command."""

    def probe(self, target: VMTarget, timeout: float) -> SshProbeResult: ...

    def forget(self, target: VMTarget) -> None:
        """Drop any cached connection (e.g. after a restart)."""
        ...

    def close(self) -> None: ...


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
