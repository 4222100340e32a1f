"""`install --linger` / `uninstall --linger` through logind's SetUserLinger on the system bus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.user_session import LogindBus, UserSession

LINGER_DIR = Path("/var/lib/systemd/linger")


@pytest.fixture
def logind(session: UserSession) -> Iterator[LogindBus]:
    with LogindBus() as bus:
        yield bus
    (LINGER_DIR / session.user).unlink(missing_ok=True)


def test_install_linger_round_trip(session: UserSession, logind: LogindBus) -> None:
    flag = LINGER_DIR / session.user
    flag.unlink(missing_ok=True)
    out = session.run_as_user(["azlin-lifecycle", "install", "--linger"])
    assert out.returncode == 0, out.stderr
    assert "lingering on" in out.stdout
    assert flag.exists()
    out = session.run_as_user(["azlin-lifecycle", "uninstall", "--linger"])
    assert out.returncode == 0, out.stderr
    assert not flag.exists()
