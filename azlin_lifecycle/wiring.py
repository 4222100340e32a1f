"""The composition root: the real adapters, built from the configuration.

Domain modules import this lazily and only when the caller passed no adapter of its
own, so unit tests (with fakes) never load the Azure SDK, paramiko or GObject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .config import LifecycleConfig
from .ports import AddressBook, ComputeApi, HookRunner, SshProber


def load_adapter_libraries() -> None:
    """Import what the real Azure and SSH adapters load on first use, so a daemon pays for
    it (~0.5 s of CPU) before it reports ready rather than inside its first sweep."""
    import importlib
    import sys

    # paramiko imports invoke (a task runner; ~3 MB with what it imports) only to
    # run `Match exec` lines of ~/.ssh/config, which the SSH adapter never reads. None in
    # sys.modules makes that optional import fail at once, a case paramiko handles.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    for name in ("azure.identity", "azure.mgmt.core", "requests", "paramiko"):
        importlib.import_module(name)


def build_compute(config: LifecycleConfig) -> ComputeApi:
    from .adapters.azure import ArmCompute

    return ArmCompute(config.azure, timeout=config.daemon.azure_timeout_seconds,
                      polling_interval=config.healing.operation_poll_seconds)


def build_ssh(config: LifecycleConfig) -> SshProber:
    from .adapters.ssh import ParamikoSshProber

    return ParamikoSshProber(connect_timeout=config.daemon.ssh_timeout_seconds,
                             max_open=config.daemon.max_open_ssh_connections)


def build_address_book(config: LifecycleConfig, compute: ComputeApi) -> AddressBook:
    """Addresses from Azure through ``compute``'s ARM pipeline (an ArmCompute)."""
    from .adapters.network import PRIVATE_CONNECT_TIMEOUT, ArmAddressBook, JsonReader

    if not isinstance(compute, JsonReader):
        raise TypeError(f"{type(compute).__name__} cannot read ARM resources: pass an "
                        "AddressBook of your own, or the Azure adapter")
    return ArmAddressBook(compute, private_connect_timeout=min(
        PRIVATE_CONNECT_TIMEOUT, config.daemon.ssh_timeout_seconds))


def build_hooks(config: LifecycleConfig,
                hooks_of: Callable[[str], Mapping[str, str]]) -> HookRunner:
    from .hooks import HookExecutor

    return HookExecutor(hooks_of, config.hooks)
