"""Pure mapping of the Azure adapter, on the SDK's own models and Azure's own examples."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest
from azure.mgmt.compute import models
from azure.mgmt.compute._utils.model_base import _deserialize

from azlin_lifecycle.adapters.azure.errors import (
    backoff_seconds,
    error_message,
    retry_after_seconds,
)
from azlin_lifecycle.adapters.azure.login import credential_scope, login_error
from azlin_lifecycle.adapters.azure.views import power_info_from_view, resource_group_of, view_of
from azlin_lifecycle.models import PowerInfo, VMState
from tests.support.shared import require_shared

# Every example that carries an instance view, and what it must map to.
AGENT_RUNNING = "GuestAgent is running and accepting new configurations."
EXPECTED = {
    "VirtualMachine_Get_InstanceView.json": PowerInfo(
        VMState.RUNNING, "succeeded", "Ready", agent_message=AGENT_RUNNING,
        agent_time=dt.datetime(2019, 10, 14, 23, 11, 22, tzinfo=dt.UTC),
        provisioning_time="2019-10-14T21:30:12.805191+00:00"),
    "VirtualMachine_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json": PowerInfo(
        VMState.RUNNING, "succeeded", "Ready", agent_message=AGENT_RUNNING,
        agent_time=dt.datetime(2026, 4, 1, 23, 11, 22, tzinfo=dt.UTC),
        provisioning_time="2026-04-01T21:30:12.805191+00:00"),
}


def _views_in(body: Any) -> list[PowerInfo]:
    """Parse every instance view in a response body, as the decoded JSON the daemon reads;
    the SDK's own models of the same body must give the same answer."""
    if not isinstance(body, dict):
        return []
    if "statuses" in body or "vmAgent" in body:
        info = power_info_from_view(body)
        assert power_info_from_view(
            _deserialize(models.VirtualMachineInstanceView, body)) == info
        return [info]
    if "value" in body:
        return [info for item in body["value"] for info in _views_in(item)]
    if "instanceView" in body.get("properties", {}):
        info = power_info_from_view(view_of(body))
        assert power_info_from_view(view_of(_deserialize(models.VirtualMachine, body))) == info
        return [info]
    return []


def test_reads_use_the_api_version_of_the_pinned_sdk() -> None:
    from azure.mgmt.compute.operations import _operations

    from azlin_lifecycle.adapters.azure.reads import (
        API_VERSION,
        instance_view_path,
        list_all_path,
        list_path,
    )

    sdk = _operations.build_virtual_machines_list_request("my rg", "sub-1",
                                                          expand="instanceView")
    assert sdk.url.split("?")[0] == list_path("sub-1", "my rg")
    assert f"api-version={API_VERSION}" in sdk.url
    assert _operations.build_virtual_machines_instance_view_request(
        "rg", "vm-1", "sub-1").url.split("?")[0] == instance_view_path("sub-1", "rg", "vm-1")
    assert _operations.build_virtual_machines_list_all_request(
        "sub-1", status_only="true").url.split("?")[0] == list_all_path("sub-1")


def test_every_example_with_an_instance_view_parses() -> None:
    found: dict[str, list[PowerInfo]] = {}
    for path in sorted(require_shared("azure-examples").glob("*.json")):
        doc = json.loads(path.read_text())
        for response in doc.get("responses", {}).values():
            infos = _views_in(response.get("body"))
            if infos:
                found.setdefault(path.name, []).extend(infos)
    assert set(found) == set(EXPECTED)
    for name, infos in found.items():
        assert infos == [EXPECTED[name]], name


def test_list_example_without_instance_view_maps_to_unknown() -> None:
    doc = json.loads((require_shared("azure-examples") / "VirtualMachine_List_MinimumSet_Gen.json")
                     .read_text())
    body = doc["responses"]["200"]["body"]
    assert body["value"] and all(view_of(vm) is None for vm in body["value"])
    assert power_info_from_view(None) == PowerInfo(
        VMState.UNKNOWN, message="Azure returned no instance view"
    )


def _view(statuses: list[dict[str, Any]], agent: str | None = None) -> Any:
    raw: dict[str, Any] = {"statuses": statuses}
    if agent is not None:
        raw["vmAgent"] = {"statuses": [{"code": "ProvisioningState/succeeded",
                                        "displayStatus": agent}]}
    return _deserialize(models.VirtualMachineInstanceView, raw)


@pytest.mark.parametrize("power", ["starting", "running", "stopping", "stopped",
                                   "deallocating", "deallocated"])
def test_power_states_map(power: str) -> None:
    view = _view([{"code": "ProvisioningState/updating"}, {"code": f"PowerState/{power}"}])
    assert power_info_from_view(view) == PowerInfo(VMState(power), "updating", None)


