"""The Debian package, built with dpkg-buildpackage: lintian, apt-get install, the packaged
user unit under a real systemd user manager against a simulated fleet, the journal
catalog, and apt-get purge leaving nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.events import Event
from tests.support.user_session import UserSession

from .conftest import need
from .fleet import SimulatedFleet, show

pytestmark = [pytest.mark.packaging, pytest.mark.systemd, pytest.mark.timeout(2400)]

PKG = "azlin-lifecycle"
UNIT = f"{PKG}.service"
UNIT_PATH = Path("/usr/lib/systemd/user") / UNIT
CATALOG_PATH = Path("/usr/lib/systemd/catalog/azlin-lifecycle.catalog")
OUR_IDS = {e.message_id for e in Event}


def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def installed() -> bool:
    result = run("dpkg-query", "-W", "-f=${db:Status-Status}", PKG)
    return result.returncode == 0 and result.stdout == "installed"


def catalog_ids() -> set[str]:
    out = run("journalctl", "--list-catalog").stdout
    return {line.split(" ", 1)[0] for line in out.splitlines()} & OUR_IDS


def deb_field(deb: Path, field: str) -> str:
    return run("dpkg-deb", "--field", str(deb), field).stdout.strip()


def test_lintian_reports_no_errors(deb_path: Path) -> None:
    result = run("lintian", "--fail-on", "error", "--info", str(deb_path), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^E: ", result.stdout, re.M), result.stdout


def test_control_fields(deb_path: Path) -> None:
    version = re.search(r'^version = "(.+)"$', (Path(__file__).parents[2] /
                                                 "pyproject.toml").read_text(), re.M)
    assert version and deb_field(deb_path, "Version") == version.group(1)
    depends = {d.split()[0] for d in deb_field(deb_path, "Depends").replace("|", ",")
               .split(",") if d.strip()}
    assert {"libsystemd0", "gir1.2-glib-2.0", "libgirepository-1.0-1", "openssh-client",
            "python3.11", "libc6"} <= depends, depends
    files = run("dpkg-deb", "--contents", str(deb_path)).stdout
    assert "./usr/bin/azlin-lifecycle -> ../lib/azlin-lifecycle/bin/azlin-lifecycle" in files
    assert not re.search(r" \./usr/bin/azlin( |$)", files, re.M), "would shadow azlin"
    assert not re.search(r"\.pyc$|/__pycache__/$", files, re.M), "byte code in the package"
    for path in (UNIT_PATH, CATALOG_PATH, Path("/usr/share/man/man1/azlin-lifecycle.1.gz"),
                 Path("/usr/share/doc/azlin-lifecycle/copyright"),
                 Path("/usr/share/doc/azlin-lifecycle/changelog.gz")):
        assert f".{path}\n" in files, path


@pytest.fixture
def fresh_install(deb_path: Path) -> Iterator[list[Path]]:
    """apt-get install ./the.deb (purging an earlier run's first); the package's files."""
    need(os.geteuid() == 0, "apt-get install needs root")
    if installed():
        run("apt-get", "purge", "-y", PKG)
    result = run("apt-get", "install", "-y", "--no-install-recommends", str(deb_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    files = [Path(p) for p in run("dpkg-query", "-L", PKG).stdout.split()]
    try:
        yield files
    finally:
        if installed():
            run("apt-get", "purge", "-y", PKG)


def test_install_run_under_systemd_and_purge(fresh_install: list[Path],
                                             user_session: UserSession) -> None:
    session = user_session
    # Installed: the command on PATH, no azlin shadowing, catalog compiled by the trigger.
    version = run("/usr/bin/azlin-lifecycle", "--version")
    assert version.returncode == 0 and "azlin-lifecycle" in version.stdout, version.stderr
    assert not Path("/usr/bin/azlin").exists()
    assert UNIT_PATH.is_file() and CATALOG_PATH.is_file()
    assert catalog_ids() == OUR_IDS
    # Installed, not enabled: not globally, not for this user.
    assert not list(Path("/etc/systemd/user").rglob(f"{PKG}*"))
    session.systemctl("daemon-reload")
    enabled = session.systemctl("is-enabled", UNIT, check=False)
    assert enabled.stdout.strip() == "disabled", enabled.stdout + enabled.stderr
    verify = session.run_as_user(["systemd-analyze", "--user", "verify", str(UNIT_PATH)])
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

    with SimulatedFleet(session) as fleet:
        fleet.path_dropin()
        try:
            session.systemctl("start", UNIT)
            props = show(session, "ActiveState", "StatusText", "MainPID")
            assert props["ActiveState"] == "active", props
            assert props["StatusText"], "no STATUS= line"
            # ExecStartPre created the state directory the sandbox then opened up.
            state_dir = session.home / ".local/state/azlin-lifecycle"
            assert state_dir.is_dir() and state_dir.stat().st_mode & 0o777 == 0o700
            # The main process: the packaged venv's interpreter running the entry point.
            cmdline = Path(f"/proc/{props['MainPID']}/cmdline").read_bytes().split(b"\0")
            assert cmdline[:2] == [b"/usr/lib/azlin-lifecycle/bin/python",
                                   b"/usr/bin/azlin-lifecycle"], cmdline
            out = session.run_as_user(["journalctl", "--user", "-x", "-u", PKG, "--no-pager",
                                       f"_PID={props['MainPID']}"], check=True).stdout
            assert f"Subject: azlin-lifecycle started, monitoring {len(fleet.info['vms'])} " \
                   "VMs" in out, out[-2000:]
            assert "Defined-By: azlin-lifecycle" in out
            assert "told systemd" in out  # from the body of the daemon_started entry
            session.systemctl("stop", UNIT)
        finally:
            session.systemctl("stop", UNIT, check=False)
            fleet.remove_dropin()

    result = run("apt-get", "purge", "-y", PKG)
    assert result.returncode == 0, result.stderr
    assert not installed()
    assert [p for p in fresh_install if p.exists() and (
        not p.is_dir() or str(p).startswith(("/usr/lib/azlin-lifecycle",
                                             "/usr/share/doc/azlin-lifecycle")))] == []
    assert catalog_ids() == set(), "the catalog database still has our entries"
    for root in (Path("/etc/systemd/user"),
                 Path("/var/lib/systemd/deb-systemd-user-helper-enabled")):
        assert not [p for p in root.rglob("*") if PKG in p.name], root
    session.systemctl("daemon-reload")
    listed = session.systemctl("list-unit-files", UNIT, check=False).stdout
    assert "0 unit files listed" in listed, listed
