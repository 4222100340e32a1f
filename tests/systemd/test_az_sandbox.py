"""The sandboxed unit, as ``install`` renders it, runs an ``az`` that writes under ~/.azure.

The stand-in ``az`` does on disk what the real one does (az.sess, a command log, the MSAL
token cache under $AZURE_CONFIG_DIR) and fails as it does where it cannot write. It is
found the way a user's is: first on the PATH of the shell that runs ``install``; no
drop-in adds it. The daemon checks the simulated fleet from inside the sandbox.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.install import AZ_NOT_FOUND, SAFE_PATH, lives_in_tmp
from tests.support.real_unit import (
    UNIT,
    SimulatorProcess,
    dropin_dir,
    journal,
    show,
    uninstall_unit,
    user_python,
    write_dropin,
)
from tests.support.user_session import REPO, VENV_BIN, UserSession

INSTALL = "from azlin_lifecycle.install import install\ninstall()\n"


@pytest.fixture(scope="module")
def az_fleet(session: UserSession) -> Iterator[SimulatorProcess]:
    """The simulator up, its config written, no ~/.azure yet, and the unit installed from
    a shell whose PATH finds the stand-in az first (not started)."""
    fleet = SimulatorProcess(session, name="sim-az", vms=2).start()
    try:
        fleet.write_config(session.home / ".azlin" / "lifecycle-config.toml")
        session.run_as_user(["rm", "-rf", str(session.home / ".azure")], check=True)
        user_python(session, INSTALL, env={"PATH": f"{fleet.bin_dir}:{VENV_BIN}:/usr/bin:/bin"})
        yield fleet
    finally:
        session.systemctl("stop", UNIT, check=False)
        uninstall_unit(session)
        fleet.stop()


def run_until(session: UserSession, event: str, done: Any,
              timeout: float = 40) -> list[dict[str, Any]]:
    """Start the unit, collect its ``EVENT=event`` entries until ``done(entries)``, stop."""
    session.systemctl("reset-failed", UNIT, check=False)
    session.systemctl("start", UNIT)
    pid = show(session, "MainPID")["MainPID"]
    entries: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = journal(session, f"_PID={pid}", f"EVENT={event}")
            if done(entries):
                return entries
            time.sleep(0.5)
        seen = [(e.get("EVENT"), e.get("MESSAGE")) for e in journal(session, f"_PID={pid}")]
        raise AssertionError(f"no {event} as wanted within {timeout:g} s: {seen[-8:]}")
    finally:
        session.systemctl("stop", UNIT, check=False)


def exposure(session: UserSession, which: str) -> float:
    """``systemd-analyze --user security`` of the unit: its overall exposure level."""
    security = session.run_as_user(["systemd-analyze", "--user", "security", UNIT])
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert score, security.stdout[-500:]
    print(f"systemd-analyze --user security {UNIT} ({which}): {score.group(1)}")
    return float(score.group(1))


def test_installed_unit_opens_the_azure_config_dir_and_finds_az(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    home = session.home
    text = (home / ".config/systemd/user" / UNIT).read_text()
    assert re.search(rf"^ReadWritePaths=.* -{home}/\.azure$", text, re.M), text
    assert (f"\nEnvironment=AZURE_CONFIG_DIR={home}/.azure PATH={az_fleet.bin_dir}:{SAFE_PATH}\n"
            in text)
    azure = home / ".azure"
    assert azure.is_dir() and azure.stat().st_mode & 0o777 == 0o700
    assert azure.stat().st_uid == session.uid
    verify = session.run_as_user(["systemd-analyze", "--user", "verify",
                                  str(home / ".config/systemd/user" / UNIT)])
    assert (verify.returncode, verify.stderr.strip()) == (0, ""), verify.stderr
    assert exposure(session, "install") <= 4.0


def test_sandboxed_daemon_gets_a_token_from_an_az_that_writes_under_dot_azure(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    vms = set(az_fleet.info["vms"])

    def azure_answered(entries: list[dict[str, Any]]) -> set[str]:
        # A guest answering SSH is "healthy" even when Azure is not: only the power
        # state "running", read from ARM with the token, shows that az worked.
        return {e["VM_NAME"] for e in entries if e.get("POWER_STATE") == "running"}

    checks = run_until(session, "check_ok", lambda es: azure_answered(es) >= vms)
    assert azure_answered(checks) >= vms
    # What the az run by the sandboxed daemon wrote (~/.azure was empty before).
    azure = session.home / ".azure"
    logs = sorted((azure / "commands").glob("*.account_get-access-token.*.log"))
    assert logs, sorted(p.name for p in azure.rglob("*"))
    assert "command args: account get-access-token --output {} --resource {}" in \
        logs[-1].read_text()
    assert json.loads((azure / "az.sess").read_text(encoding="utf-8-sig")) == {}
    cache = json.loads((azure / "msal_token_cache.json").read_text())
    targets = {t["target"] for t in cache["AccessToken"].values()}
    assert targets == {az_fleet.info["arm_endpoint"].rstrip("/") + "/.default"}
    assert not (azure / "msal_token_cache.json.lockfile").exists()


def test_with_the_old_writable_paths_the_error_says_read_only_not_az_login(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    home = session.home
    write_dropin(session, "[Service]\nReadWritePaths=\n"
                          f"ReadWritePaths=-{home}/.azlin -{home}/.local/state/azlin-lifecycle\n")
    try:
        failed = run_until(session, "check_failed",
                           lambda es: any("Read-only file system" in e.get("REASON", "")
                                          for e in es))
    finally:
        session.run_as_user(["rm", "-rf", str(dropin_dir(session))], check=True)
        session.systemctl("daemon-reload")
    reason = next(e["REASON"] for e in failed if "Read-only file system" in e.get("REASON", ""))
    assert reason.startswith(f"the Azure CLI cannot write under its config dir {home}/.azure "
                             f"([Errno 30] Read-only file system: '{home}/.azure/"), reason
    assert reason.endswith(f"make {home}/.azure writable for the service: re-run 'azlin "
                           "lifecycle install' (its unit opens $AZURE_CONFIG_DIR or ~/.azure)")
    assert "az login" not in reason and "\n" not in reason


def test_az_missing_from_the_services_path_is_named(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    write_dropin(session, "[Service]\nEnvironment=PATH=/usr/bin:/bin\n")
    try:
        failed = run_until(session, "check_failed",
                           lambda es: any("az not found" in e.get("REASON", "") for e in es))
    finally:
        session.run_as_user(["rm", "-rf", str(dropin_dir(session))], check=True)
        session.systemctl("daemon-reload")
    assert f"{failed[0]['REASON']}" == (
        "az not found on the service's PATH (PATH=/usr/bin:/bin): install the Azure CLI or "
        "re-run 'azlin lifecycle install' from a shell where 'az' works")


def test_install_without_az_on_path_works_and_warns_in_one_line(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    out = session.run_as_user(["azlin-lifecycle", "install"],
                              env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})
    try:
        assert out.returncode == 0, out.stderr
        assert out.stderr == AZ_NOT_FOUND + "\n"
        text = (session.home / ".config/systemd/user" / UNIT).read_text()
        assert f" PATH={SAFE_PATH}\n" in text
    finally:
        user_python(session, INSTALL,
                    env={"PATH": f"{az_fleet.bin_dir}:{VENV_BIN}:/usr/bin:/bin"})
    assert Path(az_fleet.bin_dir / "az").exists()


def packaged_path(home: Path) -> str:
    """The packaged unit's PATH as systemd resolves it for ``home`` (%h)."""
    return (f"{home}/.local/bin:{home}/bin:{SAFE_PATH}:/snap/bin:"
            "/home/linuxbrew/.linuxbrew/bin")


