"""Every name the spec lists is exported from azlin_lifecycle."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

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
    for name, module in (("LifecycleDaemon", "daemon"), ("DaemonController", "controller")):
        mod = importlib.import_module(f"azlin_lifecycle.{module}")
        assert getattr(azlin_lifecycle, name) is getattr(mod, name)
    # The spec's argument-less HealthMonitor(), SelfHealer(), HookExecutor() are the
    # composition root's factories; the classes (which take their collaborators) live in
    # their own modules.
    wiring = importlib.import_module("azlin_lifecycle.wiring")
    for name in ("HealthMonitor", "SelfHealer", "HookExecutor"):
        assert getattr(azlin_lifecycle, name) is getattr(wiring, name)


def test_the_spec_constructors_build_real_components(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from azlin_lifecycle.adapters.azure.compute import ArmCompute
    from azlin_lifecycle.healing import SelfHealer
    from azlin_lifecycle.health import HealthMonitor
    from azlin_lifecycle.hooks import HookExecutor

    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(tmp_path / "azlin"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monitor = azlin_lifecycle.HealthMonitor()
    healer = azlin_lifecycle.SelfHealer()
    assert isinstance(monitor, HealthMonitor) and isinstance(monitor.compute, ArmCompute)
    assert isinstance(healer, SelfHealer) and isinstance(healer.hooks, HookExecutor)
    monitor.close()


def test_hook_executor_works_with_a_broken_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config_dir = tmp_path / "azlin"
    config_dir.mkdir()
    (config_dir / "lifecycle-config.toml").write_text("[vms.web-1\n")  # not TOML
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(config_dir))
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o700)
    executor = azlin_lifecycle.HookExecutor()
    assert executor.validate_hook_script(script) == script.resolve()
    assert "not valid TOML" in caplog.text and "default [hooks] settings" in caplog.text


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = ("import sys, azlin_lifecycle\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('azure', 'paramiko', 'gi', 'pydbus', 'systemd')]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
