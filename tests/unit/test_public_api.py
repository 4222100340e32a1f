"""Every name the spec lists is exported from azlin_lifecycle."""

from __future__ import annotations

import importlib
import subprocess
import sys

import azlin_lifecycle

SPEC_NAMES = {
    # LifecycleManager section
    "LifecycleManager", "MonitoringConfig", "MonitoringStatus", "LifecycleConfigError",
    "LIFECYCLE_CONFIG_PATH", "VALID_RESTART_POLICIES", "VALID_HOOK_TYPES",
    # HealthMonitor
    "HealthMonitor", "HealthStatus", "VMState", "VMMetrics", "HealthFailure", "HealthCheckError",
    # SelfHealer
    "SelfHealer", "RestartResult", "SelfHealingError",
    # HookExecutor
    "HookExecutor", "HookResult", "HookType", "HookExecutionError",
    # LifecycleDaemon
    "LifecycleDaemon", "DaemonStatus", "DaemonError",
    # DaemonController
    "DaemonController", "ControllerError",
}


def test_all_spec_names_are_exported_and_resolve() -> None:
    assert set(azlin_lifecycle.__all__) >= SPEC_NAMES
    for name in azlin_lifecycle.__all__:
        assert getattr(azlin_lifecycle, name) is not None, name
    assert azlin_lifecycle.VALID_RESTART_POLICIES == ("never", "on-failure", "always")
    assert azlin_lifecycle.VALID_HOOK_TYPES == (
        "on_start", "on_stop", "on_restart", "on_failure", "on_healthy")
    assert str(azlin_lifecycle.LIFECYCLE_CONFIG_PATH).endswith("lifecycle-config.toml")


def test_components_come_from_their_modules() -> None:
    for name, module in (("HealthMonitor", "health"), ("SelfHealer", "healing"),
                         ("HookExecutor", "hooks"), ("LifecycleDaemon", "daemon"),
                         ("DaemonController", "controller")):
        mod = importlib.import_module(f"azlin_lifecycle.{module}")
        assert getattr(azlin_lifecycle, name) is getattr(mod, name)


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = ("import sys, azlin_lifecycle\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('azure', 'paramiko', 'gi', 'pydbus', 'systemd', 'fabric')]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
