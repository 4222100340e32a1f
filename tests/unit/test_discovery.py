"""[discovery]'s pure parts: tag filters, the table, the merge with [vms.X], where its
resource groups come from, and the journal events of Discovery (a fake listing)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from azlin_lifecycle.azlin_settings import AzlinContext, AzlinSettings
from azlin_lifecycle.config import LifecycleConfig, MonitoringConfig, parse_toml, render_toml
from azlin_lifecycle.config.discovery import matches, parse_tag, with_changes
from azlin_lifecycle.discovery import Discovery, Found, list_found, merged, sources
from azlin_lifecycle.errors import LifecycleConfigError
from azlin_lifecycle.models import HealthStatus, PowerInfo, VMState
from azlin_lifecycle.ports import AzureOperationError
from azlin_lifecycle.targets import discovery_scopes

SUB = "00000000-0000-0000-0000-0000000000aa"


def config(text: str) -> LifecycleConfig:
    return parse_toml(text, "f.toml")


# --------------------------------------------------------------------------- tags
@pytest.mark.parametrize(("text", "parsed"), [
    ("azlin-session", ("azlin-session", None)),
    ("env=dev", ("env", "dev")),
    ("env=", ("env", "")),  # the tag with an empty value (Azure allows it)
    ("a=b=c", ("a", "b=c")),  # split at the first '=': Azure allows '=' in a value
])
def test_a_tag_filter_is_a_name_or_a_name_and_value(text: str, parsed: tuple[str, str | None]
                                                    ) -> None:
    assert parse_tag(text) == parsed


@pytest.mark.parametrize(("text", "words"), [
    ("=x", "the tag name is empty"), ("", "the tag name is empty"),
    (" env=x", "leading or trailing spaces"), ("a/b", "not a valid Azure tag name"),
    ("a<b", "not a valid Azure tag name"), ("k" * 513, "not a valid Azure tag name"),
    ("k=" + "v" * 257, "over 256 characters"),
])
def test_a_malformed_tag_filter_says_why(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_tag(text)


def test_tags_match_names_case_insensitively_and_values_exactly() -> None:
    tags = {"Azlin-Session": "Dev", "env": ""}
    assert matches(tags, [("azlin-session", None)])
    assert matches(tags, [("AZLIN-SESSION", "Dev"), ("env", "")])
    assert not matches(tags, [("azlin-session", "dev")])  # values are case-sensitive
    assert not matches(tags, [("azlin-session", None), ("team", None)])  # all must match
    assert matches({}, [])


# --------------------------------------------------------------------------- the table
def test_the_table_round_trips_and_writes_only_what_is_set() -> None:
    cfg = config('[discovery]\nresource_groups = ["rg-a", "rg-b"]\ntags = ["azlin-session"]\n'
                 'restart_policy = "on-failure"\nssh_key = "/k"\n'
                 '[discovery.hooks]\non_failure = "/bin/alert"\n')
    assert cfg.discovery is not None
    vm = cfg.discovery.monitoring
    assert (vm.restart_policy.value, vm.ssh_key, dict(vm.hooks)) == (
        "on-failure", "/k", {"on_failure": "/bin/alert"})
    text = render_toml(cfg)
    assert config(text) == cfg
    assert "check_interval_seconds" not in text and "enabled = true" in text
    assert config("").discovery is None and "[discovery]" not in render_toml(config(""))


@pytest.mark.parametrize(("text", "error"), [
    ('tags = ["=x"]', "f.toml [discovery]: tags entry '=x' is not allowed: the tag name is "
     "empty"),
    ('resource_groups = ["rg."]', "f.toml [discovery]: resource_groups entry 'rg.' is not "
     "allowed: not a valid resource group name; expected 1-90 letters"),
    ('resource_groups = "rg-a"', "f.toml [discovery]: resource_groups = 'rg-a' is not "
     "allowed: expected a list of strings"),
    ("ssh_host = \"1.2.3.4\"", "f.toml [discovery]: unknown key 'ssh_host'; allowed: "),
    ("check_interval_seconds = 5", "f.toml [discovery]: check_interval_seconds = 5 is not "
     "allowed: expected an integer from 10 to 86400"),
    ('[discovery.hooks]\non_lunch = "/x"', "f.toml [discovery.hooks]: unknown hook type "
     "'on_lunch'"),
])
def test_a_bad_table_is_one_line_naming_key_value_and_what_is_allowed(text: str,
                                                                      error: str) -> None:
    head = "" if text.startswith("[discovery.") else "[discovery]\n"
    with pytest.raises(LifecycleConfigError) as exc:
        config(head + text)
    assert str(exc.value).startswith(error) and "\n" not in str(exc.value)


def test_with_changes_keeps_what_is_not_given_and_merges_hooks() -> None:
    first = with_changes(None, "command line", resource_groups=["rg-a"],
                         hooks={"on_failure": "/a"}, restart_policy="always")
    second = with_changes(first, "command line", tags=["env=dev"], hooks={"on_healthy": "/b"})
    assert second.resource_groups == ("rg-a",) and second.tags == ("env=dev",)
    assert second.monitoring.restart_policy.value == "always"
    assert dict(second.monitoring.hooks) == {"on_failure": "/a", "on_healthy": "/b"}
    with pytest.raises(LifecycleConfigError, match="tags entry 'a/b'"):
        with_changes(second, "command line", tags=["a/b"])


# --------------------------------------------------------------------------- the merge
FOUND = {"azlin-vm-1": Found("azlin-vm-1", "rg-a", SUB), "web": Found("web", "rg-b", SUB),
         "old": Found("old", "rg-a", SUB)}
FILE = ('[discovery]\nrestart_policy = "always"\nssh_key = "/k"\ncheck_interval_seconds = 30\n'
        '[discovery.hooks]\non_failure = "/alert"\n'
        '[vms.WEB]\nrestart_policy = "never"\n'  # another case: the same VM for Azure
        '[vms.old]\nenabled = false\n'
        '[vms.db]\nresource_group = "rg-db"\n')


def test_found_vms_are_added_and_a_vms_table_overrides_or_excludes() -> None:
    eff = merged(config(FILE), FOUND)
    assert sorted(eff.vms) == ["WEB", "azlin-vm-1", "db", "old"]
    vm = eff.vms["azlin-vm-1"]
    assert (vm.restart_policy.value, vm.check_interval_seconds, vm.ssh_key) == (
        "always", 30, "/k")
    assert (vm.resource_group, vm.subscription_id) == ("rg-a", SUB)
    web = eff.vms["WEB"]  # its table's settings, what it leaves unset from where it was found
    assert (web.restart_policy.value, web.check_interval_seconds) == ("never", 60)
    assert (web.resource_group, web.ssh_key, dict(web.hooks)) == ("rg-b", "/k",
                                                                  {"on_failure": "/alert"})
    assert not eff.vms["old"].enabled and "old" not in eff.enabled_vms()
    assert eff.vms["db"] == config(FILE).vms["db"]  # not found: as the file says
    assert sources(config(FILE), FOUND) == {"WEB": "override", "old": "override",
                                            "db": "config", "azlin-vm-1": "discovery"}


def test_nothing_is_added_when_discovery_is_off_or_absent() -> None:
    off = config(FILE.replace("[discovery]\n", "[discovery]\nenabled = false\n"))
    assert merged(off, FOUND) is off
    plain = config('[vms.db]\nresource_group = "rg-db"\n')
    assert merged(plain, FOUND) is plain


class Listing:
    """A ComputeApi's power_states: (subscription, group) -> lowercased name -> PowerInfo."""

    def __init__(self, groups: Mapping[str, dict[str, dict[str, str]]]) -> None:
        self.groups = groups
        self.asked: list[tuple[str, str]] = []

    def power_states(self, subscription_id: str, resource_group: str, *,
                     expected: Collection[str] = ()) -> Mapping[str, PowerInfo]:
        self.asked.append((subscription_id, resource_group))
        return {name.lower(): PowerInfo(VMState.RUNNING, name=name, tags=tuple(tags.items()))
                for name, tags in self.groups.get(resource_group, {}).items()}


