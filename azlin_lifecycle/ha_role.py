"""The daemon's ``[ha]`` role: of several daemons watching one fleet, the lease holder acts.

:class:`HaRole` puts together what the daemon needs for it: the election
(:class:`~azlin_lifecycle.leadership.Leadership`), the repair records shared in the leased
blob (:class:`~azlin_lifecycle.ledger.SharedLedger`, mirrored into the local state
store), and hooks that run only while leading. It tells the loop through two callbacks,
both called from the election thread: ``on_change`` (a new view of who leads) and
``on_interrupted`` (the predecessor's unfinished repairs, read on election, before this
daemon's first decision as leader). Without ``[ha]`` the daemon has no HaRole and acts
alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from .config import LifecycleConfig
from .leadership import LeaderOnlyHooks, Leadership, LeadershipView
from .ledger import SharedLedger
from .models import RepairRecord
from .ports import HookRunner, LeaseStore
from .state import StateStore

# How long the shared ledger keeps a record: longer than any rule looks back (7 days).
MIN_KEEP_SECONDS = 7 * 86400
KEEP_MARGIN_SECONDS = 86400


class HaRole:
    def __init__(self, lease: LeaseStore, config: LifecycleConfig, store: StateStore,
                 hooks: HookRunner, *,
                 on_change: Callable[[LeadershipView], None],
                 on_interrupted: Callable[[list[RepairRecord]], None]) -> None:
        identity = f"{socket.gethostname()} pid {os.getpid()}"
        self._on_interrupted = on_interrupted
        self.leadership = Leadership(
            lease, seconds=config.ha.lease_seconds, identity=identity,
            on_elected=self._take_over, on_change=on_change)
        self.ledger = SharedLedger(
            lease, mirror=store, identity=identity, is_leader=self.leadership.is_leader,
            keep_seconds=max(config.healing.budget_window_seconds, MIN_KEEP_SECONDS)
            + KEEP_MARGIN_SECONDS)
        self.hooks = LeaderOnlyHooks(hooks, self.leadership.is_leader)

    def _take_over(self, lease_id: str) -> None:
        """Elected: read the shared ledger before any decision (the election thread)."""
        self._on_interrupted(self.ledger.take_over(lease_id))

    def acting(self) -> bool:
        return self.leadership.is_leader()

    def view(self) -> LeadershipView:
        return self.leadership.view()

    def start(self) -> None:
        self.leadership.start()

    def stop(self) -> None:
        """Release the lease: a standby takes over at once, not at its expiry."""
        self.leadership.stop(release=True)
