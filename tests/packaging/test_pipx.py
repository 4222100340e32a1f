"""The wheel and sdist from ``python -m build``, and a pipx install of the wheel by the
unprivileged test user into a clean PIPX_HOME: its ``azlin-lifecycle`` and ``azlin
lifecycle`` commands work, and ``azlin lifecycle install`` writes a unit whose ExecStart
runs the daemon under the real systemd user manager."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.user_session import UserSession

from .conftest import REPO, need
from .fleet import SimulatedFleet, journal, show

pytestmark = [pytest.mark.packaging, pytest.mark.systemd, pytest.mark.timeout(2400)]

UNIT = "azlin-lifecycle.service"
DATA = ("azlin_lifecycle/data/azlin-lifecycle.service",
        "azlin_lifecycle/data/azlin-lifecycle.catalog")


def test_wheel_and_sdist_carry_the_unit_template_and_catalog(
        python_dists: tuple[Path, Path]) -> None:
    wheel, sdist = python_dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    assert set(DATA) <= names, sorted(n for n in names if "/data/" in n)
    assert "azlin_lifecycle/manpage.py" in names
    assert re.search(r"^azlin-lifecycle = azlin_lifecycle\.cli\.main:main$", scripts, re.M)
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert set(DATA) <= members, sorted(members)[:40]


def test_pipx_install_commands_and_service(python_dists: tuple[Path, Path],
                                           user_session: UserSession) -> None:
    need(shutil.which("pipx") is not None, "pipx is missing (apt-get install pipx)")
    session = user_session
    wheel = python_dists[0]
    home = session.home
    session.run_as_user(["rm", "-rf", str(home / "pipx"), str(home / "dist")], check=True)
    session.run_as_user(["mkdir", "-p", str(home / "dist")], check=True)
    copy = home / "dist" / wheel.name  # the build's directory is root's own
    shutil.copy(wheel, copy)
    os.chown(copy, session.uid, session.gid)
    env = {"PIPX_HOME": str(home / "pipx/home"), "PIPX_BIN_DIR": str(home / "pipx/bin"),
           "PATH": f"{home / 'pipx/bin'}:/usr/bin:/bin"}
    bin_dir = home / "pipx/bin"
    try:
        result = session.run_as_user(
            ["pipx", "install", "--pip-args", f"--constraint {REPO / 'constraints.txt'}",
             str(copy)], env=env, timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

        version = session.run_as_user(["azlin-lifecycle", "--version"], env=env)
        assert version.returncode == 0 and "azlin-lifecycle" in version.stdout, version.stderr
        helped = session.run_as_user(["azlin", "lifecycle", "--help"], env=env)
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith("Usage: azlin lifecycle"), helped.stdout

        with SimulatedFleet(session) as fleet:
            try:
                installed = session.run_as_user(["azlin", "lifecycle", "install"], env=env)
                assert installed.returncode == 0, installed.stdout + installed.stderr
                unit = home / ".config/systemd/user" / UNIT
                python = home / "pipx/home/venvs/azlin-lifecycle/bin/python"
                text = unit.read_text()
                assert f"ExecStart={python} -m azlin_lifecycle daemon run\n" in text, text
                verify = session.run_as_user(["systemd-analyze", "--user", "verify",
                                              str(unit)])
                assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
                fleet.path_dropin()
                started = session.run_as_user(["azlin", "lifecycle", "daemon", "start"],
                                              env=env)
                assert started.returncode == 0, started.stdout + started.stderr
                props = show(session, "ActiveState", "StatusText", "MainPID")
                assert props["ActiveState"] == "active" and props["StatusText"], props
                cmdline = Path(f"/proc/{props['MainPID']}/cmdline").read_bytes().split(b"\0")
                assert cmdline[0] == str(python).encode(), cmdline
                started_entries = journal(session, f"_PID={props['MainPID']}",
                                          "EVENT=daemon_started")
                assert started_entries, "no daemon_started entry in the user's journal"
            finally:
                fleet.remove_dropin()
                gone = session.run_as_user(["azlin", "lifecycle", "uninstall"], env=env)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert not (home / ".config/systemd/user" / UNIT).exists()
        assert not list((home / ".config/systemd/user").rglob(f"{UNIT}*"))
    finally:
        removed = session.run_as_user(["pipx", "uninstall", "azlin-lifecycle"], env=env)
    assert removed.returncode == 0, removed.stderr
    assert not (home / "pipx/home/venvs/azlin-lifecycle").exists()
    assert not bin_dir.exists() or not list(bin_dir.iterdir())