def test_list_found_keeps_the_vms_carrying_every_tag_in_every_group() -> None:
    cfg = config('[discovery]\nresource_groups = ["rg-a", "rg-b"]\n'
                 'tags = ["azlin-session", "env=dev"]\n')
    listing = Listing({
        "rg-a": {"Azlin-VM-1": {"azlin-session": "s", "env": "dev"},
                 "other": {"env": "dev"}},
        "rg-b": {"azlin-vm-2": {"AZLIN-SESSION": "t", "env": "dev"},
                 "azlin-vm-1": {"azlin-session": "s", "env": "dev"}}})  # same name: the first
    found = list_found(listing, cfg, lambda c: [(SUB, "rg-a"), (SUB, "rg-b")])  # type: ignore[arg-type]
    assert found == {"Azlin-VM-1": Found("Azlin-VM-1", "rg-a", SUB),
                     "azlin-vm-2": Found("azlin-vm-2", "rg-b", SUB)}
    assert listing.asked == [(SUB, "rg-a"), (SUB, "rg-b")]


# --------------------------------------------------------------------------- the daemon's book
class Journal(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[tuple[str, str | None]]:
        return [(r.EVENT, getattr(r, "VM_NAME", None)) for r in self.records  # type: ignore[attr-defined]
                if hasattr(r, "EVENT")]


@pytest.fixture
def journal() -> Journal:
    handler = Journal()
    logger = logging.getLogger("azlin_lifecycle")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler  # type: ignore[misc]
    logger.removeHandler(handler)


def gone(vm: str) -> HealthStatus:
    return HealthStatus(vm_name=vm, state=VMState.NOT_FOUND, ssh_reachable=False,
                        ssh_failures=0, healthy=False, reason="The Resource ... was not found")


def test_discovery_journals_each_vm_once_as_it_comes_and_goes(journal: Journal) -> None:
    cfg = config(FILE)
    book = Discovery()
    assert book.due(cfg, 0.0) and not book.due(cfg, 0.0)  # one listing at a time
    assert book.listed(cfg, dict(FOUND), started=0.0)
    assert journal.events() == [("vm_discovered", "azlin-vm-1")]  # WEB, old: their tables
    assert not book.due(cfg, 29.0) and book.due(cfg, 30.0)  # the discovery's interval
    assert not book.listed(cfg, dict(FOUND), started=30.0)  # nothing new, nothing said
    assert not book.listed(cfg, AzureOperationError("throttled", "TooManyRequests"), 60.0)
    assert not book.listed(cfg, AzureOperationError("throttled", "TooManyRequests"), 90.0)
    assert book.found == FOUND and book.error == "throttled"  # kept while listing fails
    new = {**FOUND, "azlin-vm-2": Found("azlin-vm-2", "rg-a", SUB)}
    del new["azlin-vm-1"]
    assert book.listed(cfg, new, started=120.0)
    assert journal.events()[1:] == [("vm_discovered", "azlin-vm-2"), ("vm_gone", "azlin-vm-1")]
    assert book.vanished(cfg, gone("azlin-vm-2")) and not book.vanished(cfg, gone("azlin-vm-2"))
    assert not book.vanished(cfg, gone("db"))  # a [vms.X] VM: its checks say so, as before
    assert journal.events()[3:] == [("vm_gone", "azlin-vm-2")]
    assert sorted(merged(cfg, book.found).enabled_vms()) == ["WEB", "db"]
    fact = book.fact(cfg)
    assert fact["sources"] == {"WEB": "override", "old": "override", "db": "config"}
    assert fact["error"] is None and fact["listed_at"]


def test_turning_discovery_off_forgets_what_it_found(journal: Journal) -> None:
    cfg = config(FILE)
    book = Discovery()
    book.listed(cfg, dict(FOUND), started=0.0)
    off = dataclasses.replace(cfg, discovery=None)
    book.retune(cfg, off)
    assert book.found == {} and not book.due(off, 1000.0)
    assert [e for e, _ in journal.events()] == ["vm_discovered"]  # no vm_gone: not gone


# --------------------------------------------------------------------------- where it looks
def azlin(group: str | None = None, context_group: str | None = None) -> AzlinSettings:
    ctx = None if context_group is None else AzlinContext(
        name="prod", path=Path("/c/prod.toml"), subscription_id=SUB,
        resource_group=context_group)
    return AzlinSettings(default_resource_group=group, context=ctx,
                         config_path=Path("/c/config.toml"))


def test_its_groups_come_from_itself_else_as_a_vms_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))  # no Azure CLI default
    own = config(f'[discovery]\nresource_groups = ["rg-a", "rg-b"]\nsubscription_id = "{SUB}"\n')
    scopes = discovery_scopes(own, azlin("rg-x"), None)
    assert [(s.resource_group, s.resource_group_from) for s in scopes] == [
        ("rg-a", "[discovery] resource_groups"), ("rg-b", "[discovery] resource_groups")]
    assert scopes[0].subscription_from == "[discovery]"
    bare = config("[discovery]\n")
    (ctx,) = discovery_scopes(bare, azlin("rg-x", context_group="rg-ctx"), None)
    assert (ctx.resource_group, ctx.subscription_id) == ("rg-ctx", SUB)
    assert ctx.resource_group_from.startswith("azlin context prod")
    (dflt,) = discovery_scopes(bare, azlin("rg-x"), SUB)
    assert dflt.resource_group == "rg-x" and "default_resource_group" in dflt.resource_group_from
    with pytest.raises(LifecycleConfigError, match="no resource group"):
        discovery_scopes(bare, azlin(), SUB)
    with pytest.raises(LifecycleConfigError, match="no Azure subscription"):
        discovery_scopes(bare, azlin("rg-x"), None)
    assert discovery_scopes(config(""), azlin(), None) == []


