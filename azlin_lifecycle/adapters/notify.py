"""Send a hook's message through a notification service named by an apprise URL.

``slack://…``, ``workflows://…`` (Microsoft Teams; apprise 2.3 dropped ``msteams://``
with Microsoft's retired connectors), ``ntfys://…``, ``mailtos://…``, ``pagerduty://…`` and the
other services apprise supports. apprise (and the requests stack under it) is imported
only here and only on first use — validating or sending such a URL — so a daemon whose
hooks are scripts and https:// webhooks never loads it.

Secrets never leave this module: :func:`redacted` shows a URL as its scheme and, when it
is a network host, its host; apprise's own log records (which carry topics, tokens and
request headers at DEBUG/WARNING) never propagate to our loggers, and the requests stack's
records from a sending thread are dropped. What a failed send reports is built from what
we know (timed out, the HTTP status apprise logged, a connection error), never from
apprise's text.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

EXAMPLES = "slack://, workflows:// (Microsoft Teams), ntfys://, mailtos://, pagerduty://"
DOCS = "https://github.com/caronc/apprise/wiki"
SENDER_THREAD = "notify-send"
BACKOFF_INITIAL = 0.25
BACKOFF_MAX = 2.0
MIN_ATTEMPT_SECONDS = 0.05
# Loggers of the stack under apprise: urllib3 logs a request's path (Mattermost's and
# Slack's secret) at DEBUG.
QUIET_UNDER = ("urllib3", "requests", "requests_oauthlib", "oauthlib", "markdown")
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
STATUS_RE = re.compile(r"\berror=(\d{3,5})\b")


@dataclass(frozen=True)
class Delivery:
    """What one :func:`send` did. ``error`` never carries a secret of the URL."""

    success: bool
    attempts: int
    timed_out: bool
    status: int | None
    error: str | None
    duration: float


# --------------------------------------------------------------------------- pure
def is_notification_url(target: str) -> bool:
    """A hook target that is neither a script (``/``, ``~``) nor our https:// webhook."""
    return "://" in target and not target.startswith(("https://", "/", "~"))


def _is_network_host(host: str) -> bool:
    """An IP address, localhost, or a dotted DNS name: not a token in the host's place
    (``slack://TOKEN_A/…``, ``pagerduty://KEY@KEY``, ``ntfys://TOPIC``)."""
    if host == "localhost" or _is_ip(host):
        return True
    labels = host.split(".")
    return (len(labels) >= 2 and all(HOST_LABEL_RE.fullmatch(label) for label in labels)
            and labels[-1].isalpha())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a name, not an address
        return False
    return True


def redacted(url: str) -> str:
    """A notification URL as it may be shown: ``scheme://host[:port]/…`` when the host
    is a network host, else ``scheme://…``. User, password, path, query and fragment
    are never shown: services put their tokens there."""
    scheme, sep, rest = url.partition("://")
    if not sep or not SCHEME_RE.fullmatch(scheme):
        return "(not a URL)"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    if not _is_network_host(host):
        return f"{scheme}://…" if rest else f"{scheme}://"
    shown = f"[{host}]" if ":" in host else host
    shown += f":{port}" if port else ""
    hidden = (parts.path not in ("", "/") or parts.query or parts.fragment
              or parts.username is not None)
    return f"{scheme}://{shown}{'/…' if hidden else ''}"


# --------------------------------------------------------------------------- apprise
class _Heard(logging.Handler):
    """Collects, per sending thread, the HTTP statuses and connection failures apprise
    logged — the numbers and the fact only, never the text."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self._lock_heard = threading.Lock()
        self._by_thread: dict[int, _Notes] = {}

    def listen(self, notes: _Notes) -> None:
        with self._lock_heard:
            self._by_thread[threading.get_ident()] = notes

    def forget(self) -> None:
        with self._lock_heard:
            self._by_thread.pop(threading.get_ident(), None)

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_heard:
            notes = self._by_thread.get(record.thread or 0)
        if notes is None:
            return
        try:
            text = record.getMessage()
        except Exception:  # a record apprise formats badly tells us nothing
            return
        found = STATUS_RE.search(text)
        if found:
            code = found.group(1)
            notes.status = int(code[:3])  # ntfy's 40101 is HTTP 401
        if "connection error" in text.lower():
            notes.connection_failed = True


@dataclass
class _Notes:
    status: int | None = None
    connection_failed: bool = False
    outcome: bool | None = None
    crashed: str | None = field(default=None)


_HEARD = _Heard()


def _not_from_a_sender(record: logging.LogRecord) -> bool:
    return not (record.threadName or "").startswith(SENDER_THREAD)


@cache
def _apprise() -> ModuleType:
    """apprise, imported once, with its logging kept to itself (see the module doc)."""
    own = logging.getLogger("apprise")  # before the import: it logs while importing
    own.propagate = False
    own.setLevel(logging.WARNING)  # its DEBUG records print headers and payloads
    own.addHandler(_HEARD)
    import apprise

    return apprise


def _quiet_the_stack_under_apprise() -> None:
    """Drop the sending threads' records of the loggers under apprise (requests and
    urllib3 are imported with the first plugin, so this looks again before each send;
    ``addFilter`` keeps one copy)."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.split(".")[0] in QUIET_UNDER and isinstance(logger, logging.Logger):
            logger.addFilter(_not_from_a_sender)


