"""Every test gets its own config and state directories, never the user's.

Under pytest-xdist (``make pytest``), tests that share a resource share a worker and the
longest work starts first: see tests/support/scheduling.py.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.scheduling import USER_SESSION_GROUP, group_of


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    config = tmp_path / "azlin"
    monkeypatch.setenv("AZLIN_CONFIG_DIR", str(config))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("AZLIN_LIFECYCLE_CONFIG", raising=False)
    yield config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One harness at a time on this machine: a test that uses the systemd user session
    must be in the group that runs on one xdist worker."""
    for item in items:
        if ("session" in getattr(item, "fixturenames", ())
                and group_of(item.nodeid) != USER_SESSION_GROUP):
            raise pytest.UsageError(
                f"{item.nodeid} uses the systemd user session: add its directory to "
                f"GROUPS in tests/support/scheduling.py (group {USER_SESSION_GROUP!r})")


if importlib.util.find_spec("xdist") is not None:

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup":
            return None
        from tests.support.xdist_scheduler import LongestFirstScheduling

        return LongestFirstScheduling(config, log)
