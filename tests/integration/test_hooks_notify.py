"""Notification-URL hooks through apprise's real plugins to stand-ins of ntfy and Gotify
on 127.0.0.1 (tests/support/notify_services.py): delivery, failures, a hang, redaction,
`hook test`, and bad input that leaves the config file as it was."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.config import HookSettings, HookType
from azlin_lifecycle.errors import LifecycleConfigError
from azlin_lifecycle.hooks import HookExecutor
from tests.support.notify_services import GotifyApi, NtfyApi, Service, serving

NTFY_TOKEN = "tk_ntfysecret0000000000000000"
GOTIFY_TOKEN = "AgotifySecret42"
SECRETS = (NTFY_TOKEN, GOTIFY_TOKEN)
CONTEXT = {"state": "stopped", "previous_state": "running", "reason": "SSH failed 3 times",
           "failure_count": 3, "incident_id": "inc-7", "vms": ["web-1", "web-2"]}


class Collected(logging.Handler):
    """Every record that reaches the root logger's handlers — the journal's way in."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in self.records)


@pytest.fixture
def root_log() -> Iterator[Collected]:
    """At DEBUG, as a daemon with log_level = "debug" logs."""
    root, handler = logging.getLogger(), Collected()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ntfy() -> Iterator[Service]:
    with serving(NtfyApi(), NTFY_TOKEN) as service:
        yield service


@pytest.fixture
def gotify() -> Iterator[Service]:
    with serving(GotifyApi(), GOTIFY_TOKEN) as service:
        yield service


def executor(url: str, **settings: Any) -> HookExecutor:
    return HookExecutor(lambda vm: {"on_failure": url}, HookSettings(**settings))


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), text


def test_ntfy_receives_the_title_and_a_readable_body(ntfy: Service) -> None:
    result = executor(ntfy.url("ops")).execute_hook(HookType.ON_FAILURE, "web-1", CONTEXT)
    assert (result.success, result.kind, result.error) == (True, "notify", None), result
    [got] = ntfy.received
    assert got.headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
    assert got.body["topic"] == "ops"
    assert got.body["title"] == "azlin-lifecycle: web-1 on_failure"
    lines = got.body["message"].splitlines()
    assert lines[0].startswith("VM web-1: on_failure at 20")
    assert lines[1:] == ["state: stopped", "previous state: running",
                         "reason: SSH failed 3 times", "failure count: 3",
                         "incident id: inc-7", "vms: web-1, web-2"]


def test_gotify_receives_it_with_its_application_token(gotify: Service) -> None:
    result = executor(gotify.url()).execute_hook(HookType.ON_FAILURE, "db-2", {"state": "x"})
    assert result.success, result
    [got] = gotify.received
    assert got.path == "/message" and got.headers["X-Gotify-Key"] == GOTIFY_TOKEN
    assert got.body["title"] == "azlin-lifecycle: db-2 on_failure"
    assert "VM db-2: on_failure" in got.body["message"] and "state: x" in got.body["message"]


@pytest.mark.parametrize("status", [401, 500])
def test_a_refusing_service_fails_with_a_redacted_error(
    ntfy: Service, gotify: Service, status: int, root_log: Collected
) -> None:
    for service in (ntfy, gotify):
        if status == 500:
            service.set_mode("error")
            url = service.url()
        else:
            url = service.url(token="WrongToken99")
        result = executor(url, webhook_retries=1).execute_hook(
            HookType.ON_FAILURE, "web-1", CONTEXT)
        assert not result.success and result.kind == "notify"
        assert result.http_status == status
        assert f"answered HTTP {status}" in str(result.error)
        assert "127.0.0.1" in str(result.error) and "/…" in str(result.error)
        tries = 2 if status == 500 else 1  # a 5xx is retried, a 401 is final
        assert (f"after {tries} attempts" in str(result.error)) == (tries > 1)
        assert service.received == []
        assert_no_secret(result.error, root_log.text)
        assert "WrongToken99" not in str(result.error) + root_log.text
    # apprise's and urllib3's records (topics, headers, request paths) never reach ours
    assert not [r for r in root_log.records if r.name.startswith(("apprise", "urllib3"))]
    assert [r.name for r in root_log.records] == ["azlin_lifecycle.hooks"] * 2


def warm_up() -> None:
    """Load apprise and its plugins as the daemon's config check has before any send."""
    from azlin_lifecycle.adapters.notify import schemes

    assert "ntfy" in schemes()


def test_a_hanging_service_times_out_within_the_budget(ntfy: Service) -> None:
    warm_up()
    ntfy.set_mode("hang")
    started = time.monotonic()
    result = executor(ntfy.url(), webhook_timeout_seconds=1.0).execute_hook(
        HookType.ON_FAILURE, "web-1", CONTEXT)
    took = time.monotonic() - started
    assert result.timed_out and not result.success
    assert took < 1.6, took
    assert "timed out: no answer within 1s" in str(result.error)
    assert_no_secret(result.error)


def test_the_hook_timeout_caps_the_budget(ntfy: Service) -> None:
    warm_up()
    ntfy.set_mode("hang")
    started = time.monotonic()
    result = executor(ntfy.url(), webhook_timeout_seconds=30.0,
                      timeout_seconds=0.5).execute_hook(HookType.ON_FAILURE, "web-1", CONTEXT)
    assert result.timed_out and time.monotonic() - started < 1.1


