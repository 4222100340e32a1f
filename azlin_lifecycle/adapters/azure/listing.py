"""One power-state listing per subscription, shared by all its resource groups for a moment.

:class:`SubscriptionListings` holds, per subscription, the result of ``fetch(subscription)``
— resource group (lowercased) -> VM name (lowercased) -> value — for ``ttl`` seconds, so
the batches of one sweep (and all its resource groups) share one ``statusOnly`` listing.

* A VM asked for (``expected``) but missing from a cached listing may be new: the
  subscription is listed again, once; names still missing after that are not asked
  about again until the listing expires.
* Concurrent callers for one subscription wait for the fetch in progress instead of
  repeating it.
* :meth:`forget` drops everything (after a repair). A generation counter makes sure a
  fetch that began before the forget never installs its (pre-repair) result afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")
LISTING_TTL = 5.0
Groups = Mapping[str, Mapping[str, V]]


@dataclass
class _Entry(Generic[V]):
    fetched: float
    groups: Groups[V]
    known_missing: set[tuple[str, str]] = field(default_factory=set)


class SubscriptionListings(Generic[V]):
    def __init__(self, fetch: Callable[[str], Groups[V]], ttl: float = LISTING_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._entries: dict[str, _Entry[V]] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}

    def get(self, subscription: str, resource_group: str,
            expected: Collection[str] = ()) -> Mapping[str, V]:
        """The VMs of ``resource_group`` (case-insensitive), keyed by lowercased name."""
        group = resource_group.lower()
        wanted = {(group, name.lower()) for name in expected}
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(subscription, threading.Lock())
        with fetch_lock:
            entry = self._fresh(subscription)
            if entry is None or self._missing(entry, wanted):
                entry = self._refetch(subscription)
                entry.known_missing |= self._missing(entry, wanted)
            return entry.groups.get(group, {})

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _fresh(self, subscription: str) -> _Entry[V] | None:
        with self._lock:
            entry = self._entries.get(subscription)
            if entry is not None and self.clock() - entry.fetched < self.ttl:
                return entry
            return None

    @staticmethod
    def _missing(entry: _Entry[V], wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(g, n) for g, n in wanted
                if n not in entry.groups.get(g, {}) and (g, n) not in entry.known_missing}

    def _refetch(self, subscription: str) -> _Entry[V]:
        with self._lock:
            generation = self._generation
        began = self.clock()
        entry = _Entry(began, self.fetch(subscription))
        with self._lock:
            if self._generation == generation:
                self._entries[subscription] = entry
        return entry
