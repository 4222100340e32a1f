"""Fixtures of the packaging tests: the built .deb, wheel and sdist, and a real systemd
user session (tests/support/user_session.py) for the smoke tests.

The slow tests (marker ``packaging``: package builds, apt, pipx) are left out of the
default run by pyproject's addopts and run by ``make package``
(``pytest -m packaging tests/packaging``). Under CI (CI=true) nothing here skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.user_session import HarnessUnavailable, UserSession

REPO = Path(__file__).resolve().parents[2]
# What a source build needs (also what packaging/build-deb copies).
SOURCES = ("azlin_lifecycle", "units", "packaging", "pyproject.toml", "README.md",
           "constraints.txt")


def need(condition: bool, why: str) -> None:
    """Skip with ``why`` when ``condition`` fails; under CI fail instead."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI this must run: {why}")
    pytest.skip(why)


def copy_sources(target: Path) -> Path:
    """The working tree's sources, without caches, so builds never write into the checkout."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=ignore)
        else:
            shutil.copy2(src, target / name)
    return target


@pytest.fixture(scope="session")
def deb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AZLIN_DEB (built by ``make package``), else built here with packaging/build-deb."""
    given = os.environ.get("AZLIN_DEB")
    if given:
        path = Path(given).resolve()
        assert path.is_file(), f"AZLIN_DEB={given} does not exist"
        return path
    need(os.geteuid() == 0, "building and installing the .deb needs root")
    for tool in ("dpkg-buildpackage", "dh_virtualenv", "lintian"):
        need(shutil.which(tool) is not None, f"{tool} is missing (run scripts/system-deps)")
    out = tmp_path_factory.mktemp("deb")
    result = subprocess.run([str(REPO / "packaging/build-deb"), str(out)],
                            capture_output=True, text=True, timeout=1800, check=False,
                            env={**os.environ, "NO_LINTIAN": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def python_dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) from ``python -m build`` on a copy of the sources."""
    src = copy_sources(tmp_path_factory.mktemp("build") / "src")
    out = src.parent / "dist"
    result = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "build", "--outdir",
                             str(out), str(src)], capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    with tarfile.open(sdists[0]) as tar:
        assert tar.getmembers()
    return wheels[0], sdists[0]


@pytest.fixture(scope="session")
def user_session() -> Iterator[UserSession]:
    harness = UserSession()
    try:
        harness.start()
    except HarnessUnavailable as exc:
        need(False, f"systemd user session unavailable: {exc}")
    try:
        yield harness
    finally:
        harness.stop()
