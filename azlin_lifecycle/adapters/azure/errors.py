"""What an ARM answer asks of a retry, how long one request may wait, and Azure's error
code and message in one line."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


BACKOFF_FIRST = 0.5


BACKOFF_MAX = 8.0


CONNECT_TIMEOUT_MAX = 10.0


def request_timeouts(left: float) -> dict[str, Any]:
    """One request's transport timeouts: none longer than the ``left`` seconds of its call."""
    return {"connection_timeout": min(left, CONNECT_TIMEOUT_MAX), "read_timeout": left}


def retry_after_seconds(headers: Mapping[str, str], now: dt.datetime | None = None) -> float | None:
    """The wait the server asks for (retry-after-ms, x-ms-retry-after-ms, Retry-After)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        with contextlib.suppress(KeyError, ValueError):
            return max(float(lowered[name]) / 1000.0, 0.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)  # seconds; else an HTTP date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def backoff_seconds(attempt: int) -> float:
    base: float = min(BACKOFF_FIRST * float(2 ** min(attempt, 16)), BACKOFF_MAX)
    return base + random.uniform(0, base / 4)


def error_code(exc: HttpResponseError) -> str | None:
    code = getattr(exc.error, "code", None) if exc.error is not None else None
    if code:
        return str(code)
    status = exc.status_code
    return None if status is None else f"HTTP{status}"


def error_message(exc: BaseException) -> str:
    """Azure's message in one line, without the SDK's multi-line decoration: its first
    line, then the first line of each of ``error.details`` that says something more (a
    409 ``OperationNotAllowed`` puts the actionable sentence there: "... Please deallocate
    and try again")."""
    err = getattr(exc, "error", None)
    text = getattr(err, "message", None) or getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Code:", "Message:"))] or lines
    line = lines[0] if lines else type(exc).__name__
    for detail in _details(err):
        first = next((ln.strip() for ln in detail[1].splitlines() if ln.strip()), "")
        if first and first not in line:
            line += f"; {first}"
    return line[:500]


def error_detail(exc: BaseException) -> str | None:
    """Azure's whole text when it says more than :func:`error_message`'s one line: every
    line of the message, then each detail as ``code: message``; else None."""
    err = getattr(exc, "error", None)
    text = str(getattr(err, "message", None) or getattr(exc, "message", None) or "")
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if not ln.startswith(("Code:", "Message:"))]
    details = _details(err)
    lines += [f"{code}: {message}" if code else message for code, message in details]
    if len([ln for ln in lines if ln.strip()]) <= 1 and not details:
        return None
    return "\n".join(lines)[:8000]


def _details(err: Any) -> list[tuple[str, str]]:
    """(code, message) of each of an ARM error's ``details``."""
    found = []
    for item in getattr(err, "details", None) or []:
        message = getattr(item, "message", None)
        if message:
            found.append((str(getattr(item, "code", None) or ""), str(message).strip()))
    return found
