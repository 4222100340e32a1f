"""POST a JSON document to an https:// webhook, with a time budget and bounded retries.

stdlib only (urllib + ssl). Certificates are checked against the system CA store (which
honours ``SSL_CERT_FILE``) or ``ca_bundle``. Plain http and redirects are refused: a
redirected POST would silently lose its body, so the hook must name the final URL.
Connection errors, timeouts, 5xx and 429 are retried with a short exponential backoff
that never outlasts the ``timeout`` budget; other 4xx and TLS verification failures are
final. Failures land in the result; nothing is raised.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any
from urllib.parse import urlsplit

USER_AGENT = "azlin-lifecycle"
BACKOFF_INITIAL = 0.25
BACKOFF_MAX = 2.0
MIN_ATTEMPT_SECONDS = 0.05


@dataclass(frozen=True)
class WebhookResult:
    success: bool
    status: int | None
    attempts: int
    error: str | None
    duration: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None  # urllib then raises HTTPError with the 3xx status


def _opener(ca_bundle: str | None) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=ca_bundle)
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _NoRedirect()
    )


def _retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _describe(exc: BaseException) -> tuple[str, bool]:
    """(plain message, worth retrying?) for a failed attempt."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = reason.verify_message or str(reason)
        return (f"TLS certificate not trusted ({detail}); install the CA in the system store "
                "or set SSL_CERT_FILE", False)
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason}", True
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out waiting for the server", True
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host ({reason.strerror})", True
    if isinstance(reason, OSError):
        return f"connection failed: {reason.strerror or reason}", True
    return f"request failed: {reason}", True


def redacted(url: str) -> str:
    """A webhook URL as it may be shown: scheme and host only. Its user:password, path and
    query are dropped, since services put the credential there (Slack's and Teams'
    ``/services/T…/B…/SECRET`` path, a ``?token=`` query, ``user:pass@``)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float,
    retries: int,
    ca_bundle: str | None = None,
) -> WebhookResult:
    """POST ``payload`` as JSON to ``url``; 2xx is success."""
    started = time.monotonic()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return WebhookResult(False, None, 0, f"refused {redacted(url)}: only https:// URLs "
                             "are allowed", 0.0)
    body = json.dumps(payload, default=str).encode("utf-8")
    try:
        opener = _opener(ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        return WebhookResult(False, None, 0, f"cannot load CA bundle {ca_bundle}: {exc}",
                             time.monotonic() - started)
    deadline = started + timeout
    attempts = 0
    status: int | None = None
    error: str | None = None
    backoff = BACKOFF_INITIAL
    while True:
        remaining = deadline - time.monotonic()
        if attempts and remaining < MIN_ATTEMPT_SECONDS:
            break
        attempts += 1
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        retry = False
        try:
            with opener.open(request, timeout=max(remaining, MIN_ATTEMPT_SECONDS)) as response:
                status = int(response.status)
                response.read(65536)
            return WebhookResult(True, status, attempts, None, time.monotonic() - started)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if 300 <= exc.code < 400:
                where = exc.headers.get("Location", "elsewhere")
                error = (f"HTTP {exc.code}: redirected to {where}; redirects are not followed, "
                         "set the hook to the final https:// URL")
            else:
                error = f"HTTP {exc.code} {exc.reason}".rstrip()
                retry = _retryable_status(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            status = None
            error, retry = _describe(exc)
        if not retry or attempts > retries:
            break
        pause = min(backoff, deadline - time.monotonic() - MIN_ATTEMPT_SECONDS)
        if pause < 0:
            break
        time.sleep(pause)
        backoff = min(backoff * 2, BACKOFF_MAX)
    return WebhookResult(False, status, attempts, error, time.monotonic() - started)
