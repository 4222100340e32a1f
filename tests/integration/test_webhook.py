"""Webhooks against a real HTTPS receiver on 127.0.0.1 with a trustme CA."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from azlin_lifecycle.adapters.webhook import post_json
from azlin_lifecycle.config import HookSettings, HookType
from azlin_lifecycle.hooks import HookExecutor


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, delay); records what it got."""

    url: str
    ca_file: str
    replies: list[tuple[int, float]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    redirect_to: str = ""

    def script(self, *replies: tuple[int, float]) -> None:
        self.replies[:] = list(replies)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(body)})
            status, delay = receiver.replies.pop(0) if receiver.replies else (200, 0.0)
            if delay:
                receiver.release.wait(delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.redirect_to)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


@pytest.fixture
def receiver(ca: tuple[trustme.CA, str]) -> Iterator[Receiver]:
    authority, ca_file = ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    box: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_proxy(box))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    rec = Receiver(url=f"https://127.0.0.1:{server.server_address[1]}/hook", ca_file=ca_file)
    box.append(rec)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _handler_proxy(box: list[Receiver]) -> Any:
    def make(*args: Any, **kwargs: Any) -> BaseHTTPRequestHandler:
        return _handler(box[0])(*args, **kwargs)
    return make


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_success_sends_json_with_user_agent(receiver: Receiver) -> None:
    result = post_json(receiver.url, {"vm_name": "web-1", "n": 3}, timeout=5, retries=2,
                       ca_bundle=receiver.ca_file)
    assert (result.success, result.status, result.attempts, result.error) == (True, 200, 1, None)
    [request] = receiver.requests
    assert request["body"] == {"vm_name": "web-1", "n": 3}
    assert request["headers"]["User-Agent"] == "azlin-lifecycle"
    assert request["headers"]["Content-Type"] == "application/json"


def test_500_is_retried_until_success(receiver: Receiver) -> None:
    receiver.script((500, 0), (503, 0), (204, 0))
    result = post_json(receiver.url, {}, timeout=5, retries=3, ca_bundle=receiver.ca_file)
    assert (result.success, result.status, result.attempts) == (True, 204, 3)


def test_500_every_time_fails_after_bounded_retries(receiver: Receiver) -> None:
    receiver.script(*[(500, 0)] * 10)
    started = time.monotonic()
    result = post_json(receiver.url, {}, timeout=5, retries=2, ca_bundle=receiver.ca_file)
    assert time.monotonic() - started < 3
    assert (result.success, result.status, result.attempts) == (False, 500, 3)
    assert result.error is not None and "HTTP 500" in result.error
    assert len(receiver.requests) == 3


def test_429_is_retried_404_is_not(receiver: Receiver) -> None:
    receiver.script((429, 0), (200, 0))
    assert post_json(receiver.url, {}, timeout=5, retries=1, ca_bundle=receiver.ca_file).success
    receiver.script((404, 0), (200, 0))
    result = post_json(receiver.url, {}, timeout=5, retries=3, ca_bundle=receiver.ca_file)
    assert (result.success, result.status, result.attempts) == (False, 404, 1)


def test_slow_receiver_times_out_within_the_budget(receiver: Receiver) -> None:
    receiver.script(*[(200, 30)] * 5)
    started = time.monotonic()
    result = post_json(receiver.url, {}, timeout=0.5, retries=3, ca_bundle=receiver.ca_file)
    took = time.monotonic() - started
    assert not result.success and result.status is None
    assert result.error == "timed out waiting for the server"
    assert took < 1.5, f"took {took:.2f}s for a 0.5s budget"


def test_non_https_urls_are_refused(receiver: Receiver) -> None:
    plain = receiver.url.replace("https://", "http://")
    result = post_json(plain, {}, timeout=2, retries=3)
    assert (result.success, result.attempts) == (False, 0)
    assert result.error is not None and "only https:// URLs are allowed" in result.error
    assert receiver.requests == []


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.redirect_to = receiver.url.replace("https://", "http://")
    receiver.script((302, 0))
    result = post_json(receiver.url, {}, timeout=3, retries=2, ca_bundle=receiver.ca_file)
    assert (result.success, result.status, result.attempts) == (False, 302, 1)
    assert result.error is not None and "redirects are not followed" in result.error
    assert len(receiver.requests) == 1


def test_untrusted_certificate_fails_without_retry(receiver: Receiver,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    result = post_json(receiver.url, {}, timeout=3, retries=3)
    assert (result.success, result.attempts) == (False, 1)
    assert result.error is not None and "TLS certificate not trusted" in result.error
    assert receiver.requests == []


def test_connection_refused_is_retried_then_reported() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = post_json(f"https://127.0.0.1:{port}/", {}, timeout=2, retries=2)
    assert (result.success, result.attempts, result.error) == (False, 3, "connection refused")


def executor_for(url: str, **settings: Any) -> HookExecutor:
    return HookExecutor(lambda vm: {"on_failure": url} if vm == "web-1" else {},
                        HookSettings(**settings))


def test_executor_posts_the_event_fields(receiver: Receiver,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", receiver.ca_file)
    result = executor_for(receiver.url).execute_hook(
        HookType.ON_FAILURE, "web-1", {"FAILURE_COUNT": 3, "reason": "SSH lost", "gone": None})
    assert result.success and result.kind == "webhook" and result.http_status == 200
    body = receiver.requests[0]["body"]
    assert body["vm_name"] == "web-1" and body["event_type"] == "on_failure"
    assert (body["failure_count"], body["reason"], body["gone"]) == (3, "SSH lost", None)
    assert body["timestamp"].endswith("Z")


def test_executor_reports_a_failing_webhook(receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", receiver.ca_file)
    receiver.script(*[(500, 0)] * 5)
    result = executor_for(receiver.url + "?token=secret", webhook_retries=1).execute_hook(
        "on_failure", "web-1", {})
    assert not result.success and result.http_status == 500 and not result.skipped
    assert result.error is not None
    assert "failed after 2 attempts: HTTP 500" in result.error and "secret" not in result.error


def test_executor_webhook_timeout_from_settings(receiver: Receiver,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", receiver.ca_file)
    receiver.script(*[(200, 30)] * 5)
    started = time.monotonic()
    result = executor_for(receiver.url, webhook_timeout_seconds=0.4).execute_hook(
        "on_failure", "web-1", {})
    assert not result.success and "timed out" in (result.error or "")
    assert time.monotonic() - started < 1.5


def test_ca_bundle_path_is_used(receiver: Receiver, tmp_path: Path) -> None:
    assert post_json(receiver.url, {}, timeout=3, retries=0, ca_bundle=receiver.ca_file).success
    bad = post_json(receiver.url, {}, timeout=3, retries=0, ca_bundle=str(tmp_path / "none"))
    assert not bad.success and "cannot load CA bundle" in (bad.error or "")
