"""One exception tree for the whole package.

Every error the user can cause or meet derives from :class:`LifecycleError`; the CLI
turns any of them into one line on stderr and exit status 1.
"""

from __future__ import annotations


class LifecycleError(Exception):
    """Base class of every error azlin-lifecycle raises on purpose."""


class LifecycleConfigError(LifecycleError):
    """The configuration is invalid, unreadable or cannot be written."""


class AzlinSettingsError(LifecycleConfigError):
    """azlin's own settings cannot be used: its selected context's file is missing or broken."""


class HealthCheckError(LifecycleError):
    """A health check could not be carried out (not: the VM is unhealthy)."""


class SelfHealingError(LifecycleError):
    """Self-healing was misused or is misconfigured."""


class HookExecutionError(LifecycleError):
    """A hook is invalid or could not be started."""


class DaemonError(LifecycleError):
    """The daemon could not start, reload or stop."""


class ControllerError(LifecycleError):
    """The daemon's systemd unit could not be controlled."""


class SimulatorError(LifecycleError):
    """The simulated fleet could not be started or driven."""
