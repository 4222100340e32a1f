"""Fixtures for integration tests that need real servers (sshd, the simulated fleet).

Under CI (``CI=true``) a missing prerequisite fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sshd import SshServer, sshd_available


def require(available: bool, reason: str) -> None:
    """Skip (outside CI) or fail (under CI=true) when a prerequisite is missing."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: tests that need it must run)")
    pytest.skip(reason)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A running OpenSSH sshd on 127.0.0.1 that accepts ``sshd.client_key``."""
    require(sshd_available(), "OpenSSH sshd (/usr/sbin/sshd) is not installed")
    server = SshServer(tmp_path / "sshd")
    with server:
        yield server
