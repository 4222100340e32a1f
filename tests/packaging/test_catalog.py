"""The journal message catalog: one entry per MESSAGE_ID in events.py, parsed by journald's
own catalog compiler (``journalctl --update-catalog`` into a scratch root)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from azlin_lifecycle.events import Event

CATALOG = Path(__file__).resolve().parents[2] / "azlin_lifecycle" / "data" / \
    "azlin-lifecycle.catalog"
REQUIRED_HEADERS = ("Subject", "Defined-By", "Support")


def compile_catalog(root: Path, source: Path) -> subprocess.CompletedProcess[str]:
    target = root / "usr/lib/systemd/catalog"
    target.mkdir(parents=True)
    shutil.copy(source, target / source.name)
    return subprocess.run(["journalctl", f"--root={root}", "--update-catalog"],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("journalctl") is None:
        pytest.fail("journalctl is missing: apt-get install systemd (scripts/system-deps)")
    root = tmp_path_factory.mktemp("catalog-root")
    result = compile_catalog(root, CATALOG)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert (root / "var/lib/systemd/catalog/database").stat().st_size > 0
    return root


def listed_ids(root: Path) -> dict[str, str]:
    out = subprocess.run(["journalctl", f"--root={root}", "--list-catalog"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def entry(root: Path, message_id: str) -> tuple[dict[str, str], str]:
    """One compiled entry: its headers and its body text."""
    out = subprocess.run(["journalctl", f"--root={root}", "--dump-catalog", message_id],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == f"-- {message_id}", lines[:2]
    headers: dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].strip():
        key, _, value = lines[i].partition(": ")
        headers[key] = value
        i += 1
    return headers, "\n".join(lines[i:]).strip()


def test_every_message_id_has_exactly_one_entry(compiled: Path) -> None:
    ids = listed_ids(compiled)
    assert set(ids) == {e.message_id for e in Event}
    assert all(name.startswith("azlin-lifecycle: ") for name in ids.values())


@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.event_name)
def test_entry_has_headers_and_an_explanation(compiled: Path, event: Event) -> None:
    headers, body = entry(compiled, event.message_id)
    for name in REQUIRED_HEADERS:
        assert headers.get(name), f"{event.event_name}: no {name}: header"
    assert headers["Defined-By"] == "azlin-lifecycle"
    assert len(body.split()) >= 40, f"{event.event_name}: explanation too short: {body!r}"
    # Substituted fields must be ones the daemon always sets for this event.
    for field in re.findall(r"@([A-Z0-9_]+)@", headers["Subject"] + body):
        assert field in ALWAYS_SET[event], f"{event.event_name}: @{field}@ may be unset"


# The fields log_event always sets, per event (see the log_event calls in daemon.py and
# healing.py); check_failed is also logged without a VM (an Azure login problem).
_VM = {"VM_NAME"}
ALWAYS_SET: dict[Event, set[str]] = {
    Event.CHECK_OK: _VM, Event.CHECK_FAILED: set(), Event.VM_HEALTHY: _VM,
    Event.RESTART_REQUESTED: _VM, Event.RESTART_SUCCEEDED: _VM, Event.RESTART_FAILED: _VM,
    Event.RESTART_WOULD: _VM, Event.HEALING_HELD: _VM,
    Event.BREAKER_OPEN: {"FAILING", "RUNNING"}, Event.BREAKER_CLOSED: {"FAILING", "RUNNING"},
    Event.POWER_CHANGED: _VM | {"PREVIOUS_STATE", "POWER_STATE"}, Event.HOOK_RESULT: set(),
    Event.CONFIG_RELOADED: {"MONITORED"}, Event.CONFIG_RELOAD_FAILED: set(),
    Event.DAEMON_STARTED: {"MONITORED"}, Event.DAEMON_STOPPING: set(),
    Event.ESCALATION_REDEPLOY: _VM, Event.REPAIR_SETTLED: _VM | {"ACTION", "SENT"},
    Event.POSTMORTEM: _VM, Event.REPAIR_ACCEPTED: _VM,
    Event.VM_DISCOVERED: _VM | {"RESOURCE_GROUP"}, Event.VM_GONE: _VM | {"RESOURCE_GROUP"},
}


def test_unknown_or_missing_ids_are_caught(tmp_path: Path) -> None:
    """The check above can fail: a catalog with an extra entry and one missing."""
    text = CATALOG.read_text()
    first = Event.CHECK_OK.message_id
    broken = tmp_path / "broken.catalog"
    broken.write_text(text.replace(f"-- {first}", "-- 0123456789abcdef0123456789abcdef"))
    root = tmp_path / "root"
    assert compile_catalog(root, broken).returncode == 0
    ids = set(listed_ids(root))
    assert first not in ids and "0123456789abcdef0123456789abcdef" in ids
    assert ids != {e.message_id for e in Event}


def test_a_malformed_catalog_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.catalog"
    bad.write_text("Subject: text before any id\n")
    result = compile_catalog(tmp_path / "root", bad)
    assert result.returncode != 0
    assert "payload before ID" in result.stderr