def test_failed_provisioning_unknown_power_and_agent_not_ready() -> None:
    view = _view([{"code": "ProvisioningState/failed/AllocationFailed", "level": "Error"},
                  {"code": "PowerState/hibernated"}], agent="Not Ready")
    assert power_info_from_view(view) == PowerInfo(
        VMState.UNKNOWN, "failed/AllocationFailed", "Not Ready"
    )
    assert power_info_from_view(_view([])) == PowerInfo(VMState.UNKNOWN)


def test_resource_group_of() -> None:
    rid = "/subscriptions/s/resourceGroups/My-RG/providers/Microsoft.Compute/virtualMachines/v"
    assert resource_group_of(rid) == "My-RG"
    assert resource_group_of(rid.replace("resourceGroups", "resourcegroups")) == "My-RG"
    assert resource_group_of(None) is None
    assert resource_group_of("/subscriptions/s") is None


def test_credential_scope_per_cloud() -> None:
    assert credential_scope("https://management.azure.com") == (
        "https://management.azure.com/.default"
    )
    assert credential_scope("https://management.usgovcloudapi.net/") == (
        "https://management.core.usgovcloudapi.net/.default"
    )
    assert credential_scope("https://management.chinacloudapi.cn") == (
        "https://management.chinacloudapi.cn/.default"
    )
    assert credential_scope("https://127.0.0.1:8443") == "https://127.0.0.1:8443/.default"


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "1200"}) == 1200
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_seconds({"x-ms-retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds({"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}, now) == 30
    assert retry_after_seconds({"Retry-After": "Wed, 01 Jan 2025 11:00:00 GMT"}, now) == 0


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff_seconds(0) <= 0.625
    assert 2.0 <= backoff_seconds(2) <= 2.5
    assert 8.0 <= backoff_seconds(10) <= 10.0
    assert 8.0 <= backoff_seconds(10_000) <= 10.0


def test_messages_are_one_line() -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.identity import CredentialUnavailableError

    exc = ResourceNotFoundError(
        "(ResourceNotFound) The Resource 'x' was not found.\nCode: ResourceNotFound\n"
        "Message: The Resource 'x' was not found."
    )
    assert error_message(exc) == "(ResourceNotFound) The Resource 'x' was not found."
    err = login_error(CredentialUnavailableError("Please run 'az login' to set up an account"))
    text = str(err)
    assert "\n" not in text and "az login" in text and text.startswith("Azure login")


def test_importing_the_adapters_imports_no_sdk() -> None:
    code = (
        "import sys, azlin_lifecycle.adapters.azure.compute, azlin_lifecycle.adapters.ssh.prober; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('azure', 'paramiko', 'requests')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"


def test_shared_token_cache_runs_the_credential_once_for_all_threads() -> None:
    import threading
    import time

    from azure.core.credentials import AccessToken

    from azlin_lifecycle.adapters.azure.login import SharedTokenCache

    calls: list[tuple[str, ...]] = []

    class SlowCli:
        expires_in = 3600

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            calls.append(scopes)
            time.sleep(0.05)
            return AccessToken(f"t{len(calls)}", int(time.time()) + self.expires_in)

    inner = SlowCli()
    cache = SharedTokenCache(inner)  # type: ignore[arg-type]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(
        cache.get_token("https://management.azure.com/.default").token)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens == ["t1"] * 16 and len(calls) == 1
    cache.get_token("https://other/.default")
    assert len(calls) == 2
    inner.expires_in = 200  # inside the 300 s refresh margin: fetched again each time
    cache._tokens.clear()
    assert cache.get_token("s").token == "t3"
    assert cache.get_token("s").token == "t4"


# ---------------------------------------------------------------------------- throttling
def test_remaining_budgets_of_both_header_forms() -> None:
    from azlin_lifecycle.adapters.azure.limits import remaining_budgets

    headers = {
        "x-ms-ratelimit-remaining-subscription-reads": "249",
        "X-Ms-Ratelimit-Remaining-Resource":
            "Microsoft.Compute/HighCostGet3Min;897, Microsoft.Compute/HighCostGet30Min;4481",
        "x-ms-ratelimit-remaining-subscription-writes": "soon",
        "Retry-After": "5",
    }
    assert remaining_budgets(headers) == {
        "x-ms-ratelimit-remaining-subscription-reads": 249,
        "Microsoft.Compute/HighCostGet3Min": 897,
        "Microsoft.Compute/HighCostGet30Min": 4481,
    }


@pytest.mark.parametrize(("budget", "left", "low"), [
    ("x-ms-ratelimit-remaining-subscription-reads", 25, False),
    ("x-ms-ratelimit-remaining-subscription-reads", 24, True),
    ("Microsoft.Compute/HighCostGet3Min", 90, False),
    ("Microsoft.Compute/HighCostGet3Min", 89, True),
    ("Microsoft.Compute/LowCostGet3Min", 2399, True),
    ("Microsoft.Compute/SomethingPerVM3Min", 11, False),
    ("Microsoft.Compute/SomethingPerVM3Min", 10, True),
])
def test_low_is_ten_percent_of_the_documented_bucket(budget: str, left: int, low: bool) -> None:
    from azlin_lifecycle.adapters.azure.limits import is_low

    assert is_low(budget, left) is low


