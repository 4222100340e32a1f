"""A reload that changes [azure] reaches the daemon's own adapters: a new ARM client and
address book, and new Bastion tunnels (a new login or CA); given adapters are left alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.adapters.bastion.tunnel import BastionTunnels
from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.config import AzureSettings, LifecycleConfig
from azlin_lifecycle.models import RepairRecord
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import build_daemon_parts, reconfigure


def parts_for(config: LifecycleConfig, tmp_path: Path):  # type: ignore[no-untyped-def]
    def ignore(_: object) -> None: ...

    def interrupted(_: list[RepairRecord]) -> None: ...

    return build_daemon_parts(
        config, StateStore(tmp_path / "state.db"), compute=None, ssh=None, addresses=None,
        hooks=None, hooks_of=lambda vm: {}, on_leadership=ignore, on_interrupted=interrupted)


def test_a_new_azure_login_or_ca_gets_new_tunnels_and_a_new_arm_client(tmp_path: Path) -> None:
    old = LifecycleConfig(azure=AzureSettings(ca_bundle="/etc/old-ca.pem"))
    parts = parts_for(old, tmp_path)
    prober = parts.monitor.ssh
    assert isinstance(prober, ParamikoSshProber)
    assert isinstance(prober.tunnels, BastionTunnels)
    assert prober.tunnels.ca_bundle == "/etc/old-ca.pem"
    assert isinstance(parts.monitor.compute, ArmCompute)
    assert prober.tunnels.credential is parts.monitor.compute.credential()
    compute, addresses = parts.monitor.compute, parts.monitor.addresses
    new = dataclasses.replace(old, azure=AzureSettings(ca_bundle="/etc/new-ca.pem"))
    reconfigure(parts, old, new, own_compute=True, own_addresses=True, own_ssh=True)
    assert isinstance(prober.tunnels, BastionTunnels)
    assert prober.tunnels.ca_bundle == "/etc/new-ca.pem"
    assert parts.monitor.compute is not compute
    new_compute = parts.monitor.compute
    assert isinstance(new_compute, ArmCompute)
    assert prober.tunnels.credential is new_compute.credential()  # one login, one token
    assert parts.monitor.addresses is not addresses
    assert parts.monitor.ssh is prober  # its open connections are kept


def test_an_unchanged_azure_or_given_adapters_are_kept(tmp_path: Path) -> None:
    old = LifecycleConfig(azure=AzureSettings(ca_bundle="/etc/old-ca.pem"))
    parts = parts_for(old, tmp_path)
    prober = parts.monitor.ssh
    assert isinstance(prober, ParamikoSshProber)
    tunnels = prober.tunnels
    reconfigure(parts, old, old, own_compute=True, own_addresses=True, own_ssh=True)
    assert prober.tunnels is tunnels
    new = dataclasses.replace(old, azure=AzureSettings(ca_bundle="/etc/new-ca.pem"))
    reconfigure(parts, old, new, own_compute=False, own_addresses=False, own_ssh=False)
    assert prober.tunnels is tunnels
