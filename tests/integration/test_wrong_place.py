"""A VM's subscription or resource group from azlin's context, azlin's config or the Azure
CLI, checked against the stand-in ARM through the CLI and the daemon as real processes:
Azure's "not found" / "not authorized" is one line naming the value and where it was set,
"needs you" in `status`, never healthy and never a restart. Loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from azlin_lifecycle.models import SshFault
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.state import StateStore
from tests.support.waiting import wait_for

BIN = Path(sys.executable).parent
WRONG_SUB = "00000000-0000-0000-0000-0000000000bb"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(tmp_path_factory.mktemp("place"), 2, boot_seconds=0.3) as fleet:
        yield fleet


@pytest.fixture
def azlin_dir(fleet: SimulatedFleet, isolated_dirs: Path) -> Path:
    """A lifecycle-config.toml for the fleet with no subscription or resource group of its
    own: azlin's settings (written by each test) decide."""
    path = isolated_dirs / "lifecycle-config.toml"
    fleet.write_config(path, restart_policy="always")
    doc = tomllib.loads(path.read_text())
    del doc["azure"]["subscription_id"], doc["azure"]["resource_group"]
    path.write_text(tomli_w.dumps(doc))
    return isolated_dirs


def context(azlin_dir: Path, name: str, **values: str) -> Path:
    path = azlin_dir / "contexts" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(tomli_w.dumps({"name": name, **values}))
    (azlin_dir / "active-context").write_text(f"{name}\n")
    return path


def env(fleet: SimulatedFleet, azlin_dir: Path, **extra: str) -> dict[str, str]:
    return {**fleet.env(), "AZLIN_CONFIG_DIR": str(azlin_dir),
            "XDG_STATE_HOME": str(azlin_dir.parent / "state"), **extra}


def check(fleet: SimulatedFleet, azlin_dir: Path, *args: str,
          **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "azlin-lifecycle"), "check", "vm-001", *args],
                          capture_output=True, text=True, timeout=60,
                          env=env(fleet, azlin_dir, **extra))


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith("azlin-lifecycle: error: vm-001: "), res.stderr
    return res.stderr.removeprefix("azlin-lifecycle: error: vm-001: ").strip()