def test_the_debian_packages_unit_creates_and_opens_dot_azure(
        session: UserSession, az_fleet: SimulatorProcess) -> None:
    """packaging/packaged_unit.py's unit (%h specifiers, ExecStartPre mkdir), with this
    checkout's entry point; a drop-in puts the stand-in az first, as tests/packaging do."""
    home = session.home
    session.run_as_user([str(VENV_BIN / "python"), str(REPO / "packaging/packaged_unit.py"),
                         "--exec", str(VENV_BIN / "azlin-lifecycle"),
                         "-o", str(home / ".config/systemd/user" / UNIT)], check=True)
    session.run_as_user(["rm", "-rf", str(home / ".azure")], check=True)
    session.systemctl("daemon-reload")
    assert show(session, "Environment")["Environment"] == (
        f"PYTHONUNBUFFERED=1 AZURE_CONFIG_DIR={home}/.azure "
        f"PATH={packaged_path(home)}")
    assert exposure(session, "Debian package") <= 4.0
    # The packaged unit is for /usr/lib; a checkout under /tmp (a CI clone) needs the shared
    # /tmp that `install` itself renders for such a checkout, or its interpreter is hidden.
    shared_tmp = "PrivateTmp=no\n" if lives_in_tmp([str(VENV_BIN)]) else ""
    write_dropin(session, f"[Service]\nEnvironment=PATH={az_fleet.bin_dir}:/usr/bin:/bin\n"
                          + shared_tmp)
    try:
        vms = set(az_fleet.info["vms"])
        checks = run_until(session, "check_ok", lambda es: {
            e["VM_NAME"] for e in es if e.get("POWER_STATE") == "running"} >= vms)
        assert checks
        assert (home / ".azure").stat().st_mode & 0o777 == 0o700
        assert list((home / ".azure/commands").glob("*.account_get-access-token.*.log"))
    finally:
        session.run_as_user(["rm", "-rf", str(dropin_dir(session))], check=True)
        session.systemctl("daemon-reload")
