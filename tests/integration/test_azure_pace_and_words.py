"""Azure's pace and words.

Pace: a repair never polls its operation sooner than Azure's Retry-After (on the 202 that
accepted it and on every poll); ``operation_poll_seconds`` only where Azure sends none.
Words: a 409's actionable sentence in ``error.details[]`` and every line of a failed
operation's message are kept (one line in the journal's MESSAGE, the whole text in a field
and in ``status --json``). Real SDKs over HTTPS against the stand-in, which answers with
the Retry-After values recorded from real ARM (start: 10 s on the 202, 9 s on each
InProgress poll; restart: none).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.adapters.azure.compute import ArmCompute
from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.config import AzureSettings
from azlin_lifecycle.healing import SelfHealer
from azlin_lifecycle.manager import LifecycleManager
from azlin_lifecycle.models import VMTarget
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import build_compute
from tests.support.fakes import RecordingHooks


def started_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  operation_seconds: float) -> SimulatedFleet:
    fleet = SimulatedFleet(tmp_path / "fleet", vm_count=1, boot_seconds=0.2,
                           operation_seconds=operation_seconds, recorded_pace=True).start()
    for key, value in fleet.env().items():
        monkeypatch.setenv(key, value)
    return fleet


@pytest.fixture
def slow_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    fleet = started_fleet(tmp_path, monkeypatch, operation_seconds=12.0)
    yield fleet
    fleet.stop()


def arm(fleet: SimulatedFleet, polling_interval: float = 5.0) -> ArmCompute:
    compute = ArmCompute(AzureSettings(subscription_id=fleet.subscription_id,
                                       resource_group=fleet.resource_group,
                                       arm_endpoint=fleet.arm_endpoint,
                                       ca_bundle=str(fleet.ca_path)), timeout=10,
                         polling_interval=polling_interval)
    compute.instance_view(target(fleet))  # the token and a connection, before timing
    return compute


def target(fleet: SimulatedFleet) -> VMTarget:
    return VMTarget("vm-001", fleet.subscription_id, fleet.resource_group, "127.0.0.1",
                    fleet.ssh_port("vm-001"), "azureuser", str(fleet.client_key))


def gaps(op: dict[str, object]) -> list[float]:
    """Seconds from the accepted POST to the first poll, then between polls."""
    polls: list[float] = op["polls"]  # type: ignore[assignment]
    times = [float(op["started"]), *polls]  # type: ignore[arg-type]
    return [round(b - a, 2) for a, b in itertools.pairwise(times)]


def test_a_start_waits_for_the_202s_retry_after_and_each_polls(
        slow_ops: SimulatedFleet) -> None:
    """(a) the 202 says Retry-After: 10, so the first poll waits 10 s (the SDK alone polls
    at once); (b) the InProgress poll says 9, so the next waits 9 s, not the 5 s of
    operation_poll_seconds."""
    slow_ops.set_power_state("vm-001", "deallocated")
    compute = arm(slow_ops, polling_interval=5.0)
    compute.start(target(slow_ops), timeout=60)
    (op,) = slow_ops.operations()
    assert op["action"] == "start" and op["status"] == "Succeeded"
    first, second, *rest = gaps(op)
    assert 10.0 <= first < 11.5, gaps(op)
    assert 9.0 <= second < 10.5, gaps(op)
    # After Succeeded, the SDK's one GET of the Location URL (not a status poll).
    assert len(rest) <= 1, gaps(op)


def test_without_retry_after_the_first_poll_is_at_once_then_every_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = started_fleet(tmp_path, monkeypatch, operation_seconds=3.0)
    try:
        compute = arm(fleet, polling_interval=1.0)
        compute.restart(target(fleet), timeout=30)
        (op,) = fleet.operations()
    finally:
        fleet.stop()
    assert op["status"] == "Succeeded"
    first, *later = gaps(op)
    assert first < 0.5, gaps(op)  # restart's 202 carries no Retry-After: poll at once
    polls = later[:-1]  # the last gap leads to the final Location GET
    assert polls and all(1.0 <= g < 1.6 for g in polls), gaps(op)


def test_a_deadline_before_the_retry_after_ends_the_wait_without_a_poll(
        slow_ops: SimulatedFleet) -> None:
    slow_ops.set_power_state("vm-001", "deallocated")
    compute = arm(slow_ops)
    began = time.monotonic()
    with pytest.raises(AzureOperationError) as caught:
        compute.start(target(slow_ops), timeout=4)
    took = time.monotonic() - began
    assert caught.value.code == "OperationTimedOut"
    assert 3.5 <= took < 6, took
    (op,) = slow_ops.operations()
    assert op["polls"] == []  # Azure asked for 10 s: it was never asked sooner


# ---------------------------------------------------------------------------- words
ALLOCATED = ("The requested VM size Standard_D4s_v5 is not available in the current cluster. "
             "The VM vm-001 is currently allocated. Please deallocate and try again.")


@pytest.fixture
def quick_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    fleet = started_fleet(tmp_path, monkeypatch, operation_seconds=0.3)
    yield fleet
    fleet.stop()


def test_a_409s_actionable_details_are_kept(quick_ops: SimulatedFleet) -> None:
    quick_ops.refuse_next_request("vm-001", "start", code="OperationNotAllowed",
                                  message="Operation 'start' is not allowed on VM 'vm-001'.",
                                  details=[{"code": "OperationNotAllowed", "message": ALLOCATED}])
    with pytest.raises(AzureOperationError) as caught:
        arm(quick_ops).start(target(quick_ops), timeout=20)
    error = caught.value
    assert error.code == "OperationNotAllowed"
    assert "\n" not in str(error) and "Please deallocate and try again" in str(error)
    assert str(error).startswith("start of vm-001: Operation 'start' is not allowed")
    assert error.detail == ("Operation 'start' is not allowed on VM 'vm-001'.\n"
                            f"OperationNotAllowed: {ALLOCATED}")
    assert quick_ops.operations() == []  # refused: nothing started


def test_a_failed_operations_whole_message_reaches_the_journal_and_status_json(
        quick_ops: SimulatedFleet, isolated_dirs: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    path = isolated_dirs / "lifecycle-config.toml"
    quick_ops.write_config(path, restart_policy="on-failure")
    config = LifecycleManager(path).load()
    healer = SelfHealer(config, compute=build_compute(config), store=StateStore(),
                        hooks=(hooks := RecordingHooks()))
    lines = ["The VM could not be restarted: the guest did not shut down in time.",
             "Restart it again; if this recurs, redeploy it (az vm redeploy).",
             "ActivityId: 6a1c0e2f"]
    quick_ops.fail_next_operation("vm-001", "restart", code="VMRestartTimedOut",
                                  message="\n".join(lines))
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle"):
        result = healer.restart_vm("vm-001")
    assert not result.success and result.error_message is not None
    assert result.error_message == ("restart of vm-001 failed: " + lines[0]
                                    + " [VMRestartTimedOut]")
    (failed,) = [r for r in caplog.records if getattr(r, "EVENT", "") == "restart_failed"]
    assert "\n" not in failed.getMessage() and lines[0] in failed.getMessage()
    assert failed.__dict__["ERROR_DETAIL"] == "\n".join(lines)
    ((_, context),) = hooks.of("on_restart")
    assert context["error_detail"] == "\n".join(lines)
    runner = CliRunner()
    shown = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    (vm,) = [v for v in shown["vms"] if v["vm"] == "vm-001"]
    assert vm["last_repair"]["error"].splitlines() == [result.error_message, *lines]
    text = runner.invoke(cli, ["status"]).output
    assert f"vm-001: last repair failed: {result.error_message} (more in status --json)" in text
    assert lines[1] not in text