@cache
def schemes() -> frozenset[str]:
    """Every URL scheme apprise has a service for (``slack``, ``ntfys``, ``mailtos`` …)."""
    _apprise()
    plugins = importlib.import_module("apprise.manager_plugins")
    return frozenset(str(s).lower() for s in plugins.NotificationManager().schemas())


def _service(url: str) -> Any:
    """apprise's object for ``url``, or None when apprise cannot use it."""
    try:
        return _apprise().Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # apprise says "cannot" by returning None; be as quiet otherwise
        return None


def problem(url: str) -> str | None:
    """Why ``url`` is not a usable notification URL (never quoting it), or None."""
    scheme, sep, rest = url.partition("://")
    if not sep or not SCHEME_RE.fullmatch(scheme):
        return "it is not a URL (it needs a scheme such as ntfys:// in front)"
    if scheme.lower() not in schemes():
        return f"apprise has no service with the scheme {scheme}://"
    parse = importlib.import_module("apprise.utils.parse")
    if any(c.isspace() for c in url) or not parse.parse_url(url, verify_host=False):
        return "it cannot be parsed as a URL (check for spaces, brackets and the port)"
    if not rest.strip("/") or _service(url) is None:
        return (f"apprise cannot use it: a part {scheme}:// needs (a token, key, user or "
                "host) is missing or malformed")
    return None


def send(url: str, title: str, body: str, *, timeout: float, retries: int = 0) -> Delivery:
    """Send ``title`` and ``body`` to ``url``'s service within ``timeout`` seconds in all.

    A failed attempt is retried (up to ``retries`` times, with a short backoff) while the
    budget lasts, unless the service answered a 4xx other than 429 or did not answer in
    time. A service that hangs holds the caller ``timeout`` seconds at most: the send
    runs on its own thread, whose socket timeouts are the same budget.
    """
    started = time.monotonic()
    deadline = started + timeout
    service = _service(url)
    if service is None:
        return Delivery(False, 0, False, None, f"apprise cannot use {redacted(url)}; check "
                        f"it against {DOCS}", time.monotonic() - started)
    attempts, backoff = 0, BACKOFF_INITIAL
    while True:
        attempts += 1
        if attempts > 1:  # a fresh one: apprise would hold a retry for the plugin's own
            service = _service(url) or service  # request rate (ntfy's: 5 s) in its throttle
        notes = _attempt(service, title, body, deadline - time.monotonic())
        if notes.outcome:
            return Delivery(True, attempts, False, notes.status, None,
                            time.monotonic() - started)
        timed_out = notes.outcome is None and notes.crashed is None
        error = _explain(notes, timed_out, timeout)
        final = timed_out or (notes.status is not None and 400 <= notes.status < 500
                              and notes.status != 429)
        pause = min(backoff, deadline - time.monotonic() - MIN_ATTEMPT_SECONDS)
        if final or attempts > retries or pause < 0:
            return Delivery(False, attempts, timed_out, notes.status, error,
                            time.monotonic() - started)
        time.sleep(pause)
        backoff = min(backoff * 2, BACKOFF_MAX)


def _attempt(service: Any, title: str, body: str, budget: float) -> _Notes:
    budget = max(budget, MIN_ATTEMPT_SECONDS)
    service.socket_connect_timeout = budget
    service.socket_read_timeout = budget
    notes = _Notes()
    _quiet_the_stack_under_apprise()

    def run() -> None:
        _HEARD.listen(notes)
        try:
            notes.outcome = bool(service.notify(body=body, title=title))
        except Exception as exc:  # reported by its type only: its text may quote the URL
            notes.crashed = type(exc).__name__
            notes.outcome = False
        finally:
            _HEARD.forget()

    sender = threading.Thread(target=run, name=SENDER_THREAD, daemon=True)
    sender.start()
    sender.join(budget)
    if sender.is_alive():
        notes = _Notes()  # timed out: what the thread does from now on is not ours
    return notes


def _explain(notes: _Notes, timed_out: bool, timeout: float) -> str:
    if timed_out:
        return f"timed out: no answer within {timeout:g}s"
    if notes.crashed:
        return f"apprise failed ({notes.crashed})"
    if notes.status is not None:
        return f"the service answered HTTP {notes.status}"
    if notes.connection_failed:
        return "could not connect to the service"
    return "the service did not accept the message"
