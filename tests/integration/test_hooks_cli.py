"""`azlin lifecycle hook set/test` through click's CliRunner and the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.errors import HookExecutionError

from .test_webhook import Receiver, ca, no_proxy, receiver  # noqa: F401 (fixtures)

BIN = Path(sys.executable).parent


def script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


@pytest.fixture
def runner() -> CliRunner:
    r = CliRunner()
    assert r.invoke(cli, ["enable", "web-1"]).exit_code == 0
    return r


def test_hook_test_runs_with_sample_values(tmp_path: Path, runner: CliRunner) -> None:
    hook = script(tmp_path, "alert.sh",
                  'echo "vm=$VM_NAME event=$EVENT_TYPE n=$FAILURE_COUNT state=$STATE"\n'
                  'echo "reason=$REASON test=$HOOK_TEST" >&2\n')
    assert runner.invoke(cli, ["hook", "set", "web-1", "on_failure", str(hook)]).exit_code == 0
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_failure"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "success    yes" in out and "exit code  0" in out and "timed out  no" in out
    assert "vm=web-1 event=on_failure n=3 state=running" in out
    assert "reason=test from azlin lifecycle hook test test=1" in out
    data = json.loads(runner.invoke(cli, ["hook", "test", "web-1", "on_failure", "--json"]).output)
    assert data["success"] and data["exit_code"] == 0 and data["kind"] == "script"


def test_hook_test_of_a_failing_hook_exits_1(tmp_path: Path, runner: CliRunner) -> None:
    hook = script(tmp_path, "bad.sh", "echo oops >&2\nexit 3\n")
    runner.invoke(cli, ["hook", "set", "web-1", "on_restart", str(hook)])
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_restart"])
    assert result.exit_code == 1
    assert "success    no" in result.output and "exit code  3" in result.output
    assert "oops" in result.output
    assert isinstance(result.exception, HookExecutionError)
    assert str(result.exception) == f"web-1 on_restart hook failed: {hook} exited with status 3"


def test_hook_test_shortens_long_output(tmp_path: Path, runner: CliRunner) -> None:
    hook = script(tmp_path, "loud.sh", "head -c 200000 /dev/zero | tr '\\0' z\n")
    runner.invoke(cli, ["hook", "set", "web-1", "on_start", str(hook)])
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_start"])
    assert result.exit_code == 0
    assert "(truncated by the output cap)" in result.output
    assert "more characters not shown" in result.output
    assert len(result.output) < 5000


def test_hook_test_without_a_hook_says_how_to_set_one(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_stop"])
    assert result.exit_code == 1
    assert str(result.exception) == ("VM 'web-1' has no on_stop hook; set one with: "
                                     "azlin lifecycle hook set web-1 on_stop PATH_OR_URL")


def test_hook_set_checks_the_script(tmp_path: Path, runner: CliRunner) -> None:
    unsafe = script(tmp_path, "shared.sh", "exit 0\n", mode=0o777)
    result = runner.invoke(cli, ["hook", "set", "web-1", "on_failure", str(unsafe)])
    assert result.exit_code == 1 and "world-writable" in str(result.exception)
    assert "on_failure" not in runner.invoke(cli, ["show", "web-1"]).output
    later = str(tmp_path / "not-yet.sh")
    assert runner.invoke(cli, ["hook", "set", "web-1", "on_failure", later,
                               "--no-check"]).exit_code == 0
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_failure"])
    assert result.exit_code == 1 and "does not exist" in str(result.exception)


def test_hook_test_of_a_webhook(runner: CliRunner, receiver: Receiver,  # noqa: F811
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", receiver.ca_file)
    runner.invoke(cli, ["hook", "set", "web-1", "on_healthy", receiver.url])
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_healthy"])
    assert result.exit_code == 0, result.output
    assert "status     HTTP 200" in result.output
    body = receiver.requests[0]["body"]
    assert (body["vm_name"], body["event_type"], body["failure_count"]) == ("web-1", "on_healthy", 3)


def test_installed_command_prints_one_error_line(tmp_path: Path) -> None:
    env = {**os.environ}
    subprocess.run([str(BIN / "azlin-lifecycle"), "enable", "web-1"], env=env, check=True,
                   capture_output=True, timeout=60)
    hook = script(tmp_path, "bad.sh", "exit 5\n")
    subprocess.run([str(BIN / "azlin-lifecycle"), "hook", "set", "web-1", "on_start", str(hook)],
                   env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run([str(BIN / "azlin"), "lifecycle", "hook", "test", "web-1", "on_start"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "exit code  5" in done.stdout
    assert done.stderr.strip().splitlines() == [
        f"azlin lifecycle: error: web-1 on_start hook failed: {hook} exited with status 5"]
