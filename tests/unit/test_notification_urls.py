"""Notification-URL hook targets: how they are told apart, shown and put into words."""

from __future__ import annotations

import datetime as dt

import pytest

from azlin_lifecycle import hook_message
from azlin_lifecycle.adapters.notify import is_notification_url, redacted
from azlin_lifecycle.hook_targets import kind_of
from azlin_lifecycle.hook_targets import redacted as shown


@pytest.mark.parametrize(("target", "kind"), [
    ("/usr/local/bin/page-me", "script"), ("~/bin/x", "script"), ("/odd://path", "script"),
    ("https://hooks.slack.com/services/T/B/S", "webhook"),
    ("slack://TokenA/TokenB/TokenC", "notify"), ("ntfys://topic", "notify"),
    ("http://example.test/x", "notify"),  # refused by validation: no such apprise scheme
])
def test_kind_of_a_target(target: str, kind: str) -> None:
    assert kind_of(target) == kind
    assert is_notification_url(target) == (kind == "notify")


@pytest.mark.parametrize(("url", "seen"), [
    # a token where the host would be: scheme only
    ("slack://TokenA/TokenB/TokenC/#ops", "slack://…"),
    ("ntfys://my-secret-topic", "ntfys://…"),
    ("pagerduty://integrationkey@apikey", "pagerduty://…"),
    ("tgram://123456:ABCdef/12345", "tgram://…"),
    ("workflows://prod-01.westus.logic.azure.com:443/WORKFLOW/SIG", "workflows://prod-01.westus.logic.azure.com:443/…"),
    # a network host: shown, never the user, password, path, query or fragment
    ("mailtos://me:hunter2@gmail.com", "mailtos://gmail.com/…"),
    ("ntfy://127.0.0.1:8080/topic?token=tk_x", "ntfy://127.0.0.1:8080/…"),
    ("gotify://gotify.example.com/AppToken", "gotify://gotify.example.com/…"),
    ("mmost://[::1]:8065/hookkey", "mmost://[::1]:8065/…"),
    ("gotify://gotify.example.com", "gotify://gotify.example.com"),
    ("slack://", "slack://"),
])
def test_redaction_keeps_the_scheme_and_a_network_host_only(url: str, seen: str) -> None:
    assert redacted(url) == seen
    assert shown(url) == seen


def test_what_is_no_url_is_not_quoted() -> None:
    assert redacted("tok3n without a scheme") == "(not a URL)"
    assert redacted("1bad://x") == "(not a URL)"


def test_the_cli_and_the_journal_show_each_kind_its_way() -> None:
    assert shown("/usr/local/bin/page-me") == "/usr/local/bin/page-me"
    assert shown("https://user:pw@h.test/x?token=s") == "https://h.test/…"


def test_title_and_body_render_every_context_key() -> None:
    when = "2026-01-02T03:04:05Z"
    context = {"zeta": 1, "reason": "SSH lost\nagain", "state": "stopped",
               "incident_started": dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC),
               "repeat": 2, "vms": ("a", "b"), "healing": {"action": "restart", "ok": True},
               "note": None}
    assert hook_message.title("on_failure", "web-1") == "azlin-lifecycle: web-1 on_failure"
    assert hook_message.body("on_failure", "web-1", context, when).splitlines() == [
        "VM web-1: on_failure at 2026-01-02T03:04:05Z",
        "state: stopped",
        "reason: SSH lost again",
        "healing: action=restart, ok=yes",
        "incident started: 2026-01-02T03:00:00Z",
        "note: -",
        "repeat: 2",
        "vms: a, b",
        "zeta: 1",
    ]


def test_a_long_value_is_cut() -> None:
    body = hook_message.body("on_failure", "v", {"reason": "x" * 2000}, "t")
    assert body.splitlines()[1] == "reason: " + "x" * 500 + "…"
