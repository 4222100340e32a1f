"""The SSH adapter keeps at most ``max_open`` connections open, the most recently used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.models import VMTarget
from azlin_lifecycle.simulator import SimulatedFleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("sim"), 4) as f:
        yield f


def target(fleet: SimulatedFleet, vm: str) -> VMTarget:
    return VMTarget(vm, fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                    fleet.ssh_port(vm), "azureuser", str(fleet.client_key))


def test_at_most_max_open_connections_stay_open(fleet: SimulatedFleet,
                                               tmp_path: Path) -> None:
    prober = ParamikoSshProber(known_hosts=tmp_path / "known_hosts", max_open=2)
    targets = [target(fleet, vm) for vm in fleet.vm_names]
    try:
        for _ in range(2):  # two sweeps
            for t in targets:
                assert prober.probe(t, 10).reachable
        open_now = [t.name for t in targets if prober.cached_transport(t) is not None]
        assert open_now == ["vm-001", "vm-002"]  # the first two kept, reused
        assert prober.connections_opened == 4 + 2  # vm-003 and vm-004 reconnected
        prober.forget(targets[0])  # e.g. after a restart: the slot frees up
        assert prober.probe(targets[3], 10).reachable
        assert prober.cached_transport(targets[3]) is not None
    finally:
        prober.close()


def test_zero_keeps_no_connection_open(fleet: SimulatedFleet, tmp_path: Path) -> None:
    prober = ParamikoSshProber(known_hosts=tmp_path / "known_hosts", max_open=0)
    try:
        t = target(fleet, "vm-001")
        assert prober.probe(t, 10).reachable and prober.probe(t, 10).reachable
        assert prober.cached_transport(t) is None and prober.connections_opened == 2
    finally:
        prober.close()
