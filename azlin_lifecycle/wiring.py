"""The composition root: the real adapters, built from the configuration.

Domain modules import this lazily and only when the caller passed no adapter of its
own, so unit tests (with fakes) never load the Azure SDK, fabric or GObject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .config import LifecycleConfig
from .ports import ComputeApi, HookRunner, SshProber


def build_compute(config: LifecycleConfig) -> ComputeApi:
    from .adapters.azure import ArmCompute

    return ArmCompute(config.azure, timeout=config.daemon.azure_timeout_seconds)


def build_ssh(config: LifecycleConfig) -> SshProber:
    from .adapters.ssh import FabricSshProber

    return FabricSshProber(connect_timeout=config.daemon.ssh_timeout_seconds,
                           max_open=config.daemon.max_open_ssh_connections)


def build_hooks(config: LifecycleConfig,
                hooks_of: Callable[[str], Mapping[str, str]]) -> HookRunner:
    from .hooks import HookExecutor

    return HookExecutor(hooks_of, config.hooks)
