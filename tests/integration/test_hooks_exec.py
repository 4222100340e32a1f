"""HookExecutor running real scripts: environment, argv, failures, validation, logging."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle import HookExecutor as SpecHookExecutor
from azlin_lifecycle.config import HookSettings, HookType, MonitoringConfig
from azlin_lifecycle.errors import HookExecutionError
from azlin_lifecycle.hooks import HookExecutor, validate_hook_script
from azlin_lifecycle.manager import LifecycleManager


def script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def executor(hooks: dict[str, str], **settings: Any) -> HookExecutor:
    return HookExecutor(lambda vm: hooks if vm == "web-1" else {}, HookSettings(**settings))


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_environment_and_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "env.txt"
    hook = script(tmp_path, "on-failure.sh",
                  f'env > {out}\necho "argc=$# argv0=$0"\n')
    monkeypatch.setenv("DAEMON_MARKER", "kept")
    result = executor({"on_failure": str(hook)}).execute_hook(
        HookType.ON_FAILURE, "web-1",
        {"failure_count": 3, "reason": "SSH lost", "state": None, "restart-result": "ok",
         "VM_NAME": "spoofed"})
    assert result.success and result.exit_code == 0 and result.kind == "script"
    assert result.stdout == f"argc=0 argv0={hook}\n"
    env = read_env(out)
    assert env["VM_NAME"] == "web-1" and env["EVENT_TYPE"] == "on_failure"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env["TIMESTAMP"])
    assert (env["FAILURE_COUNT"], env["REASON"], env["STATE"]) == ("3", "SSH lost", "")
    assert env["RESTART_RESULT"] == "ok" and env["DAEMON_MARKER"] == "kept"


def test_spec_usage_reads_hooks_from_the_config_file(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    hook = script(tmp_path, "healthy", f'echo "$VM_NAME $STATE" > {out}\n')
    manager = LifecycleManager()
    manager.enable_monitoring("my-vm", MonitoringConfig(hooks={"on_healthy": str(hook)}))
    result = SpecHookExecutor().execute_hook_async("on_healthy", "my-vm", {"state": "running"})
    assert result.result(timeout=10).success
    assert out.read_text() == "my-vm running\n"
    assert SpecHookExecutor().execute_hook("on_failure", "my-vm", {}).skipped
    assert SpecHookExecutor().execute_hook("on_failure", "unknown-vm", {}).skipped


def test_no_hook_is_skipped_and_successful() -> None:
    result = executor({}).execute_hook("on_stop", "web-1", {})
    assert result.skipped and result.success and result.kind == "none" and result.target is None


def test_unknown_hook_type_is_misuse() -> None:
    with pytest.raises(HookExecutionError, match="unknown hook type 'on_reboot'; allowed: on_start"):
        executor({}).execute_hook("on_reboot", "web-1", {})
    with pytest.raises(HookExecutionError):
        executor({}).execute_hook_async("nope", "web-1", {})


def test_failing_hook_is_a_failed_result(tmp_path: Path) -> None:
    hook = script(tmp_path, "fail", "echo boom >&2\nexit 3\n")
    result = executor({"on_restart": str(hook)}).execute_hook("on_restart", "web-1", {})
    assert not result.success and result.exit_code == 3 and result.stderr == "boom\n"
    assert result.error == f"{hook} exited with status 3"


def test_missing_script_is_not_run_and_does_not_raise(tmp_path: Path) -> None:
    result = executor({"on_start": str(tmp_path / "gone.sh")}).execute_hook("on_start", "web-1", {})
    assert not result.success and result.exit_code is None and not result.skipped
    assert result.error is not None and "does not exist" in result.error


def test_unsafe_script_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hook = script(tmp_path, "unsafe", f"touch {marker}\n", mode=0o777)
    result = executor({"on_start": str(hook)}).execute_hook("on_start", "web-1", {})
    assert not result.success and "world-writable" in (result.error or "")
    assert not marker.exists()


def test_hanging_hook_times_out_per_settings(tmp_path: Path) -> None:
    hook = script(tmp_path, "hang", "trap '' TERM\nsleep 30\n")
    started = time.monotonic()
    result = executor({"on_failure": str(hook)}, timeout_seconds=0.3,
                      kill_grace_seconds=0.2).execute_hook("on_failure", "web-1", {})
    assert time.monotonic() - started < 2.5
    assert result.timed_out and not result.success and result.exit_code == -9
    assert "timed out after 0.3s" in (result.error or "")


def test_flooding_hook_is_capped(tmp_path: Path) -> None:
    hook = script(tmp_path, "flood", "head -c 10000000 /dev/zero | tr '\\0' y\n")
    result = executor({"on_failure": str(hook)}, max_output_bytes=2048).execute_hook(
        "on_failure", "web-1", {})
    assert result.success and result.truncated and result.stdout == "y" * 2048


def test_one_log_line_per_result(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = script(tmp_path, "good", "exit 0\n")
    bad = script(tmp_path, "bad", "exit 4\n")
    run = executor({"on_start": str(good), "on_stop": str(bad)})
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle.hooks"):
        run.execute_hook("on_start", "web-1", {})
        run.execute_hook("on_stop", "web-1", {})
    lines = [r for r in caplog.records if r.name == "azlin_lifecycle.hooks"]
    assert [r.levelname for r in lines] == ["INFO", "WARNING"]
    assert "on_start for web-1" in lines[0].getMessage()
    assert "exited with status 4" in lines[1].getMessage()


# ----------------------------------------------------------------------------- validation
def test_validation_accepts_a_safe_script_and_resolves_symlinks(tmp_path: Path) -> None:
    hook = script(tmp_path, "ok.sh", "exit 0\n", mode=0o700)
    link = tmp_path / "link.sh"
    link.symlink_to(hook)
    assert validate_hook_script(str(link)) == hook.resolve()
    assert HookExecutor(lambda vm: {}).validate_hook_script(hook) == hook.resolve()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", r"hook script \S+ does not exist; create it"),
        ("dangling", r"hook script \S+ does not exist"),
        ("directory", r"hook script \S+ is a directory; point the hook at an executable file"),
        ("fifo", r"hook script \S+ is not a regular file"),
        ("not_executable", r"hook script \S+ is not executable; fix with: chmod u\+x "),
        ("group_writable", r"is group-writable, so others could change .* chmod go-w "),
        ("world_writable", r"is world-writable, so others could change .* chmod go-w "),
        ("both_writable", r"is group- and world-writable"),
        ("wrong_owner", r"is owned by uid 65534, not by you \(uid \d+\) or root; .* chown "),
    ],
)
def test_validation_failures(tmp_path: Path, setup: str, message: str) -> None:
    target = tmp_path / "hook.sh"
    if setup == "dangling":
        target.symlink_to(tmp_path / "nowhere")
    elif setup == "directory":
        target.mkdir()
    elif setup == "fifo":
        os.mkfifo(target)
    elif setup != "missing":
        modes = {"not_executable": 0o644, "group_writable": 0o775, "world_writable": 0o757,
                 "both_writable": 0o777, "wrong_owner": 0o755}
        script(tmp_path, "hook.sh", "exit 0\n", mode=modes[setup])
        if setup == "wrong_owner":
            if os.geteuid() != 0:
                pytest.skip("chown to another user needs root")
            os.chown(target, 65534, 65534)
    with pytest.raises(HookExecutionError, match=message) as caught:
        validate_hook_script(target)
    assert "\n" not in str(caught.value) and str(target) in str(caught.value)


def test_validation_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    hook = script(tmp_path, "h.sh", "exit 0\n", mode=0o700)
    assert validate_hook_script("~/h.sh") == hook.resolve()
