"""The xdist scheduler of ``make pytest``: the rules are in tests/support/scheduling.py."""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling

from .scheduling import LONG_SECONDS, expected_seconds, group_of


class LongestFirstScheduling(LoadGroupScheduling):
    """``--dist loadgroup`` with GROUPS by path, the longest unit first, and only short
    units queued behind a long one."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid) or super()._split_scope(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        assert self.workqueue
        held = self.assigned_work.setdefault(node, {})
        busy_long = any(expected_seconds(scope) >= LONG_SECONDS and not all(unit.values())
                        for scope, unit in held.items())
        # Ties keep collection order: max and min return the first of equals.
        pick = min if busy_long else max
        scope = pick(self.workqueue, key=expected_seconds)
        work_unit = self.workqueue.pop(scope)
        held[scope] = work_unit
        collection = self.registered_collections[node]
        node.send_runtest_some([collection.index(nodeid)
                                for nodeid, done in work_unit.items() if not done])
