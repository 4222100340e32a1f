"""Pure logic of azlin_lifecycle.hooks: environment, payload, names, lookup failures."""

from __future__ import annotations

import datetime as dt

import pytest

from azlin_lifecycle.config import HookType, RestartPolicy
from azlin_lifecycle.errors import HookExecutionError, LifecycleConfigError
from azlin_lifecycle.hooks import (
    HookExecutor,
    HookResult,
    _redact,
    build_environment,
    build_payload,
    env_name,
    hook_type_of,
    timestamp,
)

WHEN = "2025-01-31T12:00:00Z"


def test_env_names_are_upper_case_identifiers() -> None:
    assert env_name("failure_count") == "FAILURE_COUNT"
    assert env_name("restart-result") == "RESTART_RESULT"
    assert env_name("a.b c") == "A_B_C"


def test_environment_values_and_reserved_names() -> None:
    env = build_environment(
        HookType.ON_RESTART, "web-1",
        {"failure_count": 3, "reason": None, "policy": RestartPolicy.ALWAYS, "ok": True,
         "at": dt.datetime(2025, 1, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "event_type": "spoofed"},
        WHEN, base={"PATH": "/bin"},
    )
    assert env == {
        "PATH": "/bin", "FAILURE_COUNT": "3", "REASON": "", "POLICY": "always", "OK": "True",
        "AT": "2025-01-01T12:00:00Z", "EVENT_TYPE": "on_restart", "VM_NAME": "web-1",
        "TIMESTAMP": WHEN,
    }


def test_environment_inherits_the_daemons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_DAEMON", "yes")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/user/0/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    env = build_environment(HookType.ON_START, "v", {}, WHEN)
    assert env["FROM_DAEMON"] == "yes"
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env


def test_payload_lower_cases_keys_and_keeps_json_types() -> None:
    payload = build_payload(HookType.ON_FAILURE, "web-1",
                            {"FAILURE_COUNT": 3, "Reason": "x", "state": None,
                             "policy": RestartPolicy.NEVER, "vm_name": "spoofed"}, WHEN)
    assert payload == {"failure_count": 3, "reason": "x", "state": None, "policy": "never",
                       "vm_name": "web-1", "event_type": "on_failure", "timestamp": WHEN}


def test_timestamp_is_utc_iso8601() -> None:
    local = dt.datetime(2025, 6, 1, 2, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert timestamp(local) == "2025-06-01T07:30:05Z"


def test_hook_types() -> None:
    assert hook_type_of("on_healthy") is HookType.ON_HEALTHY
    with pytest.raises(HookExecutionError, match="unknown hook type 'x'"):
        hook_type_of("x")


def test_skipped_when_the_vm_has_no_such_hook() -> None:
    calls: list[str] = []

    def lookup(vm: str) -> dict[str, str]:
        calls.append(vm)
        return {"on_failure": "/x"}

    result = HookExecutor(lookup).execute_hook(HookType.ON_HEALTHY, "vm", {})
    assert calls == ["vm"]
    assert result == HookResult(HookType.ON_HEALTHY, "vm", None, True, None, "", "", 0.0, False,
                                True, None, "none")


def test_a_broken_lookup_is_a_failed_result_not_an_exception() -> None:
    def lookup(vm: str) -> dict[str, str]:
        raise LifecycleConfigError("config.toml: not valid TOML")

    result = HookExecutor(lookup).execute_hook("on_failure", "vm", {})
    assert not result.success and not result.skipped
    assert result.error == "cannot read hooks: config.toml: not valid TOML"


def test_webhook_urls_are_redacted_in_messages() -> None:
    assert _redact("https://h/x?token=s") == "https://h/…"
    assert _redact("https://h/x") == "https://h/…"
    assert _redact("https://h") == "https://h"
    assert _redact("https://h:8443/") == "https://h:8443"
    slack = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"
    assert _redact(slack) == "https://hooks.slack.com/…"
    assert _redact("https://user:pass@h/x") == "https://h/…"
    assert _redact("/home/me/bin/page-me") == "/home/me/bin/page-me"  # a script: its path


def test_duration_alias() -> None:
    result = HookResult(HookType.ON_STOP, "v", None, True, None, "", "", 1.5, False, True, None,
                        "none")
    assert result.duration == 1.5
