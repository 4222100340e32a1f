"""Azure's throttling signals: remaining-request headers, and Retry-After per subscription.

:class:`RateLimitWatch` reads every ``x-ms-ratelimit-remaining-*`` response header and logs a
WARNING (logger ``azlin_lifecycle.adapters.azure.compute``) when a budget runs low, at most once a
minute per budget. Two forms exist:

* ARM's own, one number per header: ``x-ms-ratelimit-remaining-subscription-reads: 249``;
* Compute's, named buckets in one header:
  ``x-ms-ratelimit-remaining-resource: Microsoft.Compute/HighCostGet3Min;897,...``.

"Low" is below 10 % of the bucket's documented size (ARM token bucket per subscription
and principal: reads 250, writes 200; Compute per subscription: LowCostGet3Min 24,000,
HighCostGet3Min 900 — the status-only listing —, UpdateVM3Min 1,500). A budget of
unknown size is low at :data:`UNKNOWN_LOW` or fewer (per-VM buckets hold 12 to 45).

:class:`NotBefore` keeps, per subscription, the time before which Azure asked not to be
asked again (a 429/503 Retry-After), so the next sweeps send nothing until then.

Every answer is also counted in :data:`AZURE` (this process's requests by method and
status, 429s, the Retry-After asked for, each budget's last remaining count), which the
Prometheus exporter reads when it is on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping

from ...tally import Tally
from .errors import retry_after_seconds

LOG = logging.getLogger("azlin_lifecycle.adapters.azure.compute")
PREFIX = "x-ms-ratelimit-remaining-"
LOW_FRACTION = 0.10
UNKNOWN_LOW = 10
LOG_EVERY = 60.0
BUCKET_SIZES = {
    "x-ms-ratelimit-remaining-subscription-reads": 250,
    "x-ms-ratelimit-remaining-subscription-writes": 200,
    "Microsoft.Compute/LowCostGet3Min": 24000,
    "Microsoft.Compute/HighCostGet3Min": 900,
    "Microsoft.Compute/UpdateVM3Min": 1500,
}
# Series: "requests" (method, status code), "throttled" (429s), "retry_after" and
# "retry_after_seconds" (the waits 429/503 answers asked for), "remaining" (budget).
AZURE = Tally()
THROTTLED = 429


def remaining_budgets(headers: Mapping[str, str]) -> dict[str, int]:
    """Budget name -> requests left, from every ``x-ms-ratelimit-remaining-*`` header.

    A plain header is named by itself; a Compute bucket by its own name
    (``Microsoft.Compute/HighCostGet3Min``). Values that are not numbers are skipped.
    """
    out: dict[str, int] = {}
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if not name.startswith(PREFIX):
            continue
        for part in str(value).split(","):
            bucket, sep, count = part.strip().rpartition(";")
            key = bucket.strip() if sep else name
            try:
                out[key] = int((count if sep else part).strip())
            except ValueError:
                continue
    return out


def is_low(budget: str, remaining: int) -> bool:
    size = BUCKET_SIZES.get(budget)
    if size is None:
        return remaining <= UNKNOWN_LOW
    return remaining < size * LOW_FRACTION


class RateLimitWatch:
    """Logs a low budget at most once per ``every`` seconds per budget name."""

    def __init__(self, every: float = LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger = LOG, tally: Tally = AZURE) -> None:
        self.every = every
        self.clock = clock
        self.log = log
        self.tally = tally
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def observe(self, headers: Mapping[str, str]) -> list[str]:
        """Check one answer's headers; return the budgets it warned about."""
        warned: list[str] = []
        for budget, left in remaining_budgets(headers).items():
            self.tally.set("remaining", budget, value=left)
            if not is_low(budget, left):
                continue
            now = self.clock()
            with self._lock:
                last = self._last.get(budget)
                if last is not None and now - last < self.every:
                    continue
                self._last[budget] = now
            size = BUCKET_SIZES.get(budget)
            of = f" of {size}" if size else ""
            self.log.warning(
                "Azure rate limit running low: %s has %d requests left%s; checks will be "
                "throttled (429) if it runs out: raise check_interval_seconds or monitor "
                "fewer VMs per subscription", budget, left, of)
            warned.append(budget)
        return warned

    def on_response(self, pipeline_response: object) -> None:
        """azure-core ``raw_response_hook``: count every answer and observe its headers."""
        http = getattr(pipeline_response, "http_response", None)
        headers = getattr(http, "headers", None)
        status = getattr(http, "status_code", None)
        if isinstance(status, int):
            method = getattr(getattr(pipeline_response, "http_request", None), "method", None)
            self.tally.add("requests", str(method or "").upper(), str(status))
            if status == THROTTLED:
                self.tally.add("throttled")
            asked = retry_after_seconds(headers) if headers is not None else None
            if status in (THROTTLED, 503) and asked:
                self.tally.add("retry_after")
                self.tally.add("retry_after_seconds", amount=asked)
        if headers is not None:
            self.observe(headers)


class NotBefore:
    """Per subscription: when Azure allows the next request (from a Retry-After)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, tuple[float, dt.datetime]] = {}

    def record(self, key: str, seconds: float) -> None:
        """Azure asked to wait ``seconds``; keeps the later of this and any earlier ask."""
        if seconds <= 0:
            return
        mono = self.clock() + seconds
        wall = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        with self._lock:
            current = self._until.get(key)
            if current is None or current[0] < mono:
                self._until[key] = (mono, wall)

    def until(self, key: str) -> dt.datetime | None:
        """The UTC time before which ``key`` must not be asked, or None if it may be now."""
        with self._lock:
            current = self._until.get(key)
            if current is None:
                return None
            if current[0] <= self.clock():
                del self._until[key]
                return None
            return current[1]
