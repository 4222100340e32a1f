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
    """Azure's message without the SDK's multi-line decoration."""
    err = getattr(exc, "error", None)
    text = getattr(err, "message", None) or getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Code:", "Message:"))] or lines
    return (lines[0] if lines else type(exc).__name__)[:500]
