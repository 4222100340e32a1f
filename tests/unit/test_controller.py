"""The controller's pure parts: how long the unit has been up, in DaemonStatus's type."""

from __future__ import annotations

import datetime as dt
import inspect
import time

import pytest

from azlin_lifecycle.adapters.dbus import UnitProperties
from azlin_lifecycle.controller import DaemonController, _since


def props(active_state: str, entered: float) -> UnitProperties:
    return UnitProperties(name="azlin-lifecycle.service", load_state="loaded",
                          active_state=active_state, sub_state="running", result="success",
                          main_pid=4242, active_enter_usec=int(entered * 1_000_000),
                          status_text="", n_restarts=0, watchdog_usec=0)


@pytest.mark.parametrize("state", ["active", "reloading"])
def test_uptime_of_a_running_unit_is_a_timedelta_of_whole_seconds(state: str) -> None:
    entered = time.time() - 90.7
    since, uptime = _since(props(state, entered))
    assert since == dt.datetime.fromtimestamp(int(entered * 1_000_000) / 1_000_000, dt.UTC)
    assert isinstance(uptime, dt.timedelta)
    assert uptime in (dt.timedelta(seconds=90), dt.timedelta(seconds=91))


@pytest.mark.parametrize(("state", "entered"), [("inactive", time.time() - 5),
                                                ("failed", time.time() - 5),
                                                ("active", 0.0)],
                         ids=["inactive", "failed", "active-never"])  # the same on every xdist worker
def test_a_unit_not_running_has_no_uptime(state: str, entered: float) -> None:
    assert _since(props(state, entered)) == (None, None)


def test_a_clock_stepped_back_is_up_zero_not_negative() -> None:
    assert _since(props("active", time.time() + 60))[1] == dt.timedelta(0)


def test_start_daemon_only_starts_the_unit() -> None:
    """The foreground run is ``azlin lifecycle daemon run``, not the controller's."""
    assert list(inspect.signature(DaemonController.start_daemon).parameters) == ["self"]


def test_json_keeps_the_uptime_a_number_of_seconds() -> None:
    from azlin_lifecycle.cli.output import to_jsonable
    from azlin_lifecycle.controller import ServiceStatus

    status = ServiceStatus(active_state="active", sub_state="running", running=True, pid=4242,
                           since=None, uptime=dt.timedelta(seconds=312), status_text="",
                           n_restarts=0, result="success", installed=True)
    assert to_jsonable(status)["uptime"] == 312.0
