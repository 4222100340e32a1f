"""Rendering the unit template (pure logic: no user manager needed)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from azlin_lifecycle import install
from azlin_lifecycle.adapters.journal import format_entry
from azlin_lifecycle.errors import ControllerError

TEMPLATE = Path(__file__).resolve().parents[2] / "units" / "azlin-lifecycle.service"


def directives(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if "=" in line and not line.startswith("#"))


def test_template_is_a_notify_unit_with_watchdog_and_restart() -> None:
    d = directives(TEMPLATE.read_text())
    assert d["Type"] == "notify" and d["NotifyAccess"] == "main"
    assert d["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert d["WatchdogSec"] == "30" and d["Restart"] == "on-failure"
    assert d["RestartSec"] == "5" and d["TimeoutStopSec"] == "20"
    assert {"StartLimitIntervalSec", "StartLimitBurst", "ProtectSystem", "ProtectHome"} <= set(d)
    assert install.template_text() == TEMPLATE.read_text()


def test_render_fills_every_placeholder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(tmp_path / "my cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "100%state"))
    text = install.render_unit()
    for placeholder in install.PLACEHOLDERS:
        assert placeholder not in text
    d = directives(text)
    assert d["ExecStart"] == f"{sys.executable} -m azlin_lifecycle daemon run"
    cfg, state = tmp_path / "my cfg", tmp_path / "100%%state" / "azlin-lifecycle"
    assert d["ReadWritePaths"] == f'"-{cfg}" -{state}'
    assert d["Environment"] == f'"AZLIN_CONFIG_DIR={cfg}" XDG_STATE_HOME={tmp_path}/100%%state'


def test_render_without_overrides_has_no_environment_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZLIN_CONFIG_DIR")
    monkeypatch.delenv("XDG_STATE_HOME")
    text = install.render_unit("/opt/x/bin/azlin-lifecycle daemon run")
    assert "Environment=PYTHONUNBUFFERED=1" in text
    assert "AZLIN_CONFIG_DIR" not in text and "XDG_STATE_HOME" not in text
    home = Path.home()
    assert (f"ReadWritePaths=-{home}/.azlin -{home}/.local/state/azlin-lifecycle\n") in text


def test_a_template_without_placeholders_is_refused() -> None:
    with pytest.raises(ControllerError, match="lacks @EXEC_START@"):
        install.render_unit(template="[Service]\nExecStart=/bin/true\n@READ_WRITE_PATHS@"
                                     "@ENVIRONMENT@")


def test_format_entry_looks_like_journalctl_short() -> None:
    when = dt.datetime(2024, 3, 5, 14, 7, 9, tzinfo=dt.UTC)
    line = format_entry({"__REALTIME_TIMESTAMP": when, "_HOSTNAME": "box",
                         "SYSLOG_IDENTIFIER": "azlin-lifecycle", "_PID": 42, "MESSAGE": "hi"})
    assert line == f"{when.astimezone():%b %d %H:%M:%S} box azlin-lifecycle[42]: hi"
    assert format_entry({"_COMM": "systemd", "MESSAGE": b"\xffx"}).endswith("systemd: \ufffdx")


def test_an_installation_under_tmp_gets_a_shared_tmp(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """PrivateTmp=yes would hide an installation (or its config) that lives under /tmp."""
    from azlin_lifecycle.install import lives_in_tmp, render_unit

    assert lives_in_tmp(["/tmp/x/.venv/bin/python"]) and lives_in_tmp(["/var/tmp"])
    assert not lives_in_tmp(["/usr/bin/python3", "-m", "azlin_lifecycle", "/home/u/.azlin"])
    monkeypatch.setenv("AZLIN_CONFIG_DIR", "/home/someone/.azlin")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/someone/.local/state")
    template = install.template_text()
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    monkeypatch.setattr(install, "__file__", "/opt/venv/lib/azlin_lifecycle/install.py")
    assert "\nPrivateTmp=yes" in render_unit("/usr/bin/azlin-lifecycle daemon run", template)
    shared = render_unit("/tmp/ci/.venv/bin/python -m azlin_lifecycle daemon run", template)
    assert "\nPrivateTmp=no" in shared and "\nPrivateTmp=yes" not in shared