def test_a_low_budget_is_logged_at_most_once_a_minute_per_name(
        caplog: pytest.LogCaptureFixture) -> None:
    from azlin_lifecycle.adapters.azure.limits import RateLimitWatch

    now = [1000.0]
    watch = RateLimitWatch(clock=lambda: now[0])
    low_list = {"x-ms-ratelimit-remaining-resource": "Microsoft.Compute/HighCostGet3Min;12"}
    low_reads = {"x-ms-ratelimit-remaining-subscription-reads": "3"}
    with caplog.at_level("WARNING", logger="azlin_lifecycle.adapters.azure.compute"):
        assert watch.observe(low_list) == ["Microsoft.Compute/HighCostGet3Min"]
        now[0] += 59
        assert watch.observe(low_list) == []
        assert watch.observe(low_reads) == ["x-ms-ratelimit-remaining-subscription-reads"]
        assert watch.observe({"x-ms-ratelimit-remaining-subscription-reads": "200"}) == []
        now[0] += 1
        assert watch.observe(low_list) == ["Microsoft.Compute/HighCostGet3Min"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "HighCostGet3Min has 12 requests left of 900" in messages[0]
    assert all(r.levelname == "WARNING" and "\n" not in r.getMessage() for r in caplog.records)


def test_not_before_keeps_the_later_ask_and_expires() -> None:
    from azlin_lifecycle.adapters.azure.limits import NotBefore

    now = [0.0]
    hold = NotBefore(clock=lambda: now[0])
    assert hold.until("sub") is None
    hold.record("sub", 30)
    first = hold.until("sub")
    hold.record("sub", 5)  # an earlier end does not shorten the hold
    assert hold.until("sub") == first and first is not None
    assert 29 < (first - dt.datetime.now(dt.UTC)).total_seconds() <= 30
    assert hold.until("other") is None
    now[0] = 30.0
    assert hold.until("sub") is None


# ---------------------------------------------------------------------------- listing cache
def test_listing_is_shared_case_insensitively_until_it_expires() -> None:
    from azlin_lifecycle.adapters.azure.listing import SubscriptionListings

    now = [0.0]
    fetched: list[str] = []

    def fetch(sub: str) -> dict[str, dict[str, str]]:
        fetched.append(sub)
        return {"rg-a": {"vm-1": "a1"}, "rg-b": {"vm-2": "b2"}}

    cache: SubscriptionListings[str] = SubscriptionListings(fetch, ttl=5, clock=lambda: now[0])
    assert cache.get("s", "RG-A", ["VM-1"]) == {"vm-1": "a1"}
    assert cache.get("s", "rg-b") == {"vm-2": "b2"}
    assert fetched == ["s"]
    assert cache.get("s", "rg-c", ["ghost"]) == {}  # may be new: listed once more
    assert cache.get("s", "rg-c", ["ghost"]) == {}  # missing from that listing too: known
    assert fetched == ["s", "s"]
    now[0] = 4.9
    assert cache.get("s", "Rg-C", ["GHOST"]) == {}
    assert fetched == ["s", "s"]
    now[0] = 5.0
    cache.get("s", "rg-a")
    assert fetched == ["s", "s", "s"]


def test_a_fetch_that_began_before_a_forget_is_not_installed() -> None:
    import threading

    from azlin_lifecycle.adapters.azure.listing import SubscriptionListings

    began, release = threading.Event(), threading.Event()
    answers = iter(["before repair", "after repair", "later"])

    def fetch(sub: str) -> dict[str, dict[str, str]]:
        value = next(answers)
        if value == "before repair":
            began.set()
            release.wait(5)
        return {"rg": {"vm": value}}

    cache: SubscriptionListings[str] = SubscriptionListings(fetch, ttl=60)
    seen: list[object] = []
    slow = threading.Thread(target=lambda: seen.append(cache.get("s", "rg")))
    slow.start()
    assert began.wait(5)
    cache.forget()  # a repair ended while the listing was on its way
    release.set()
    slow.join(5)
    assert seen == [{"vm": "before repair"}]  # its own caller still gets it ...
    assert cache.get("s", "rg") == {"vm": "after repair"}  # ... but it was never cached
    assert cache.get("s", "rg") == {"vm": "after repair"}


def test_provisioning_failure_from_an_instance_view() -> None:
    from azlin_lifecycle.adapters.azure.views import provisioning_failure

    failed = {"statuses": [{"code": "ProvisioningState/failed/AllocationFailed",
                            "level": "Error", "message": "Allocation failed."},
                           {"code": "PowerState/running"}]}
    assert provisioning_failure(failed) == ("AllocationFailed", "Allocation failed.")
    assert provisioning_failure({"statuses": [{"code": "ProvisioningState/succeeded"}]}) is None
    assert provisioning_failure(None) is None
