"""LifecycleManager: read and change the configuration file safely.

Every change is read-modify-write under an exclusive lock on the file, validated, and
written atomically, so two commands at once lose neither change, and a file that does
not parse or validate is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .config import (
    HookType,
    LifecycleConfig,
    MonitoringConfig,
    check_vm_name,
    load_file,
    parse_toml,
    render_toml,
)
from .config.schema import check_hooks
from .errors import LifecycleConfigError
from .fsio import atomic_write, locked

LIFECYCLE_CONFIG_PATH: Path = paths.config_path()


@dataclass(frozen=True)
class MonitoringStatus:
    vm_name: str
    enabled: bool
    config: MonitoringConfig


class LifecycleManager:
    def __init__(self, config_path: Path | None = None) -> None:
        self.config_path = Path(config_path) if config_path else paths.config_path()

    # ------------------------------------------------------------------ reading
    def load(self) -> LifecycleConfig:
        return load_file(self.config_path)

    def config_mtime_ns(self) -> int | None:
        """The file's modification time (None: no file); the daemon polls it to reload."""
        try:
            return self.config_path.stat().st_mtime_ns
        except OSError:
            return None

    def get_monitoring_status(self, vm_name: str) -> MonitoringStatus:
        vm = self._require(self.load(), vm_name)
        return MonitoringStatus(vm_name=vm_name, enabled=vm.enabled, config=vm)

    def list_monitored_vms(self) -> list[str]:
        """Names of the VMs with monitoring enabled, sorted."""
        return sorted(self.load().enabled_vms())

    def list_all_vms(self) -> list[MonitoringStatus]:
        config = self.load()
        return [
            MonitoringStatus(vm_name=name, enabled=vm.enabled, config=vm)
            for name, vm in sorted(config.vms.items())
        ]

    # ------------------------------------------------------------------ writing
    def enable_monitoring(self, vm_name: str, config: MonitoringConfig | None = None) -> None:
        """Monitor ``vm_name`` with ``config`` (enabled), replacing any earlier entry."""
        vm = (config or MonitoringConfig()).replace(enabled=True)
        self.update(lambda cfg: cfg.with_vm(check_vm_name(vm_name), vm))

    def disable_monitoring(self, vm_name: str) -> None:
        """Stop monitoring ``vm_name``; its settings are kept for a later enable."""

        def change(cfg: LifecycleConfig) -> LifecycleConfig:
            vm = self._require(cfg, vm_name)
            return cfg.with_vm(vm_name, vm.replace(enabled=False))

        self.update(change)

    def remove_vm(self, vm_name: str) -> None:
        def change(cfg: LifecycleConfig) -> LifecycleConfig:
            self._require(cfg, vm_name)
            return cfg.with_vm(vm_name, None)

        self.update(change)

    def update_vm(self, vm_name: str, **changes: object) -> MonitoringConfig:
        """Change some settings of a configured VM; returns the new settings."""
        result: list[MonitoringConfig] = []

        def change(cfg: LifecycleConfig) -> LifecycleConfig:
            vm = self._require(cfg, vm_name).replace(**changes)
            result.append(vm)
            return cfg.with_vm(vm_name, vm)

        self.update(change)
        return result[0]

    def set_hook(self, vm_name: str, hook_type: HookType | str, target: str) -> None:
        kind = _hook_type(hook_type)
        # Named as the file names it ([vms.web.hooks] on_failure), before anything changes.
        check_hooks({kind.value: target}, str(self.config_path), f"vms.{vm_name}.hooks")

        def change(cfg: LifecycleConfig) -> LifecycleConfig:
            vm = self._require(cfg, vm_name)
            return cfg.with_vm(vm_name, vm.replace(hooks={**vm.hooks, kind.value: target}))

        self.update(change)

    def clear_hook(self, vm_name: str, hook_type: HookType | str) -> None:
        kind = _hook_type(hook_type)

        def change(cfg: LifecycleConfig) -> LifecycleConfig:
            vm = self._require(cfg, vm_name)
            if kind.value not in vm.hooks:
                raise LifecycleConfigError(f"VM {vm_name!r} has no {kind.value} hook set")
            hooks = {k: v for k, v in vm.hooks.items() if k != kind.value}
            return cfg.with_vm(vm_name, vm.replace(hooks=hooks))

        self.update(change)

    def update(self, change: Callable[[LifecycleConfig], LifecycleConfig]) -> LifecycleConfig:
        """Apply ``change`` to the current file under the lock and write the result."""
        with locked(self.config_path):
            new = change(self.load())
            text = render_toml(new)
            # Validate exactly what will be written: what we write must load again.
            parse_toml(text, str(self.config_path))
            try:
                atomic_write(self.config_path, text.encode("utf-8"))
            except OSError as exc:
                raise LifecycleConfigError(
                    f"{self.config_path}: cannot write ({exc.strerror}); the old file is "
                    "unchanged"
                ) from None
            return new

    # ------------------------------------------------------------------ helpers
    def _require(self, cfg: LifecycleConfig, vm_name: str) -> MonitoringConfig:
        vm = cfg.vms.get(vm_name)
        if vm is None:
            raise LifecycleConfigError(
                f"VM {vm_name!r} is not configured in {self.config_path}; "
                f"add it with: azlin lifecycle enable {vm_name}"
            )
        return vm


def _hook_type(value: HookType | str) -> HookType:
    try:
        return HookType(value)
    except ValueError:
        from .config import VALID_HOOK_TYPES

        raise LifecycleConfigError(
            f"unknown hook type {value!r}; allowed: {', '.join(VALID_HOOK_TYPES)}"
        ) from None