def test_monitoring_config_of_a_found_vm_is_the_discoverys_where_found() -> None:
    cfg = config('[discovery]\nssh_failure_threshold = 5\n')
    vm = merged(cfg, {"v": Found("v", "rg-a", SUB)}).vms["v"]
    assert vm == MonitoringConfig(ssh_failure_threshold=5, resource_group="rg-a",
                                  subscription_id=SUB)


def test_the_readmes_configuration_block_loads_with_its_discovery_table() -> None:
    import re

    readme = Path(__file__).resolve().parents[2] / "README.md"
    (block,) = [b for b in re.findall(r"^```toml\n(.*?)^```$", readme.read_text(),
                                      flags=re.S | re.M) if "[discovery]" in b]
    shown = parse_toml(block, "README.md").discovery
    assert shown is not None and shown.resource_groups == ("my-rg",)
    assert shown.tags == ("azlin-session",) and shown.monitoring.restart_policy.value == \
        "on-failure"


def test_a_restarted_daemon_resumes_what_the_last_one_found(journal: Journal) -> None:
    cfg = config(FILE)
    first = Discovery()
    first.listed(cfg, dict(FOUND), started=0.0)
    facts = {"discovery": first.fact(cfg)}
    book = Discovery.resumed(cfg, facts)
    assert book.found == FOUND and book.listed_at == first.listed_at
    assert book.poll(cfg, 0.0, Listing({}), lambda *a: None)  # type: ignore[arg-type]
    later = {n: f for n, f in FOUND.items() if n != "azlin-vm-1"}
    assert book.listed(cfg, later, started=0.0)  # deleted while no daemon ran: one vm_gone
    assert journal.events() == [("vm_discovered", "azlin-vm-1"), ("vm_gone", "azlin-vm-1")]
    assert Discovery.resumed(dataclasses.replace(cfg, discovery=None), facts).found == {}
    assert Discovery.resumed(cfg, {"discovery": {"found": "junk"}}).found == {}
    garbled = Discovery.resumed(cfg, {"discovery": {"found": {"v": ["rg", SUB]},
                                                    "listed_at": "yesterday"}})
    assert garbled.found == {"v": Found("v", "rg", SUB)} and garbled.listed_at is None


def test_a_listing_that_ends_after_discovery_was_turned_off_is_dropped(journal: Journal) -> None:
    cfg = config(FILE)
    book = Discovery()
    assert book.due(cfg, 0.0)
    off = dataclasses.replace(cfg, discovery=None)
    book.retune(cfg, off)
    assert not book.listed(off, dict(FOUND), started=0.0)
    assert book.found == {} and journal.events() == [] and not book.listing
