"""The CLI through click's runner and as real subprocesses of the installed scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli

BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_runner_enable_list_show_json() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["enable", "web-1", "--policy", "on-failure", "--interval", "30",
                                 "--hook", "on_failure=/usr/local/bin/alert"])
    assert result.exit_code == 0, result.output
    assert "Monitoring web-1: every 30s, restart policy on-failure" in result.output
    listed = runner.invoke(cli, ["list", "--json"])
    data = json.loads(listed.output)
    assert data[0]["vm_name"] == "web-1" and data[0]["hooks"] == {"on_failure": "/usr/local/bin/alert"}
    table = runner.invoke(cli, ["list"]).output.splitlines()
    assert table[0].split() == ["VM", "SOURCE", "ENABLED", "INTERVAL", "POLICY", "THRESHOLD",
                                "DRY-RUN", "HOOKS"]
    assert table[1].split() == ["web-1", "config", "yes", "30s", "on-failure", "3", "no",
                                "on_failure"]
    assert data[0]["source"] == "config"
    shown = json.loads(runner.invoke(cli, ["show", "web-1", "--json"]).output)
    assert shown["check_interval_seconds"] == 30


def test_enable_keeps_existing_settings() -> None:
    runner = CliRunner()
    runner.invoke(cli, ["enable", "vm1", "--interval", "45", "--ssh-port", "2200"])
    runner.invoke(cli, ["disable", "vm1"])
    runner.invoke(cli, ["enable", "vm1", "--policy", "always"])
    shown = json.loads(runner.invoke(cli, ["show", "vm1", "--json"]).output)
    assert (shown["check_interval_seconds"], shown["ssh_port"], shown["restart_policy"]) == (
        45, 2200, "always")


def test_hook_set_clear_and_config_commands(isolated_dirs: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["enable", "vm1"])
    assert runner.invoke(cli, ["hook", "set", "vm1", "on_healthy", "https://h.test/x"]).exit_code == 0
    shown = json.loads(runner.invoke(cli, ["show", "vm1", "--json"]).output)
    assert shown["hooks"] == {"on_healthy": "https://h.test/…"}  # its path may be a secret
    assert runner.invoke(cli, ["hook", "clear", "vm1", "on_healthy"]).exit_code == 0
    path = runner.invoke(cli, ["config", "path"]).output.strip()
    assert path == str(isolated_dirs / "lifecycle-config.toml")
    ok = runner.invoke(cli, ["config", "validate"])
    assert ok.exit_code == 0 and "valid (1 VMs, 1 enabled)" in ok.output


def test_errors_are_one_line_exit_1_and_usage_errors_exit_2(isolated_dirs: Path) -> None:
    bad = run(str(BIN / "azlin-lifecycle"), "enable", "vm1", "--interval", "3")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "azlin-lifecycle: error: command line [vms.vm1]: check_interval_seconds = 3 is not "
        "allowed: expected an integer from 10 to 86400")
    usage = run(str(BIN / "azlin-lifecycle"), "enable")
    assert usage.returncode == 2 and "Missing argument 'VM'" in usage.stderr
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    broken = isolated_dirs / "lifecycle-config.toml"
    broken.write_text("[vms.a\n")
    res = run(str(BIN / "azlin"), "lifecycle", "list")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"azlin lifecycle: error: {broken}: not valid TOML")
    assert "line 1" in res.stderr
    assert "Traceback" not in res.stderr
    debug = run(str(BIN / "azlin-lifecycle"), "--debug", "list")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert broken.read_text() == "[vms.a\n"
    other = tmp = isolated_dirs / "other.toml"
    tmp.write_text("[vms.x]\nssh_failure_threshold = 0\n")
    res = run(str(BIN / "azlin-lifecycle"), "config", "validate", str(other))
    assert res.returncode == 1 and "ssh_failure_threshold = 0 is not allowed" in res.stderr


def test_azlin_shim_runs_lifecycle_and_hands_the_rest_to_azlin(tmp_path: Path) -> None:
    res = run(str(BIN / "azlin"), "lifecycle", "enable", "vm9")
    assert res.returncode == 0 and "Monitoring vm9" in res.stdout
    # No azlin on PATH: plain words, exit 127.
    only_us = {"PATH": str(BIN)}
    res = run(str(BIN / "azlin"), "list", env=only_us)
    assert res.returncode == 127 and "azlin is not installed" in res.stderr
    # A real azlin later on PATH receives the whole command line, unchanged.
    fake_home = tmp_path / "realbin"
    fake_home.mkdir()
    real = fake_home / "azlin"
    real.write_text("#!/bin/sh\necho \"real azlin got: $*\"\n")
    real.chmod(0o755)
    res = run(str(BIN / "azlin"), "list", "--rg", "x y", env={"PATH": f"{BIN}:{fake_home}"})
    assert res.returncode == 0 and res.stdout.strip() == "real azlin got: list --rg x y"


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["config", "path"]])
def test_fast_start(argv: list[str]) -> None:
    """The CLI must not import the Azure SDK, paramiko or GObject (bench/cli_startup.py times it)."""
    code = ("import sys, runpy; sys.argv=['azlin-lifecycle', *sys.argv[1:]];"
            "from azlin_lifecycle.cli.main import cli\n"
            "heavy=[m for m in sys.modules if m.split('.')[0] in ('azure','paramiko','gi')]\n"
            "assert not heavy, heavy")
    res = run(sys.executable, "-c", code, *argv)
    assert res.returncode == 0, res.stderr
    assert run(str(BIN / "azlin-lifecycle"), *argv).returncode == 0


def test_version_is_the_distributions_everywhere() -> None:
    """--version, ``__version__``, the man page and the ARM user agent all say
    pyproject.toml's version, read back from the installed distribution."""
    from importlib import metadata

    import azlin_lifecycle
    from azlin_lifecycle import manpage

    installed = metadata.version("azlin-lifecycle")
    res = run(str(BIN / "azlin-lifecycle"), "--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"azlin-lifecycle, version {installed}\n"
    assert CliRunner().invoke(cli, ["--version"]).output == res.stdout
    assert azlin_lifecycle.__version__ == installed
    assert f'"azlin-lifecycle {installed}"' in manpage.render().splitlines()[0]


def test_enable_help_and_show_follow_the_config_table() -> None:
    """Every VM setting is shown, and the help's defaults are the table's."""
    from azlin_lifecycle.config import MonitoringConfig, rules

    runner = CliRunner()
    runner.invoke(cli, ["enable", "vm1", "--hook", "on_failure=/usr/local/bin/alert"])
    shown = runner.invoke(cli, ["show", "vm1"]).output.splitlines()
    names = [line.split()[0] for line in shown if not line.startswith("hook ")]
    assert sorted(names) == sorted(["vm", *rules(MonitoringConfig)])
    assert "hook on_failure" in "\n".join(shown)
    default = MonitoringConfig()
    help_text = " ".join(runner.invoke(cli, ["enable", "--help"]).output.split())
    for phrase in (f"(at least 10; default {default.check_interval_seconds})",
                   f"(default {default.restart_policy.value})",
                   f"on-failure restarts (default {default.ssh_failure_threshold})",
                   f"SSH port (default {default.ssh_port})"):
        assert phrase in help_text, phrase


def test_show_says_which_group_and_subscription_are_in_force_and_where_they_come_from(
        isolated_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))  # no CLI default
    runner = CliRunner()
    assert runner.invoke(cli, ["enable", "vm1", "--bastion", "azlin-bastion-westus2"]).exit_code == 0
    shown = runner.invoke(cli, ["show", "vm1"]).output
    assert "bastion" in shown and "azlin-bastion-westus2" in shown
    assert "resource_group" in shown and "(none: VM 'vm1' has no Azure subscription" in shown
    (isolated_dirs / "contexts").mkdir(parents=True)
    (isolated_dirs / "contexts" / "prod.toml").write_text(
        'subscription_id = "11111111-2222-3333-4444-555555555555"\nresource_group = "rg-prod"\n')
    (isolated_dirs / "active-context").write_text("prod\n")
    lines = dict(line.split(None, 1) for line in
                 runner.invoke(cli, ["show", "vm1"]).output.splitlines() if " " in line)
    assert lines["resource_group"].startswith("rg-prod (from azlin context prod")
    assert lines["subscription_id"].startswith(
        "11111111-2222-3333-4444-555555555555 (from azlin context prod")
    runner.invoke(cli, ["enable", "vm1", "--resource-group", "rg-mine"])
    lines = dict(line.split(None, 1) for line in
                 runner.invoke(cli, ["show", "vm1"]).output.splitlines() if " " in line)
    assert lines["resource_group"] == "rg-mine"  # set for the VM: shown as it is


def test_a_webhooks_credential_is_never_printed(isolated_dirs: Path) -> None:
    """Slack- and Teams-style webhooks carry the credential in the path: show (text and
    --json), list --json and hook set print the host only; the config file keeps the URL
    whole."""
    secret = "XXXXsecretXXXX"
    url = f"https://hooks.slack.com/services/T0001/B0002/{secret}?token=t0k"
    runner = CliRunner()
    assert runner.invoke(cli, ["enable", "vm1", "--hook", f"on_failure={url}"]).exit_code == 0
    shown = runner.invoke(cli, ["show", "vm1"]).output
    assert "https://hooks.slack.com/…" in shown
    said = runner.invoke(cli, ["hook", "set", "vm1", "on_healthy", url]).output
    assert said == "vm1: on_healthy -> https://hooks.slack.com/…\n"
    as_json = json.loads(runner.invoke(cli, ["show", "vm1", "--json"]).output)
    assert as_json["hooks"]["on_failure"] == "https://hooks.slack.com/…"
    listed = runner.invoke(cli, ["list", "--json"]).output
    for text in (shown, said, json.dumps(as_json), listed):
        assert secret not in text and "t0k" not in text, text
    assert url in (isolated_dirs / "lifecycle-config.toml").read_text()
