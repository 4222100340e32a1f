"""on_failure pages per incident, a digest for many, on_healthy closes: the real daemon,
real hook scripts, the simulator (issue 19's "alerts a person can live with")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from tests.support.inprocess import running_daemon
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

FIELDS = ("EVENT_TYPE", "VM_NAME", "ALERT", "REPEAT", "OUTCOME", "INCIDENT_ID",
          "INCIDENT_STARTED", "INCIDENT_SECONDS", "FAILURE_COUNT", "DIGEST", "VM_NAMES",
          "VM_COUNT")
HOOK = "#!/bin/sh\necho " + " ".join(f'"{f}=${f}"' for f in FIELDS) + " >> {log}\n"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 3) as f:
        yield f


def configure(fleet: SimulatedFleet, dirs: Path, tmp_path: Path, **hooks: Any) -> Path:
    """Every VM's on_failure and on_healthy log their environment; policy never (the
    alerts, not the repairs, are under test); checks every 10 s."""
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(log=tmp_path / "hooks.log"))
    hook.chmod(0o755)
    path = dirs / "lifecycle-config.toml"
    fleet.write_config(path, restart_policy="never", check_interval_seconds=10,
                       hooks={h: str(hook) for h in ("on_failure", "on_healthy")},
                       extra_toml={"daemon": {"ssh_timeout_seconds": 2.0}, "hooks": hooks})
    return path


def fired(tmp_path: Path, event: str) -> list[dict[str, str]]:
    log = tmp_path / "hooks.log"
    lines = log.read_text().splitlines() if log.exists() else []
    rows = [dict(part.split("=", 1) for part in line.split()) for line in lines]
    return [r for r in rows if r["EVENT_TYPE"] == event]


def failed_checks(daemon: Any, vm: str) -> int:
    monitor = getattr(daemon, "monitor", None)  # built once the daemon has started
    return 0 if monitor is None else sum(
        1 for s in monitor.get_health_history(vm) if not s.healthy)


def test_one_page_per_incident_across_a_restart_and_on_healthy_closes_it(
        fleet: SimulatedFleet, isolated_dirs: Path, tmp_path: Path) -> None:
    config = configure(fleet, isolated_dirs, tmp_path)
    with running_daemon(config) as daemon:
        wait_for(lambda: len(fired(tmp_path, "on_healthy")) == 3, 30, "3 VMs healthy")
        fleet.set_ssh_mode("vm-002", SshMode.REFUSED)
        wait_for(lambda: failed_checks(daemon, "vm-002") >= 2, 40, "2 failed checks")
    # A new daemon (a restart, as after a kill): the incident is the same, not paged again.
    with running_daemon(config) as daemon:
        wait_for(lambda: failed_checks(daemon, "vm-002") >= 3, 30, "a third failed check")
        fleet.set_ssh_mode("vm-002", SshMode.UP)
        wait_for(lambda: len(fired(tmp_path, "on_healthy")) == 4, 30, "on_healthy of vm-002")
    [page] = fired(tmp_path, "on_failure")
    assert (page["VM_NAME"], page["ALERT"], page["REPEAT"], page["OUTCOME"]) == (
        "vm-002", "first", "0", "none")
    assert page["INCIDENT_ID"].startswith("vm-002-2") and page["INCIDENT_STARTED"].endswith("Z")
    closed = fired(tmp_path, "on_healthy")[-1]
    assert closed["VM_NAME"] == "vm-002" and closed["INCIDENT_ID"] == page["INCIDENT_ID"]
    assert closed["INCIDENT_STARTED"] == page["INCIDENT_STARTED"]
    assert int(closed["FAILURE_COUNT"]) >= 3 and int(closed["INCIDENT_SECONDS"]) >= 20
    assert all(r["INCIDENT_ID"] == "" for r in fired(tmp_path, "on_healthy")[:3])


def test_repeat_seconds_zero_pages_every_failed_check(
        fleet: SimulatedFleet, isolated_dirs: Path, tmp_path: Path) -> None:
    config = configure(fleet, isolated_dirs, tmp_path, repeat_seconds=0)
    with running_daemon(config) as daemon:
        fleet.set_ssh_mode("vm-001", SshMode.REFUSED)
        wait_for(lambda: len(fired(tmp_path, "on_failure")) >= 2, 40, "two pages")
        checks = failed_checks(daemon, "vm-001")
    pages = fired(tmp_path, "on_failure")
    assert [(p["ALERT"], p["REPEAT"]) for p in pages[:2]] == [("first", "0"),
                                                               ("every_check", "1")]
    assert len(pages) == checks and len({p["INCIDENT_ID"] for p in pages}) == 1


def test_many_vms_failing_in_one_sweep_page_once_as_a_digest(
        fleet: SimulatedFleet, isolated_dirs: Path, tmp_path: Path) -> None:
    config = configure(fleet, isolated_dirs, tmp_path)
    for vm in fleet.vm_names:  # from the first sweep on: a blip of the monitor's network
        fleet.set_ssh_mode(vm, SshMode.REFUSED)
    with running_daemon(config) as daemon:
        wait_for(lambda: all(failed_checks(daemon, vm) >= 2 for vm in fleet.vm_names), 40,
                 "two failed sweeps")
        wait_for(lambda: len(fired(tmp_path, "on_failure")) >= 1, 10, "the digest")
    [digest] = fired(tmp_path, "on_failure")
    assert (digest["DIGEST"], digest["VM_NAMES"], digest["VM_COUNT"]) == (
        "1", "vm-001,vm-002,vm-003", "3")
    assert digest["VM_NAME"] == "vm-001" and digest["ALERT"] == "first"
