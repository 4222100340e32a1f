"""When ``on_failure`` pages a person: once per incident, on each change, then sparingly.

An **incident** is a VM's run of failed checks between two healthy announcements. Its
first failure that warrants an alert opens it (``INCIDENT_ID``, ``INCIDENT_STARTED``);
``on_healthy`` closes it, with its length and its count of failed checks. While it lasts,
``on_failure`` fires:

* on its first failure (``ALERT=first``);
* whenever the healing **outcome** changes (``ALERT=changed``): held back by a safety
  rule → repairing → needs you (a fault a restart cannot fix) → gave up (the restart
  budget is spent); the fine-grained reason stays in ``HEALING``;
* then at most every ``[hooks] repeat_seconds`` (``ALERT=reminder``); with
  ``repeat_seconds = 0``, on every failed check (``ALERT=every_check``, the spec's rule).

``REPEAT`` counts the alerts sent for the incident before this one (0 on the first).
Pure functions over :class:`~.models.Announced`, which carries the open incident and is
persisted with the hooks it owes: a daemon killed mid-incident neither opens a new one
nor pages again before its time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .models import Announced, HoldKind, utc_text
from .policy import Decision


class Outcome(StrEnum):
    """What healing does about a failing VM, as coarse as a person cares to be told."""

    NONE = "none"  # no repair wanted (restart_policy = "never", a stopped VM ...)
    HELD = "held"  # a repair is due; a safety rule holds it back for now
    REPAIRING = "repairing"
    WOULD_REPAIR = "would_repair"  # dry run
    NEEDS_YOU = "needs_you"  # a fault a restart cannot fix: a person must act
    GAVE_UP = "gave_up"  # the restart budget is spent


class Why(StrEnum):
    """Why this ``on_failure`` fires (``ALERT``)."""

    FIRST = "first"
    CHANGED = "changed"
    REMINDER = "reminder"
    EVERY_CHECK = "every_check"


def outcome_of(decision: Decision, needs_you: bool) -> Outcome:
    if needs_you:
        return Outcome.NEEDS_YOU
    if decision.hold_kind is HoldKind.BUDGET:
        return Outcome.GAVE_UP
    if decision.held:
        return Outcome.HELD
    if decision.action is not None:
        return Outcome.WOULD_REPAIR if decision.dry_run else Outcome.REPAIRING
    return Outcome.NONE


def incident_id(vm: str, started: float) -> str:
    """``web-20261206T161500Z``: the VM and when the incident began, in UTC."""
    return f"{vm}-{dt.datetime.fromtimestamp(started, dt.UTC):%Y%m%dT%H%M%SZ}"


def failed(told: Announced) -> Announced:
    """A failed check while an incident is open: one more to its count."""
    if told.incident is None:
        return told
    return dataclasses.replace(told, failures=told.failures + 1)


@dataclass(frozen=True)
class Alert:
    """An ``on_failure`` that is due, and what is told once it is sent."""

    vm: str
    told: Announced
    why: Why

    @property
    def context(self) -> dict[str, object]:
        """What the alert adds to ``on_failure``'s context."""
        return {"incident_id": self.told.incident, "incident_started":
                utc_text(self.told.incident_started or 0.0), "repeat": self.told.alerts - 1,
                "alert": self.why.value, "outcome": self.told.outcome}


def alert_due(vm: str, told: Announced, at: float, outcome: Outcome,
              repeat_seconds: int) -> Alert | None:
    """The ``on_failure`` a failure warranting an alert owes now, if any. ``told``
    already counts this failure (see :func:`failed`) when an incident is open."""
    if told.incident is None:
        opened = dataclasses.replace(told, incident=incident_id(vm, at), incident_started=at,
                                     failures=1, alerts=0)
        return _sent(vm, opened, at, outcome, Why.FIRST)
    if outcome.value != told.outcome:
        return _sent(vm, told, at, outcome, Why.CHANGED)
    if repeat_seconds == 0:
        return _sent(vm, told, at, outcome, Why.EVERY_CHECK)
    if at - (told.last_alert or 0.0) >= repeat_seconds:
        return _sent(vm, told, at, outcome, Why.REMINDER)
    return None


def _sent(vm: str, told: Announced, at: float, outcome: Outcome, why: Why) -> Alert:
    return Alert(vm, dataclasses.replace(told, alerts=told.alerts + 1, last_alert=at,
                                         outcome=outcome.value), why)


def closed(told: Announced, at: float) -> tuple[Announced, dict[str, object]]:
    """The VM is announced healthy: close its incident. What is told without it, and
    what ``on_healthy`` carries of it (nothing when none was open)."""
    if told.incident is None:
        return told, {}
    started = told.incident_started or at
    context: dict[str, object] = {
        "incident_id": told.incident, "incident_started": utc_text(started),
        "incident_seconds": max(0, round(at - started)), "failure_count": told.failures}
    return dataclasses.replace(told, incident=None, incident_started=None, failures=0,
                               alerts=0, last_alert=None, outcome=None), context


# --------------------------------------------------------------------------- digests
@dataclass(frozen=True)
class Page:
    """One ``on_failure`` to fire: for one VM, or a digest of several sharing a target
    (fired as the first of them, ``vms`` lists them all)."""

    vm: str
    context: Mapping[str, object]
    vms: tuple[str, ...] = ()


def pages(alerts: Sequence[tuple[Alert, Mapping[str, object]]], target_of: Mapping[str, str],
          digest: bool) -> list[Page]:
    """The alerts due in one sweep (each with its ``on_failure`` context), as pages:
    with ``digest`` (many VMs failed at once), one per ``on_failure`` target, listing the
    VMs (``VM_NAMES``, ``VM_COUNT``, ``DIGEST=1``); else one per VM."""
    if not digest:
        return [Page(a.vm, {**context, **a.context}) for a, context in alerts]
    groups: dict[str, list[tuple[Alert, Mapping[str, object]]]] = {}
    for alert, context in alerts:
        groups.setdefault(target_of.get(alert.vm, ""), []).append((alert, context))
    out = []
    for group in groups.values():
        if len(group) == 1:
            alert, context = group[0]
            out.append(Page(alert.vm, {**context, **alert.context}))
            continue
        names = tuple(sorted(a.vm for a, _ in group))
        first_alert, first_context = next(g for g in group if g[0].vm == names[0])
        out.append(Page(names[0], {
            **first_context, **first_alert.context, "digest": 1,
            "vm_names": ",".join(names), "vm_count": len(names),
            "reason": f"{len(names)} VMs failed in one sweep: " + "; ".join(
                f"{a.vm}: {c.get('reason', '')}" for a, c in sorted(group, key=lambda g:
                                                                     g[0].vm))}, names))
    return out
