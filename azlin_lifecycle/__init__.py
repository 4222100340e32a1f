"""azlin-lifecycle: health monitoring, self-healing and lifecycle hooks for Azure VMs.

The spec's public names are importable from here. Heavy dependencies (the Azure SDK,
fabric, GObject) are imported only when a component that needs them is used.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "LIFECYCLE_CONFIG_PATH",
    "VALID_HOOK_TYPES",
    "VALID_RESTART_POLICIES",
    "ControllerError",
    "DaemonError",
    "HealthCheckError",
    "HookExecutionError",
    "HookType",
    "LifecycleConfig",
    "LifecycleConfigError",
    "LifecycleError",
    "LifecycleManager",
    "MonitoringConfig",
    "MonitoringStatus",
    "RestartPolicy",
    "SelfHealingError",
]
