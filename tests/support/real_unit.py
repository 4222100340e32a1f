"""Helpers for tests that run the real daemon as the installed user unit.

Everything here acts as the test user of a :class:`UserSession`: Python snippets, the
unit's install/uninstall, drop-ins, ``systemctl --user show``, ``journalctl --user -u``,
and the simulator (stand-in ARM over HTTPS, SSH endpoints, stand-in ``az``) as a
process of that user.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from azlin_lifecycle.simulator.client import SimulatorClient

from .user_session import VENV_BIN, UserSession

PYTHON = str(VENV_BIN / "python")
UNIT = "azlin-lifecycle.service"


def user_python(session: UserSession, code: str, *, env: dict[str, str] | None = None,
                check: bool = True, timeout: float = 60) -> tuple[int, str, str]:
    """Run dedented ``code`` with the venv's python as the test user."""
    result = session.run_as_user([PYTHON, "-c", textwrap.dedent(code)], env=env,
                                 timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"as {session.user}: exit {result.returncode}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result.returncode, result.stdout, result.stderr


def dropin_dir(session: UserSession) -> Path:
    return session.home / ".config/systemd/user/azlin-lifecycle.service.d"


def write_dropin(session: UserSession, text: str) -> None:
    """Replace the unit's test drop-in with ``text`` and reload the user manager."""
    directory = dropin_dir(session)
    session.run_as_user(["mkdir", "-p", str(directory)], check=True)
    session.run_as_user(["sh", "-c", f"cat > {directory}/test.conf"], input=text, check=True)
    session.systemctl("daemon-reload")


dropin = write_dropin


def install_unit(session: UserSession, exec_start: str | None = None,
                 dropin: str | None = None) -> None:
    """The unit as ``install`` writes it (ExecStart: this checkout's daemon by default)."""
    user_python(session, f"""
        from azlin_lifecycle.install import install
        install(exec_start={exec_start!r})
    """)
    if dropin is not None:
        write_dropin(session, dropin)


def uninstall_unit(session: UserSession) -> None:
    session.run_as_user(["rm", "-rf", str(dropin_dir(session))])
    user_python(session, """
        from azlin_lifecycle.install import uninstall
        uninstall()
    """)
    session.systemctl("reset-failed", UNIT, check=False)


def show(session: UserSession, *props: str) -> dict[str, str]:
    """``systemctl --user show UNIT --property=...`` as a dict."""
    out = session.systemctl("show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(session: UserSession, *args: str) -> list[dict[str, Any]]:
    """``journalctl --user -u azlin-lifecycle -o json ARGS`` as the user, parsed."""
    out = session.run_as_user(["journalctl", "--user", "-u", "azlin-lifecycle", "-o", "json",
                               "--no-pager", *args], check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


class SimulatorProcess:
    """``python -m azlin_lifecycle.simulator`` running as the test user in ``~/NAME``."""

    def __init__(self, session: UserSession, name: str = "sim", vms: int = 2,
                 boot_seconds: float = 5.0, operation_seconds: float = 1.0) -> None:
        self.session = session
        self.dir = session.home / name
        self.argv = [PYTHON, "-m", "azlin_lifecycle.simulator", "--vms", str(vms),
                     "--dir", str(self.dir), "--boot-seconds", str(boot_seconds),
                     "--operation-seconds", str(operation_seconds)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    @property
    def bin_dir(self) -> Path:
        """Where the stand-in ``az`` lives (put it first on the unit's PATH)."""
        return Path(self.info["az_dir"])

    def start(self) -> SimulatorProcess:
        self.session.run_as_user(["rm", "-rf", str(self.dir)], check=True)
        self.proc = subprocess.Popen(
            self.session.user_argv(self.argv), env=self.session.env,
            cwd=str(self.session.home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        info = self.dir / "simulator.json"
        deadline = time.monotonic() + 30
        while not info.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.stop()
                raise AssertionError(f"simulator did not start: {err[-800:]}")
            time.sleep(0.05)
        self.info = json.loads(info.read_text())
        return self

    def client(self) -> SimulatorClient:
        return SimulatorClient.from_dir(self.dir)

    def write_config(self, path: Path, vms: list[str] | None = None, **extra: Any) -> None:
        """Write a validated config for ``vms`` (default: all) as the user to ``path``."""
        ports = {vm: port for vm, port in self.info["vms"].items() if vms is None or vm in vms}
        user_python(self.session, f"""
            import pathlib
            from azlin_lifecycle.simulator.configfile import write_config
            info = {self.info!r}
            path = pathlib.Path({str(path)!r})
            path.parent.mkdir(mode=0o700, exist_ok=True)
            write_config(path, subscription_id=info["subscription_id"],
                         resource_group=info["resource_group"],
                         arm_endpoint=info["arm_endpoint"],
                         ca_path=pathlib.Path(info["ca_path"]),
                         client_key=pathlib.Path(info["client_key"]), ports={ports!r},
                         **{extra!r})
        """)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