def test_the_selected_contexts_subscription_and_group_are_used(
        fleet: SimulatedFleet, azlin_dir: Path) -> None:
    context(azlin_dir, "sim", subscription_id=fleet.subscription_id,
            resource_group=fleet.resource_group)
    res = check(fleet, azlin_dir, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["healthy"] is True


def test_a_context_with_a_subscription_azure_does_not_know(
        fleet: SimulatedFleet, azlin_dir: Path) -> None:
    path = context(azlin_dir, "prod", subscription_id=WRONG_SUB,
                   resource_group=fleet.resource_group)
    before = fleet.arm_answers.get(404, 0)
    line = one_line_error(check(fleet, azlin_dir))
    assert line.startswith(f"subscription {WRONG_SUB} (from azlin context prod, {path}) not "
                           f"found: The subscription '{WRONG_SUB}' could not be found; ")
    assert fleet.arm_answers.get(404, 0) == before + 1  # Azure's answer, not a guess
    res = check(fleet, azlin_dir, "--json")
    assert res.returncode == 1
    record = json.loads(res.stdout)
    assert record["healthy"] is False and record["ssh_checked"] is False
    assert record["fault"] == SshFault.AZURE_SCOPE.value and record["reason"] == line
    # the history has it, as the daemon's checks would
    store = StateStore(azlin_dir.parent / "state" / "azlin-lifecycle" / "state.db")
    try:
        assert store.history("vm-001", 1)[0].needs_you
    finally:
        store.close()


def test_our_own_settings_win_over_azlins_context(fleet: SimulatedFleet,
                                                  azlin_dir: Path) -> None:
    context(azlin_dir, "prod", subscription_id=WRONG_SUB, resource_group="rg-gone")
    config = azlin_dir / "lifecycle-config.toml"
    doc = tomllib.loads(config.read_text())
    doc["azure"]["subscription_id"] = fleet.subscription_id
    doc["vms"]["vm-001"]["resource_group"] = fleet.resource_group
    config.write_text(tomli_w.dumps(doc))
    res = check(fleet, azlin_dir)
    assert res.returncode == 0, res.stderr


def test_azlins_default_resource_group_that_azure_does_not_know(
        fleet: SimulatedFleet, azlin_dir: Path) -> None:
    context(azlin_dir, "sub-only", subscription_id=fleet.subscription_id)
    (azlin_dir / "config.toml").write_text('default_resource_group = "rg-gone"\n')
    line = one_line_error(check(fleet, azlin_dir))
    assert line.startswith(
        f"resource group rg-gone (from azlin's default_resource_group, {azlin_dir}/config.toml)"
        " not found: Resource group 'rg-gone' could not be found; ")


def test_the_azure_clis_default_subscription_that_azure_does_not_know(
        fleet: SimulatedFleet, azlin_dir: Path, tmp_path: Path) -> None:
    (azlin_dir / "config.toml").write_text(f'default_resource_group = "{fleet.resource_group}"\n')
    azure = tmp_path / "azure"
    azure.mkdir()
    profile = {"subscriptions": [{"id": WRONG_SUB, "isDefault": True, "state": "Enabled"}]}
    (azure / "azureProfile.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(profile).encode())
    line = one_line_error(check(fleet, azlin_dir, AZURE_CONFIG_DIR=str(azure)))
    assert line.startswith(f"subscription {WRONG_SUB} (from the Azure CLI's default "
                           "subscription, see az account show) not found: ")


@pytest.mark.parametrize(("denied", "start"), [
    ("subscription", "subscription {sub} (from azlin context sim, {ctx}) cannot be read by "
                     "this login: The client 'azlin-simulator@example.invalid' with object id"),
    ("resource_group", "resource group {rg} (from azlin context sim, {ctx}) cannot be read by "
                       "this login: The client 'azlin-simulator@example.invalid' with object id"),
])
def test_a_login_without_a_role_there(fleet: SimulatedFleet, azlin_dir: Path, denied: str,
                                      start: str) -> None:
    ctx = context(azlin_dir, "sim", subscription_id=fleet.subscription_id,
                  resource_group=fleet.resource_group)
    fleet.deny_reads(denied)
    try:
        before = fleet.arm_answers.get(403, 0)
        line = one_line_error(check(fleet, azlin_dir))
        assert fleet.arm_answers.get(403, 0) == before + 1
    finally:
        fleet.deny_reads(None)
    assert line.startswith(start.format(sub=fleet.subscription_id, rg=fleet.resource_group,
                                        ctx=ctx)), line
    assert "a role that can read it (e.g. Reader)" in line


def test_a_selected_context_whose_file_is_missing(fleet: SimulatedFleet,
                                                  azlin_dir: Path) -> None:
    (azlin_dir / "active-context").write_text("gone\n")
    res = check(fleet, azlin_dir)
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1
    assert res.stderr.startswith(f"azlin-lifecycle: error: {azlin_dir}/contexts/gone.toml: "
                                 "azlin context 'gone' is selected but its file cannot be read")


def test_the_daemon_says_needs_you_and_never_restarts(fleet: SimulatedFleet,
                                                      azlin_dir: Path) -> None:
    ctx = context(azlin_dir, "prod", subscription_id=WRONG_SUB,
                  resource_group=fleet.resource_group)
    config = azlin_dir / "lifecycle-config.toml"
    hook, alerts = azlin_dir.parent / "alert.sh", azlin_dir.parent / "alerts.log"
    hook.write_text(f'#!/bin/sh\necho "$EVENT_TYPE|$FAILURE_COUNT|$REASON" >> {alerts}\n')
    hook.chmod(0o755)
    doc: dict[str, Any] = tomllib.loads(config.read_text())
    doc["vms"]["vm-002"]["enabled"] = False
    doc["vms"]["vm-001"]["hooks"] = {"on_failure": str(hook)}
    config.write_text(tomli_w.dumps(doc))
    log = azlin_dir.parent / "daemon.log"
    store = StateStore(azlin_dir.parent / "state" / "azlin-lifecycle" / "state.db")
    with log.open("w") as err:
        proc = subprocess.Popen([str(BIN / "azlin-lifecycle"), "daemon", "run"],
                                env=env(fleet, azlin_dir), stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        wait_for(lambda: alerts.exists(), 30, "the on_failure alert of vm-001")
        time.sleep(1.5)  # a repair it decided on would be POSTed by now
    finally:
        proc.terminate()
        proc.wait(20)
        latest = store.history("vm-001", 5)
        store.close()
    assert all(s.needs_you and not s.healthy and s.ssh_failures == 0 for s in latest)
    assert [op for op in fleet.operations() if op["vm"] == "vm-001"] == []  # policy always
    reason = latest[-1].reason
    assert reason is not None and reason.startswith(
        f"subscription {WRONG_SUB} (from azlin context prod, {ctx}) not found: ")
    assert alerts.read_text().splitlines()[0] == f"on_failure|0|{reason}"
    lines = [line for line in log.read_text().splitlines() if "check_failed" in line]
    assert lines and f"[vm-001] check_failed: vm-001: unhealthy: {reason}" in lines[-1]
    res = subprocess.run([str(BIN / "azlin-lifecycle"), "status"], capture_output=True,
                         text=True, timeout=60, env=env(fleet, azlin_dir))
    assert "NEEDS YOU" in res.stdout and f"vm-001: needs you: {reason}" in res.stdout
    data = json.loads(subprocess.run(
        [str(BIN / "azlin-lifecycle"), "status", "--json"], capture_output=True, text=True,
        timeout=60, env=env(fleet, azlin_dir)).stdout)
    vm = next(row for row in data["vms"] if row["vm"] == "vm-001")
    assert vm["needs_you"] is True and vm["healthy"] is False
