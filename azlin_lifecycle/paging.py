"""The ``on_failure`` alerts of a sweep: noted as each failure is decided, paged at its end.

Which failure pages, and when, is :mod:`~.alerts`' rule; this room keeps the alerts due
since the last page and pages them together, so that when many VMs fail at once (the
breaker's threshold) each ``on_failure`` target gets one digest instead of one page per
VM. What is told (the incidents) and the pages owed are recorded in one write before
they are fired (:class:`~.announcements.Announcements`), so a kill loses none and repeats
none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import alerts
from .alerts import Alert
from .announcements import Announcements, Tell
from .config import HookType, MonitoringConfig
from .models import HealthStatus
from .policy import Decision


class Pager:
    def __init__(self, told: Announcements,
                 enabled: Callable[[], Mapping[str, MonitoringConfig]]) -> None:
        self.told = told
        self.enabled = enabled  # the VMs monitored now, with their hooks
        self.pending: dict[str, tuple[Alert, Mapping[str, object]]] = {}

    def alert(self, status: HealthStatus, decision: Decision,
              context: Mapping[str, object] | None, repeat_seconds: int) -> None:
        """A failure was decided (``context``: its ``on_failure`` context, None when it
        warrants no alert): note the alert it owes, if any."""
        vm = status.vm_name
        told = self.told.told.get(vm)
        if context is None or told is None:
            return
        due = alerts.alert_due(vm, told, status.timestamp.timestamp(),
                               alerts.outcome_of(decision, status.needs_you), repeat_seconds)
        if due is not None:
            self.pending[vm] = (due, context)

    def page(self, many: int | None) -> list[Tell]:
        """The alerts noted since the last page, recorded as told and owed: one digest
        per ``on_failure`` target when ``many`` VMs or more (at least 2) are due at once
        (None: never)."""
        due, self.pending = list(self.pending.values()), {}
        if not due:
            return []
        enabled = self.enabled()
        targets = {a.vm: enabled[a.vm].hooks.get(HookType.ON_FAILURE.value, "")
                   for a, _ in due if a.vm in enabled}
        digest = many is not None and len(due) >= max(2, many)
        return self.told.record_many(
            {a.vm: a.told for a, _ in due},
            [(HookType.ON_FAILURE, p.vm, p.context) for p in alerts.pages(due, targets, digest)])
