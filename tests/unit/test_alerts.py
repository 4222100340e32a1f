"""When on_failure pages (azlin_lifecycle.alerts): pure rules over what was told."""

from __future__ import annotations

import dataclasses

from azlin_lifecycle.alerts import (
    Alert,
    Outcome,
    Why,
    alert_due,
    closed,
    failed,
    incident_id,
    outcome_of,
    pages,
)
from azlin_lifecycle.models import Announced, HoldKind, RepairAction, VMState
from azlin_lifecycle.policy import Decision

T0 = 1_796_574_900.0  # 2026-12-06T16:35:00Z
UP = Announced(VMState.RUNNING, healthy=True)


def incident(told: Announced, checks: list[tuple[float, Outcome]],
             repeat: int) -> tuple[Announced, list[Why | None]]:
    """Feed failed checks through failed() and alert_due(), as the daemon does."""
    whys: list[Why | None] = []
    for at, outcome in checks:
        told = failed(told)
        due = alert_due("web", told, at, outcome, repeat)
        whys.append(None if due is None else due.why)
        if due is not None:
            told = due.told
    return told, whys


def test_a_vm_down_all_night_pages_once_then_every_repeat_seconds() -> None:
    checks = [(T0 + 60 * k, Outcome.HELD) for k in range(600)]  # 10 h, every 60 s
    told, whys = incident(UP, checks, repeat=1800)
    sent = [w for w in whys if w is not None]
    assert whys[0] is Why.FIRST and sent.count(Why.FIRST) == 1
    assert sent.count(Why.REMINDER) == 19  # every 30 min of the 10 h after the first
    assert len(sent) == 20 and told.failures == 600 and told.alerts == 20
    assert told.incident == "web-20261206T163500Z" == incident_id("web", T0)


def test_repeat_seconds_zero_pages_every_failed_check() -> None:
    _, whys = incident(UP, [(T0 + 60 * k, Outcome.NONE) for k in range(5)], repeat=0)
    assert whys == [Why.FIRST] + [Why.EVERY_CHECK] * 4


def test_each_change_of_the_healing_outcome_pages_at_once() -> None:
    path = [Outcome.HELD, Outcome.HELD, Outcome.REPAIRING, Outcome.HELD, Outcome.NEEDS_YOU,
            Outcome.NEEDS_YOU, Outcome.GAVE_UP, Outcome.GAVE_UP]
    told, whys = incident(UP, [(T0 + 60 * k, o) for k, o in enumerate(path)], repeat=1800)
    assert whys == [Why.FIRST, None, Why.CHANGED, Why.CHANGED, Why.CHANGED, None,
                    Why.CHANGED, None]
    assert told.outcome == "gave_up" and told.alerts == 5


def test_the_alert_says_which_incident_and_how_many_came_before() -> None:
    told, _ = incident(UP, [(T0, Outcome.HELD)], repeat=1800)
    due = alert_due("web", failed(told), T0 + 1800, Outcome.HELD, 1800)
    assert due is not None
    assert due.context == {"incident_id": "web-20261206T163500Z",
                           "incident_started": "2026-12-06T16:35:00Z", "repeat": 1,
                           "alert": "reminder", "outcome": "held"}


def test_healthy_closes_the_incident_with_its_length_and_failures() -> None:
    told, _ = incident(UP, [(T0 + 60 * k, Outcome.HELD) for k in range(7)], repeat=1800)
    after, context = closed(dataclasses.replace(told, healthy=True), T0 + 7 * 60 + 0.4)
    assert context == {"incident_id": "web-20261206T163500Z",
                       "incident_started": "2026-12-06T16:35:00Z",
                       "incident_seconds": 420, "failure_count": 7}
    assert after == Announced(VMState.RUNNING, healthy=True)
    assert closed(UP, T0) == (UP, {})  # healthy without an incident: nothing to close
    _, whys = incident(after, [(T0 + 1000, Outcome.HELD)], repeat=1800)
    assert whys == [Why.FIRST]  # the next failure is a new incident


def test_failures_outside_an_incident_are_not_counted() -> None:
    assert failed(UP) == UP


def test_outcome_of_a_decision() -> None:
    def d(**kw: object) -> Decision:
        return Decision(**{"action": None, "reason": "r", **kw})  # type: ignore[arg-type]

    assert outcome_of(d(), needs_you=True) is Outcome.NEEDS_YOU
    assert outcome_of(d(held=True, hold_kind=HoldKind.BUDGET), False) is Outcome.GAVE_UP
    assert outcome_of(d(held=True, hold_kind=HoldKind.BREAKER), False) is Outcome.HELD
    assert outcome_of(d(action=RepairAction.RESTART), False) is Outcome.REPAIRING
    assert outcome_of(d(action=RepairAction.RESTART, dry_run=True), False) is \
        Outcome.WOULD_REPAIR
    assert outcome_of(d(), False) is Outcome.NONE


def _due(vm: str) -> tuple[Alert, dict[str, object]]:
    due = alert_due(vm, UP, T0, Outcome.HELD, 1800)
    assert due is not None
    return due, {"reason": f"{vm} down", "state": "running"}


def test_without_a_digest_each_vm_gets_its_page() -> None:
    out = pages([_due("a"), _due("b")], {"a": "/x", "b": "/x"}, digest=False)
    assert [(p.vm, p.context["reason"], p.context["incident_id"]) for p in out] == [
        ("a", "a down", "a-20261206T163500Z"), ("b", "b down", "b-20261206T163500Z")]


def test_a_digest_is_one_page_per_target() -> None:
    due = [_due(vm) for vm in ("c", "a", "b", "d")]
    out = pages(due, {"a": "/x", "b": "/x", "c": "/x", "d": "https://y"}, digest=True)
    assert [(p.vm, p.vms) for p in out] == [("a", ("a", "b", "c")), ("d", ())]
    digest = out[0].context
    assert (digest["digest"], digest["vm_names"], digest["vm_count"]) == (1, "a,b,c", 3)
    assert digest["reason"] == "3 VMs failed in one sweep: a: a down; b: b down; c: c down"
    assert digest["incident_id"] == "a-20261206T163500Z"
    assert "digest" not in out[1].context and out[1].context["reason"] == "d down"
