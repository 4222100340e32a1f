"""azlin-lifecycle: health monitoring, self-healing and lifecycle hooks for Azure VMs.

Every public name of the spec is importable from here::

    from azlin_lifecycle import LifecycleManager, HealthMonitor, SelfHealer, DaemonController

Configuration names load at once; the components (and through them the Azure SDK,
paramiko, GObject) load on first use, so the command line stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
    VALID_HOOK_TYPES,
    VALID_RESTART_POLICIES,
    HookType,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from .errors import (
    ControllerError,
    DaemonError,
    HealthCheckError,
    HookExecutionError,
    LifecycleConfigError,
    LifecycleError,
    SelfHealingError,
)
from .manager import LIFECYCLE_CONFIG_PATH, LifecycleManager, MonitoringStatus
from .models import HealthFailure, HealthStatus, RestartResult, VMMetrics, VMState

if TYPE_CHECKING:
    from .controller import DaemonController, ServiceStatus
    from .daemon import DaemonStatus, LifecycleDaemon
    from .hooks import HookResult
    from .wiring import HealthMonitor, HookExecutor, SelfHealer

    __version__: str

DISTRIBUTION = "azlin-lifecycle"
UNKNOWN_VERSION = "0+unknown"  # a source tree that was never installed (PEP 440, sorts first)


def distribution_version(name: str = DISTRIBUTION) -> str:
    """The installed distribution's version: pyproject.toml's, its one source."""
    from importlib import metadata  # ~20 ms: only when a version is asked for

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


_LAZY = {
    "HealthMonitor": "wiring",  # the argument-less constructors of the spec
    "SelfHealer": "wiring",
    "HookExecutor": "wiring",
    "HookResult": "hooks",
    "LifecycleDaemon": "daemon",
    "DaemonStatus": "daemon",
    "DaemonController": "controller",
    "ServiceStatus": "controller",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = version = distribution_version()
        return version
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'azlin_lifecycle' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "LIFECYCLE_CONFIG_PATH",
    "VALID_HOOK_TYPES",
    "VALID_RESTART_POLICIES",
    "ControllerError",
    "DaemonController",
    "DaemonError",
    "DaemonStatus",
    "HealthCheckError",
    "HealthFailure",
    "HealthMonitor",
    "HealthStatus",
    "HookExecutionError",
    "HookExecutor",
    "HookResult",
    "HookType",
    "LifecycleConfig",
    "LifecycleConfigError",
    "LifecycleDaemon",
    "LifecycleError",
    "LifecycleManager",
    "MonitoringConfig",
    "MonitoringStatus",
    "RestartPolicy",
    "RestartResult",
    "SelfHealer",
    "SelfHealingError",
    "ServiceStatus",
    "VMMetrics",
    "VMState",
]
