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


def fake_az(directory: Path) -> Path:
    """An executable named ``az`` in ``directory`` (what shutil.which looks for)."""
    directory.mkdir(parents=True, exist_ok=True)
    az = directory / "az"
    az.write_text("#!/bin/sh\nexit 0\n")
    az.chmod(0o755)
    return az


def test_render_fills_every_placeholder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(tmp_path / "my cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "100%state"))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "az cfg"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    text = install.render_unit()
    for placeholder in install.PLACEHOLDERS:
        assert placeholder not in text
    d = directives(text)
    assert d["ExecStart"] == f"{sys.executable} -m azlin_lifecycle daemon run"
    cfg, state = tmp_path / "my cfg", tmp_path / "100%%state" / "azlin-lifecycle"
    azure = tmp_path / "az cfg"
    assert d["ReadWritePaths"] == f'"-{cfg}" -{state} "-{azure}"'
    assert d["Environment"] == (f'"AZLIN_CONFIG_DIR={cfg}" XDG_STATE_HOME={tmp_path}/100%%state '
                                f'"AZURE_CONFIG_DIR={azure}" PATH={install.SAFE_PATH}')


def test_render_without_overrides_passes_azure_config_dir_and_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AZLIN_CONFIG_DIR", "XDG_STATE_HOME", "AZURE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    text = install.render_unit("/opt/x/bin/azlin-lifecycle daemon run")
    assert "Environment=PYTHONUNBUFFERED=1" in text
    assert "AZLIN_CONFIG_DIR" not in text and "XDG_STATE_HOME" not in text
    home = Path.home()
    assert (f"ReadWritePaths=-{home}/.azlin -{home}/.local/state/azlin-lifecycle "
            f"-{home}/.azure\n") in text
    assert f"\nEnvironment=AZURE_CONFIG_DIR={home}/.azure PATH={install.SAFE_PATH}\n" in text


def test_path_puts_the_directory_of_the_az_found_at_install_first(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The directory where this shell finds az, before systemd's default PATH."""
    fake_az(tmp_path / "other")  # later on PATH: not the one the shell would run
    az = fake_az(tmp_path / "opt az" / "bin")
    (tmp_path / "first").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'first'}:{az.parent}:{tmp_path / 'other'}")
    assert install.az_dir() == az.parent
    env = directives(install.render_unit("/usr/bin/azlin-lifecycle daemon run"))["Environment"]
    assert env.endswith(f'"PATH={az.parent}:{install.SAFE_PATH}"'), env
    # az in a directory of the default PATH: that one first (the same az), not repeated.
    assert install.service_path(Path("/usr/bin")) == \
        "/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin"
    assert install.service_path(None) == install.SAFE_PATH


def test_az_not_found_at_install_gives_the_default_path_and_a_one_line_warning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    not_executable = tmp_path / "bin" / "az"
    not_executable.parent.mkdir()
    not_executable.write_text("not a program")  # mode 0644: which() skips it, as sh does
    monkeypatch.setenv("PATH", str(not_executable.parent))
    assert install.az_dir() is None
    env = directives(install.render_unit("/usr/bin/azlin-lifecycle daemon run"))["Environment"]
    assert env.endswith(f" PATH={install.SAFE_PATH}")
    assert "\n" not in install.AZ_NOT_FOUND
    assert "'az' is not on this shell's PATH" in install.AZ_NOT_FOUND
    assert "re-run 'azlin lifecycle install'" in install.AZ_NOT_FOUND


@pytest.fixture
def installed_outside_tmp(monkeypatch: pytest.MonkeyPatch) -> str:
    """An installation, its config, its state and the Azure CLI's dir all outside /tmp, az
    not on PATH; the unit template, read before the installation is moved there."""
    monkeypatch.setenv("AZLIN_CONFIG_DIR", "/home/someone/.azlin")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/someone/.local/state")
    monkeypatch.setenv("AZURE_CONFIG_DIR", "/home/someone/.azure")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    template = install.template_text()
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    monkeypatch.setattr(install, "__file__", "/opt/venv/lib/azlin_lifecycle/install.py")
    return template


def test_an_az_under_tmp_gets_a_shared_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           installed_outside_tmp: str) -> None:
    """A private /tmp would hide an az (the simulator's, say) that lives under /tmp."""
    template = installed_outside_tmp
    assert "\nPrivateTmp=yes" in install.render_unit("/usr/bin/azlin-lifecycle daemon run",
                                                     template)
    az = fake_az(tmp_path / "bin")
    assert str(az).startswith("/tmp/")
    monkeypatch.setenv("PATH", f"{az.parent}:/usr/bin:/bin")
    shared = install.render_unit("/usr/bin/azlin-lifecycle daemon run", template)
    assert "\nPrivateTmp=no" in shared and "\nPrivateTmp=yes" not in shared


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


def test_an_installation_under_tmp_gets_a_shared_tmp(installed_outside_tmp: str) -> None:
    """PrivateTmp=yes would hide an installation (or its config) that lives under /tmp."""
    from azlin_lifecycle.install import lives_in_tmp, render_unit

    assert lives_in_tmp(["/tmp/x/.venv/bin/python"]) and lives_in_tmp(["/var/tmp"])
    assert not lives_in_tmp(["/usr/bin/python3", "-m", "azlin_lifecycle", "/home/u/.azlin"])
    template = installed_outside_tmp
    assert "\nPrivateTmp=yes" in render_unit("/usr/bin/azlin-lifecycle daemon run", template)
    shared = render_unit("/tmp/ci/.venv/bin/python -m azlin_lifecycle daemon run", template)
    assert "\nPrivateTmp=no" in shared and "\nPrivateTmp=yes" not in shared


def test_a_metrics_textfile_opens_its_directory_for_the_service(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """[metrics] textfile: its directory (node_exporter's) is writable in the sandbox; a
    listen address needs nothing more than the unit has (AF_INET/AF_INET6)."""
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "az"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    plain = directives(install.render_unit("/usr/bin/azlin-lifecycle daemon run"))
    (tmp_path / "cfg").mkdir()
    config = tmp_path / "cfg" / "lifecycle-config.toml"
    config.write_text('[metrics]\nlisten = "127.0.0.1:9464"\n'
                      'textfile = "/var/lib/node-exporter/textfile/azlin.prom"\n')
    d = directives(install.render_unit("/usr/bin/azlin-lifecycle daemon run"))
    assert d["ReadWritePaths"] == plain["ReadWritePaths"] + " -/var/lib/node-exporter/textfile"
    assert d["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert "IPAddressDeny" not in d and "PrivateNetwork" not in d
    config.write_text("[metrics]\nlisten = 1\n")  # broken: the unit is rendered without it
    assert directives(install.render_unit("/usr/bin/x daemon run"))["ReadWritePaths"] == \
        plain["ReadWritePaths"]
