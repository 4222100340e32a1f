"""Azure says the VM's subscription or resource group does not exist, or that the login
cannot read it: a "needs you" fault naming the value and where it was set; never healthy,
never counted, never a repair."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from azlin_lifecycle.config import (
    AzureSettings,
    HealingSettings,
    LifecycleConfig,
    MonitoringConfig,
    RestartPolicy,
)
from azlin_lifecycle.health import HealthMonitor, failure_of
from azlin_lifecycle.models import HealthStatus, PowerInfo, SshFault, VMState, VMTarget
from azlin_lifecycle.policy import decide
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.rules import FleetView, azure_words, scope_reason, status_line
from azlin_lifecycle.state import StateStore
from tests.support.fakes import FakeAddresses, FakeCompute, FakeSsh

SUB = "00000000-0000-0000-0000-0000000000bb"
NO_SUB = f"The subscription '{SUB}' could not be found."
NO_RG = "Resource group 'rg' could not be found."
DENIED = ("The client 'me@example.com' with object id '0' does not have authorization to "
          "perform action 'Microsoft.Compute/virtualMachines/read' over scope "
          f"'/subscriptions/{SUB}' or the scope is invalid. If access was recently granted, "
          "please refresh your credentials.")


def target(**origins: str) -> VMTarget:
    return VMTarget("web-1", SUB, "rg", "10.0.0.4", **origins)


# --------------------------------------------------------------------------- the words
@pytest.mark.parametrize(("code", "asked", "start"), [
    ("SubscriptionNotFound", "subscription",
     f"subscription {SUB} (from azlin context prod, /a/contexts/prod.toml) not found: "
     f"The subscription '{SUB}' could not be found; fix the setting"),
    ("InvalidSubscriptionId", "subscription",
     f"subscription {SUB} (from azlin context prod, /a/contexts/prod.toml) is not a valid "
     "subscription ID: "),
    ("ResourceGroupNotFound", "resource group",
     "resource group rg (from [vms.web-1]) not found: Resource group 'rg' could not be "
     "found; fix the setting"),
    ("AuthorizationFailed", "subscription",
     f"subscription {SUB} (from azlin context prod, /a/contexts/prod.toml) cannot be read by "
     "this login: The client 'me@example.com'"),
    ("AuthorizationFailed", "resource group", "resource group rg (from [vms.web-1]) cannot be "
     "read by this login: "),
])
def test_the_reason_names_the_value_and_where_it_was_set(code: str, asked: str,
                                                         start: str) -> None:
    t = target(subscription_from="azlin context prod, /a/contexts/prod.toml",
               resource_group_from="[vms.web-1]")
    words = {"ResourceGroupNotFound": NO_RG, "AuthorizationFailed": DENIED}.get(code, NO_SUB)
    reason = scope_reason(t, code, words, asked)
    assert reason.startswith(start), reason
    assert reason.endswith("(a restart cannot fix this, not counted)")
    assert "\n" not in reason
    if code == "AuthorizationFailed":
        assert "a role that can read it (e.g. Reader)" in reason


def test_without_an_origin_the_reason_just_names_the_value() -> None:
    assert scope_reason(target(), "SubscriptionNotFound", NO_SUB, "subscription").startswith(
        f"subscription {SUB} not found: ")


def test_azure_words_drop_the_adapters_prefix() -> None:
    assert azure_words(f"status-only list of VMs in subscription {SUB}: {NO_SUB}") == NO_SUB
    assert azure_words(NO_RG) == NO_RG


# --------------------------------------------------------------------------- the monitor
@dataclass
class AnsweringCompute(FakeCompute):
    """The listing fails with Azure's ``list_error``; instance views answer ``view``."""

    list_error: AzureOperationError | None = None
    view: PowerInfo | AzureOperationError | None = None
    views: list[str] = field(default_factory=list)

    def power_states(self, subscription_id: str, resource_group: str, *,
                     expected: Collection[str] = ()) -> Mapping[str, PowerInfo]:
        if self.list_error is not None:
            self.list_calls += 1
            raise self.list_error
        return super().power_states(subscription_id, resource_group, expected=expected)

    def instance_view(self, target: VMTarget) -> PowerInfo:
        self.views.append(target.name)
        if isinstance(self.view, AzureOperationError):
            raise self.view
        return self.view or super().instance_view(target)


def monitor(tmp_path: Path, compute: FakeCompute, ssh: FakeSsh,
            policy: RestartPolicy = RestartPolicy.ALWAYS) -> HealthMonitor:
    config = LifecycleConfig(
        azure=AzureSettings(subscription_id=SUB, resource_group="rg"),
        vms={v: MonitoringConfig(restart_policy=policy, ssh_host="10.0.0.4")
             for v in ("vm1", "vm2")})
    return HealthMonitor(config=config, compute=compute, ssh=ssh, addresses=FakeAddresses(),
                         store=StateStore(tmp_path / "s.db"))


def listing_error(code: str, words: str) -> AzureOperationError:
    return AzureOperationError(f"status-only list of VMs in subscription {SUB}: {words}", code)


def assert_needs_you(s: HealthStatus, state: VMState, start: str) -> None:
    assert not s.healthy and s.needs_you and s.fault is SshFault.AZURE_SCOPE
    assert s.state is state and s.ssh_failures == 0 and not s.failing
    assert not s.ssh_checked and not s.ssh_reachable
    assert s.reason is not None and s.reason.startswith(start), s.reason


