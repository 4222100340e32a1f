"""What the hooks have told of each VM, and the hooks still owed — kept across a kill.

A check is stored the moment it ends; its hooks fire a moment later. A daemon killed in
between must not lose them, nor fire them twice. So the transitions are computed against
what was *told* (:class:`~.models.Announced`, persisted), not against the last stored
check, and the hooks a transition fires are written to an outbox in the same transaction
as the new "told" state before they are handed to the runner; a hook's row is deleted
once it ran. The next daemon fires whatever is left (a hook a stop cancelled, or one a
kill caught before it ran) — once. A webhook that reached its server just before a kill,
whose answer never came, is the one case that can arrive twice.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .config import HookType
from .models import Announced, HealthStatus
from .ports import HookRunner
from .state import StateStore


@dataclass(frozen=True)
class Tell:
    """A hook the loop should fire; ``owed``: its row in the state store's outbox, to
    delete once it ran (a hook that never ran is fired by the next daemon)."""

    hook: HookType
    vm: str
    context: Mapping[str, object]
    owed: int | None = None


class Announcements:
    def __init__(self, store: StateStore, latest: Mapping[str, HealthStatus]) -> None:
        """What ``store`` says was told; for a VM it has nothing on (a database from before
        announcements were kept), its latest check."""
        self.store = store
        self.told = {vm: Announced(s.state, s.healthy) for vm, s in latest.items()}
        self.told.update(store.announced())

    def record(self, vm: str, told: Announced,
               hooks: list[tuple[HookType, Mapping[str, object]]]) -> list[Tell]:
        """``told`` is what is told of ``vm`` now, by ``hooks``: persist both (one write,
        only when something changed) and return the hooks to fire."""
        if not hooks and self.told.get(vm) == told:
            return []
        return self.record_many({vm: told}, [(hook, vm, context) for hook, context in hooks])

    def record_many(self, told: Mapping[str, Announced],
                    hooks: list[tuple[HookType, str, Mapping[str, object]]]) -> list[Tell]:
        """What is told of several VMs now, and the hooks (hook, vm, context) that tell
        it: persisted in one write; the hooks to fire."""
        rows = self.store.announce(told, [(vm, h.value, c) for h, vm, c in hooks])
        self.told.update(told)
        return [Tell(hook, vm, context, owed=row)
                for (hook, vm, context), row in zip(hooks, rows, strict=True)]

    def owed(self) -> list[Tell]:
        """Hooks a previous daemon recorded as owed and did not see run."""
        tells = []
        for row in self.store.owed_hooks():
            try:
                tells.append(Tell(HookType(row.hook), row.vm, row.context, owed=row.id))
            except ValueError:  # not a hook this version knows: nothing to run
                self.store.hook_ran(row.id)
        return tells

    def fire(self, runner: HookRunner, tells: Iterable[Tell]) -> None:
        """Fire hooks; an owed one leaves the outbox once it ran (not if a stop cancelled
        it: the next daemon fires it), or at once where this daemon must not run it."""
        for tell in tells:
            done = runner.execute_hook_async(tell.hook, tell.vm, dict(tell.context))
            if tell.owed is None:
                continue
            if isinstance(done, Future):
                done.add_done_callback(functools.partial(self._ran, tell.owed))
            else:  # a standby's hooks are the leader's to fire
                self.store.hook_ran(tell.owed)

    def _ran(self, owed: int, done: Future[Any]) -> None:
        if not done.cancelled():
            self.store.hook_ran(owed)