def test_a_service_that_is_not_listening(ntfy: Service) -> None:
    url = ntfy.url().replace(f":{ntfy.port}/", ":9/")  # the discard port: nobody listens
    result = executor(url, webhook_retries=0).execute_hook(HookType.ON_FAILURE, "web-1", {})
    assert not result.success and "could not connect" in str(result.error)


def test_the_journal_names_the_target_without_its_secret(
    gotify: Service, root_log: Collected
) -> None:
    executor(gotify.url()).execute_hook(HookType.ON_FAILURE, "web-1", CONTEXT)
    [record] = root_log.records
    assert record.__dict__["HOOK_TARGET"] == f"gotify://127.0.0.1:{gotify.port}/…"
    assert gotify.received and "AgotifySecret42" in gotify.url()
    assert_no_secret(root_log.text)


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def runner() -> CliRunner:
    r = CliRunner()
    assert r.invoke(cli, ["enable", "web-1"]).exit_code == 0
    return r


def test_hook_test_sends_a_real_message(runner: CliRunner, ntfy: Service) -> None:
    said = runner.invoke(cli, ["hook", "set", "web-1", "on_failure", ntfy.url("alerts")])
    assert said.exit_code == 0, said.output
    assert said.output == f"web-1: on_failure -> ntfy://127.0.0.1:{ntfy.port}/…\n"
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_failure"])
    assert result.exit_code == 0, result.output
    assert "success    yes" in result.output and "status     sent" in result.output
    [got] = ntfy.received
    assert got.body["title"] == "azlin-lifecycle: web-1 on_failure"
    assert "reason: test from azlin lifecycle hook test" in got.body["message"]
    as_json = runner.invoke(cli, ["hook", "test", "web-1", "on_failure", "--json"]).output
    assert json.loads(as_json)["target"] == f"ntfy://127.0.0.1:{ntfy.port}/…"
    shown = runner.invoke(cli, ["show", "web-1"]).output
    shown_json = json.loads(runner.invoke(cli, ["show", "web-1", "--json"]).output)
    listed = runner.invoke(cli, ["list", "--json"]).output
    assert shown_json["hooks"] == {"on_failure": f"ntfy://127.0.0.1:{ntfy.port}/…"}
    assert_no_secret(said.output, result.output, as_json, shown, shown_json, listed)


def test_hook_test_of_a_refusing_service_exits_1(runner: CliRunner, gotify: Service) -> None:
    runner.invoke(cli, ["hook", "set", "web-1", "on_failure", gotify.url(token="Nope123")])
    result = runner.invoke(cli, ["hook", "test", "web-1", "on_failure"])
    assert result.exit_code == 1 and "status     HTTP 401" in result.output
    assert str(result.exception) == (
        f"web-1 on_failure hook failed: notification gotify://127.0.0.1:{gotify.port}/… "
        "failed: the service answered HTTP 401")
    assert "Nope123" not in result.output + str(result.exception)


BAD = [
    ("foo://host/token", "foo://…", "apprise has no service with the scheme foo://"),
    ("ntfy://[::1/topic", "ntfy://…", "it cannot be parsed as a URL"),
    ("gotify://gotify.example.com", "gotify://gotify.example.com",
     "apprise cannot use it: a part gotify:// needs (a token, key, user or host) is "
     "missing or malformed"),
]


@pytest.mark.parametrize(("url", "shown", "why"), BAD)
def test_bad_notification_urls_are_refused_and_nothing_is_written(
    runner: CliRunner, isolated_dirs: Path, url: str, shown: str, why: str
) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    before = config.read_bytes()
    for args in (["hook", "set", "web-1", "on_failure", url],
                 ["enable", "web-1", "--hook", f"on_failure={url}"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, LifecycleConfigError)
        message = str(result.exception)
        assert "\n" not in message
        assert "[vms.web-1.hooks]: on_failure = " in message
        assert f'on_failure = "{shown}" is not allowed: {why}' in message
        assert "an https:// URL (a JSON webhook) or a notification URL such as slack://" in message
        assert config.read_bytes() == before


def test_a_bad_url_in_the_file_is_named_by_config_validate(
    runner: CliRunner, isolated_dirs: Path
) -> None:
    config = isolated_dirs / "lifecycle-config.toml"
    config.write_text(config.read_text() + '\n[vms.web-1.hooks]\non_failure = "slack://"\n')
    before = config.read_bytes()
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code != 0
    assert (f'{config} [vms.web-1.hooks]: on_failure = "slack://" is not allowed: apprise '
            "cannot use it") in str(result.exception) + result.output
    assert runner.invoke(cli, ["enable", "web-2"]).exit_code == 1  # the file is not rewritten
    assert config.read_bytes() == before


def test_validating_a_bad_url_logs_nothing_of_it(root_log: Collected) -> None:
    """apprise warns with the token it could not use; none of that reaches our log."""
    from azlin_lifecycle.config.schema import check_hooks

    with pytest.raises(LifecycleConfigError) as info:
        check_hooks({"on_failure": "slack://T1SECRETA/B2SECRETB"}, "f.toml", "vms.a.hooks")
    assert 'on_failure = "slack://…" is not allowed: apprise cannot use it' in str(info.value)
    assert "SECRET" not in str(info.value) + root_log.text
    assert not [r for r in root_log.records if r.name.startswith("apprise")]
