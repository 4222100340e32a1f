"""One systemd user session at a time per pytest process, for tests/systemd and tests/e2e.

The harness holds a machine-wide lock while it is up: a second harness started in
the same process would wait on its own lock. Each directory's ``session`` fixture
(package-scoped, so the lock is released as soon as that directory's tests are done)
does ``yield from shared_user_session()``; the first caller brings the session up,
the last one to finish takes it down, and a later caller brings it up again.

Under CI (CI=true) a harness that cannot come up fails the run; elsewhere the test
skips and says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .user_session import HarnessUnavailable, UserSession

_session: UserSession | None = None
_failure: str | None = None
_users = 0


def shared_user_session() -> Iterator[UserSession]:
    """Generator body for a session-scoped ``session`` fixture."""
    global _session, _failure, _users
    if _session is None and _failure is None:
        harness = UserSession()
        try:
            harness.start()
        except HarnessUnavailable as exc:
            _failure = str(exc)
        else:
            _session = harness
    if _session is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"systemd user session harness cannot come up under CI: {_failure}")
        print(f"\nskipping systemd tests: {_failure}")
        pytest.skip(f"systemd user session unavailable: {_failure}")
    _users += 1
    try:
        yield _session
    finally:
        _users -= 1
        if _users == 0:
            _session.stop()
            _session = None