def test_a_subscription_azure_does_not_know_needs_you_for_every_vm_in_it(
        tmp_path: Path) -> None:
    ssh = FakeSsh()
    compute = AnsweringCompute({"vm1": VMState.RUNNING, "vm2": VMState.RUNNING},
                               list_error=listing_error("SubscriptionNotFound", NO_SUB))
    m = monitor(tmp_path, compute, ssh)
    out = m.check_many(["vm1", "vm2"])
    for vm in ("vm1", "vm2"):
        assert_needs_you(out[vm], VMState.NOT_FOUND,
                         f"subscription {SUB} (from [azure]) not found: {NO_SUB[:-1]};")
    assert ssh.probes == [] and compute.list_calls == 1 and compute.views == []
    stored = m.get_health_history("vm1", 1)[0]
    assert stored.fault is SshFault.AZURE_SCOPE and stored.needs_you  # persisted as it was
    assert HealthStatus.from_record(stored.to_record()) == stored


def test_a_login_that_cannot_read_the_subscription_needs_you(tmp_path: Path) -> None:
    compute = AnsweringCompute({"vm1": VMState.RUNNING},
                               list_error=listing_error("AuthorizationFailed", DENIED))
    s = monitor(tmp_path, compute, FakeSsh()).check_vm_health("vm1")
    assert_needs_you(s, VMState.UNKNOWN,
                     f"subscription {SUB} (from [azure]) cannot be read by this login: ")


def test_other_azure_errors_keep_their_way_ssh_decides(tmp_path: Path) -> None:
    ssh = FakeSsh()
    compute = AnsweringCompute(list_error=AzureOperationError("list: boom", "InternalError"))
    s = monitor(tmp_path, compute, ssh).check_vm_health("vm1")
    assert s.healthy and s.state is VMState.UNKNOWN and s.fault is None and ssh.probes == ["vm1"]


def test_a_group_azure_does_not_know_is_asked_once_and_needs_you(tmp_path: Path) -> None:
    compute = AnsweringCompute({"other": VMState.RUNNING}, view=PowerInfo(
        VMState.NOT_FOUND, message=NO_RG, code="ResourceGroupNotFound"))
    compute.states.clear()  # the subscription's listing has none of the group's VMs
    out = monitor(tmp_path, compute, FakeSsh()).check_many(["vm1", "vm2"])
    for vm in ("vm1", "vm2"):
        assert_needs_you(out[vm], VMState.NOT_FOUND,
                         "resource group rg (from [azure]) not found: Resource group 'rg' "
                         "could not be found;")
    assert len(compute.views) == 1  # one instance view for the whole group


def test_a_group_the_login_cannot_read_needs_you(tmp_path: Path) -> None:
    compute = AnsweringCompute(view=AzureOperationError(f"instance view of vm1: {DENIED}",
                                                        "AuthorizationFailed"))
    s = monitor(tmp_path, compute, FakeSsh()).check_vm_health("vm1")
    assert_needs_you(s, VMState.UNKNOWN, "resource group rg (from [azure]) cannot be read by "
                                         "this login: The client 'me@example.com'")


def test_a_vm_missing_from_a_group_that_exists_stays_not_found(tmp_path: Path) -> None:
    compute = AnsweringCompute(view=PowerInfo(VMState.NOT_FOUND, message="gone",
                                              code="ResourceNotFound"))
    s = monitor(tmp_path, compute, FakeSsh()).check_vm_health("vm1")
    assert s.state is VMState.NOT_FOUND and not s.needs_you and s.fault is None
    assert s.reason == "not found in Azure: VM 'vm1' is not in resource group 'rg'"


def test_a_group_with_listed_vms_is_not_asked_about(tmp_path: Path) -> None:
    compute = AnsweringCompute({"vm2": VMState.RUNNING})
    s = monitor(tmp_path, compute, FakeSsh()).check_vm_health("vm1")
    assert s.state is VMState.NOT_FOUND and compute.views == []


def test_a_vm_the_listing_missed_is_taken_from_its_instance_view(tmp_path: Path) -> None:
    compute = AnsweringCompute(view=PowerInfo(VMState.RUNNING, "succeeded", "Ready"))
    s = monitor(tmp_path, compute, FakeSsh()).check_vm_health("vm1")
    assert s.healthy and s.state is VMState.RUNNING and compute.views == ["vm1"]


# --------------------------------------------------------------------------- what follows
def test_never_a_repair_and_the_status_line_says_need_you(tmp_path: Path) -> None:
    compute = AnsweringCompute({"vm1": VMState.RUNNING},
                               list_error=listing_error("SubscriptionNotFound", NO_SUB))
    m = monitor(tmp_path, compute, FakeSsh(), policy=RestartPolicy.ALWAYS)
    for _ in range(5):
        s = m.check_vm_health("vm1")
    decision = decide(m.config.vms["vm1"], HealingSettings(), failure_of(s), [],
                      grace_until=0, now=0, fleet=FleetView())
    assert decision.action is None and not decision.held
    line = status_line(["vm1"], {"vm1": s}, breaker_open=False, dry_run=False, in_flight=[],
                       config_error=None)
    assert "1 need you (vm1)" in line and "0 healthy" in line
