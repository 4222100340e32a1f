"""A real systemd user manager, session bus and journald for an unprivileged test user.

Under CI (CI=true) a harness that cannot come up fails the run; elsewhere the tests
skip and say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.real_unit import PYTHON, install_unit, uninstall_unit, user_python
from tests.support.shared_session import shared_user_session
from tests.support.user_session import UserSession

HERE = Path(__file__).resolve().parent
# Re-exported for the tests here (they live in tests/support/real_unit.py, shared with e2e).
__all__ = ["PYTHON", "TEST_SERVICE", "install_unit", "uninstall_unit", "user_python"]
TEST_SERVICE = f"{PYTHON} {HERE / 'notify_service.py'}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.systemd)


@pytest.fixture(scope="package")
def session() -> Iterator[UserSession]:
    """The user session, up while this package's tests run (it holds a machine-wide
    lock: other runs wait for it, so it is not kept through the rest of the run)."""
    yield from shared_user_session()


@pytest.fixture
def test_unit(session: UserSession) -> Iterator[UserSession]:
    """The unit installed with the tiny Type=notify test service as ExecStart."""
    install_unit(session, TEST_SERVICE)
    try:
        yield session
    finally:
        uninstall_unit(session)
