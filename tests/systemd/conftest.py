"""A real systemd user manager, session bus and journald for an unprivileged test user.

Under CI (CI=true) a harness that cannot come up fails the run; elsewhere the tests
skip and say why.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.user_session import VENV_BIN, HarnessUnavailable, UserSession

HERE = Path(__file__).resolve().parent
PYTHON = str(VENV_BIN / "python")
TEST_SERVICE = f"{PYTHON} {HERE / 'notify_service.py'}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.systemd)


@pytest.fixture(scope="session")
def session() -> Iterator[UserSession]:
    harness = UserSession()
    try:
        harness.start()
    except HarnessUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"systemd user session harness cannot come up under CI: {exc}")
        print(f"\nskipping systemd tests: {exc}")
        pytest.skip(f"systemd user session unavailable: {exc}")
    try:
        yield harness
    finally:
        harness.stop()


def user_python(session: UserSession, code: str, *, env: dict[str, str] | None = None,
                check: bool = True, timeout: float = 60) -> tuple[int, str, str]:
    """Run dedented ``code`` with the venv's python as the test user."""
    result = session.run_as_user([PYTHON, "-c", textwrap.dedent(code)], env=env,
                                 timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"as {session.user}: exit {result.returncode}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result.returncode, result.stdout, result.stderr


def install_unit(session: UserSession, exec_start: str, dropin: str | None = None) -> None:
    user_python(session, f"""
        from azlin_lifecycle.install import install
        install(exec_start={exec_start!r})
    """)
    if dropin is not None:
        directory = session.home / ".config/systemd/user/azlin-lifecycle.service.d"
        session.run_as_user(["mkdir", "-p", str(directory)], check=True)
        session.run_as_user(["sh", "-c", f"cat > {directory}/test.conf"], input=dropin,
                            check=True)
        session.systemctl("daemon-reload")


def uninstall_unit(session: UserSession) -> None:
    session.run_as_user(["rm", "-rf",
                         str(session.home / ".config/systemd/user/azlin-lifecycle.service.d")])
    user_python(session, """
        from azlin_lifecycle.install import uninstall
        uninstall()
    """)
    session.systemctl("reset-failed", "azlin-lifecycle.service", check=False)


@pytest.fixture
def test_unit(session: UserSession) -> Iterator[UserSession]:
    """The unit installed with the tiny Type=notify test service as ExecStart."""
    install_unit(session, TEST_SERVICE)
    try:
        yield session
    finally:
        uninstall_unit(session)
