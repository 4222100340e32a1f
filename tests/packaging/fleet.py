"""A simulated fleet for the packaging smoke tests, run as the harness's test user.

The simulator (stand-in ARM over HTTPS, SSH endpoints, stand-in ``az``) runs from this
checkout's venv: it stands in for Azure and is not what these tests check. The
configuration it needs is written into the user's ``~/.azlin``.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.support.user_session import VENV_BIN, UserSession

PYTHON = str(VENV_BIN / "python")
UNIT = "azlin-lifecycle.service"
VMS = 2


class SimulatedFleet:
    def __init__(self, session: UserSession) -> None:
        self.session = session
        self.dir = session.home / "sim"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    @property
    def az_dir(self) -> Path:
        return Path(self.info.get("az_dir") or self.dir / "bin")

    def __enter__(self) -> SimulatedFleet:
        self.session.run_as_user(["rm", "-rf", str(self.dir)], check=True)
        self.proc = subprocess.Popen(
            self.session.user_argv([PYTHON, "-m", "azlin_lifecycle.simulator", "--vms",
                                    str(VMS), "--dir", str(self.dir)]),
            env=self.session.env, cwd=str(self.session.home), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        info = self.dir / "simulator.json"
        deadline = time.monotonic() + 30
        while not info.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.__exit__()
                raise AssertionError(f"simulator did not start: {err[-800:]}")
            time.sleep(0.05)
        self.info = json.loads(info.read_text())
        self._write_config()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _write_config(self) -> None:
        code = textwrap.dedent(f"""
            import pathlib
            from azlin_lifecycle.simulator.configfile import write_config
            info = {self.info!r}
            path = pathlib.Path(".azlin/lifecycle-config.toml")
            path.parent.mkdir(mode=0o700, exist_ok=True)
            write_config(path, subscription_id=info["subscription_id"],
                         resource_group=info["resource_group"],
                         arm_endpoint=info["arm_endpoint"],
                         ca_path=pathlib.Path(info["ca_path"]),
                         client_key=pathlib.Path(info["client_key"]), ports=info["vms"])
        """)
        result = self.session.run_as_user([PYTHON, "-c", code])
        assert result.returncode == 0, result.stderr

    def path_dropin(self) -> None:
        """A drop-in that puts the stand-in ``az`` first on the unit's PATH."""
        directory = self.session.home / f".config/systemd/user/{UNIT}.d"
        self.session.run_as_user(["mkdir", "-p", str(directory)], check=True)
        self.session.run_as_user(
            ["sh", "-c", f"cat > {directory}/simulator.conf"], check=True,
            input=f"[Service]\nEnvironment=PATH={self.az_dir}:/usr/bin:/bin\n")
        self.session.systemctl("daemon-reload")

    def remove_dropin(self) -> None:
        self.session.run_as_user(
            ["rm", "-rf", str(self.session.home / f".config/systemd/user/{UNIT}.d")])
        self.session.systemctl("daemon-reload", check=False)


def show(session: UserSession, *props: str) -> dict[str, str]:
    out = session.systemctl("show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(session: UserSession, *matches: str) -> list[dict[str, str]]:
    out = session.run_as_user(["journalctl", "--user", "-u", "azlin-lifecycle", "-o", "json",
                               "--no-pager", *matches], check=True).stdout
    return [json.loads(line) for line in out.splitlines()]
